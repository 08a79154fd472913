"""Reviewer actions: decide, claim and bulk-decide pending approvals through the workflow.

The workflow's update validators are the authority (own request, claimed by someone
else, stale arguments, already decided); these functions validate what they can
first, then turn the workflow's refusals into messages a reviewer can act on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from chatapp import temporal_client
from chatapp.temporal_client import ChatRejected
from reviews import selectors
from reviews.live import reviewers_push
from reviews.models import Approval
from temporal_worker.shared import (
    ApprovalClaimed,
    ApprovalDecided,
    ClaimApproval,
    DecideApproval,
    conversation_workflow_id,
)
from temporal_worker.tools import shop_tools  # noqa: F401 - fills the registry
from temporal_worker.tools.registry import TOOLS, ToolArgumentsError, canonical_arguments

BULK_CONCURRENCY = 16
STALE_KINDS = ("AlreadyDecided", "UnknownApproval")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?")


class ReviewRejected(Exception):
    """The decision or claim was refused; the message is meant for the reviewer."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        # The workflow validator's error type, or "InvalidArguments" / "Invalid" from here.
        self.kind = kind


@dataclass
class BulkItem:
    conversation_id: str
    call_id: str
    arguments_hash: str


@dataclass
class BulkItemResult:
    conversation_id: str
    call_id: str
    ok: bool
    message: str

    @property
    def dom_id(self) -> str:
        return selectors.approval_dom_id(conversation_id=self.conversation_id, call_id=self.call_id)


def reviewer_name(reviewer: AbstractBaseUser) -> str:
    return reviewer.get_username()


def moment(when: dt.datetime) -> str:
    """10:42 today, 2025-03-04 10:42 on another day (in the site's time zone)."""
    local = timezone.localtime(when)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def _readable_times(message: str) -> str:
    return _ISO_DATETIME.sub(lambda m: moment(dt.datetime.fromisoformat(m.group(0))), message)


async def _refusal(err: ChatRejected, *, conversation_id: str, call_id: str) -> ReviewRejected:
    """A stale decision names who decided and when, from the audit mirror when it has it."""
    if err.kind in STALE_KINDS:
        mirror = await selectors.approval_get(conversation_id=conversation_id, call_id=call_id)
        if mirror is not None and mirror.status != Approval.Status.PENDING and mirror.decided_at:
            return ReviewRejected(
                f"Already {mirror.status} by {mirror.decided_by_label} "
                f"at {moment(mirror.decided_at)}.",
                err.kind,
            )
    return ReviewRejected(_readable_times(str(err)), err.kind)


async def _edited_arguments(*, conversation_id: str, call_id: str, raw: str) -> str:
    """The reviewer's edit validated by the tool's own model, as canonical JSON.

    "" when the edit is the same as the agent's arguments (nothing was changed).
    """
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ReviewRejected(
            f"The edited arguments are not valid JSON: {err}", "InvalidArguments"
        ) from err
    if not isinstance(parsed, dict):
        raise ReviewRejected(
            "The edited arguments must be a JSON object ({…}).", "InvalidArguments"
        )
    try:
        pending = await temporal_client.approval_get(
            conversation_id=conversation_id, call_id=call_id
        )
    except ChatRejected as err:
        raise await _refusal(err, conversation_id=conversation_id, call_id=call_id) from err
    if pending is None:
        raise await _refusal(
            ChatRejected("No pending approval has this id.", "UnknownApproval"),
            conversation_id=conversation_id,
            call_id=call_id,
        )
    definition = TOOLS.get(pending.tool)
    if definition is None:
        raise ReviewRejected(f"The tool {pending.tool!r} is no longer available.", "Invalid")
    try:
        canonical = canonical_arguments(definition.validate(raw))
    except ToolArgumentsError as err:
        raise ReviewRejected(str(err), "InvalidArguments") from err
    return "" if canonical == pending.arguments else canonical


async def approval_decide(
    *,
    reviewer: AbstractBaseUser,
    conversation_id: str,
    call_id: str,
    action: str,
    reason: str = "",
    arguments_hash: str,
    edited_arguments_json: str = "",
) -> ApprovalDecided:
    """Approve (optionally with edited arguments) or reject with a reason.

    Raises ReviewRejected with the reason a reviewer can act on; TemporalUnavailable
    passes through.
    """
    reason = reason.strip()
    if action not in ("approve", "reject"):
        raise ReviewRejected("A decision is approve or reject.", "Invalid")
    if action == "reject" and not reason:
        raise ReviewRejected("A rejection needs a reason for the agent and the user.", "Invalid")
    edited = ""
    if edited_arguments_json.strip():
        if action != "approve":
            raise ReviewRejected("Edited arguments can only be approved.", "Invalid")
        edited = await _edited_arguments(
            conversation_id=conversation_id, call_id=call_id, raw=edited_arguments_json
        )
    decision = DecideApproval(
        call_id=call_id,
        action="approve" if action == "approve" else "reject",
        reviewer_id=reviewer.pk,
        reviewer=reviewer_name(reviewer),
        arguments_hash=arguments_hash,
        reason=reason,
        edited_arguments=edited,
    )
    try:
        return await temporal_client.approval_decide(
            conversation_id=conversation_id, decision=decision
        )
    except ChatRejected as err:
        raise await _refusal(err, conversation_id=conversation_id, call_id=call_id) from err


async def approval_claim(
    *, reviewer: AbstractBaseUser, conversation_id: str, call_id: str
) -> ApprovalClaimed:
    """Claim a pending approval: the first claim wins, the others see who has it."""
    claim = ClaimApproval(
        call_id=call_id, reviewer_id=reviewer.pk, reviewer=reviewer_name(reviewer)
    )
    try:
        claimed = await temporal_client.approval_claim(conversation_id=conversation_id, claim=claim)
    except ChatRejected as err:
        raise await _refusal(err, conversation_id=conversation_id, call_id=call_id) from err
    workflow_id = conversation_workflow_id(conversation_id)
    mirror = Approval.objects.filter(workflow_id=workflow_id, call_id=call_id)
    await mirror.aupdate(claimed_by=reviewer)
    await reviewers_push(
        {
            "kind": "claimed",
            "approval_id": await mirror.values_list("pk", flat=True).afirst(),
            "call_id": call_id,
            "workflow_id": workflow_id,
            "claimed_by": claimed.claimed_by,
        }
    )
    return claimed


async def approvals_bulk_decide(
    *, reviewer: AbstractBaseUser, items: list[BulkItem], action: str, reason: str = ""
) -> list[BulkItemResult]:
    """Decide several approvals concurrently; one refusal never stops the others."""
    gate = asyncio.Semaphore(BULK_CONCURRENCY)

    async def decide(item: BulkItem) -> BulkItemResult:
        async with gate:
            try:
                decided = await approval_decide(
                    reviewer=reviewer,
                    conversation_id=item.conversation_id,
                    call_id=item.call_id,
                    action=action,
                    reason=reason,
                    arguments_hash=item.arguments_hash,
                )
            except (ReviewRejected, temporal_client.TemporalUnavailable) as err:
                return BulkItemResult(item.conversation_id, item.call_id, False, str(err))
        return BulkItemResult(
            item.conversation_id, item.call_id, True, decided.outcome.capitalize()
        )

    return list(await asyncio.gather(*(decide(item) for item in items)))

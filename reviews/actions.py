"""Reviewer actions: decide, claim and bulk-decide pending approvals through the workflow.

The workflow's update validators are the authority (own request, claimed by someone
else, stale arguments, already decided); these functions validate what they can
first (the same rules as the forms) and pass the workflow's refusals on as UserErrors.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from reviews import selectors, step_up
from reviews.models import CHANNEL_LABELS, Approval
from temporal_worker import client
from temporal_worker.contracts.approvals import (
    CHANNEL_DASHBOARD,
    DECISION_CHANNELS,
    ApprovalClaimed,
    ApprovalDecided,
    DecideApproval,
    decision_problem,
)
from temporal_worker.contracts.approvals import ClaimApproval as ClaimRequest
from temporal_worker.contracts.errors import Code, NotFound, Refused, UserError
from temporal_worker.tools.registry import ToolArgumentsError, tool_registry

BULK_CONCURRENCY = 16


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
    error: UserError | None = None

    @property
    def dom_id(self) -> str:
        return selectors.approval_dom_id(conversation_id=self.conversation_id, call_id=self.call_id)


def reviewer_name(reviewer: AbstractBaseUser) -> str:
    return reviewer.get_username()


def already_decided(*, outcome: str, by: str, at: object, channel: str) -> Refused:
    """The answer to a late decision: who decided, where and when (`at` reads in the
    reader's zone), never a second effect."""
    if channel == "deadline" or by == "system":
        message = "Already {outcome} when the deadline passed, at {at}: nobody decided in time."
    elif outcome == "withdrawn":
        message = "Already withdrawn by the user at {at}."
    elif channel in CHANNEL_LABELS:
        message = "Already {outcome} by {by} via {via} at {at}."
    else:
        message = "Already {outcome} by {by} at {at}."
    return Refused(
        message,
        code=Code.ALREADY_DECIDED,
        outcome=outcome,
        by=by,
        at=at,
        channel=channel,
        via=CHANNEL_LABELS.get(channel, channel),
    )


async def _stale(err: UserError, *, conversation_id: str, call_id: str) -> UserError:
    """An approval the workflow no longer knows, or decided already: say who decided it,
    where and when (from the workflow, else the audit); a conversation that never existed
    is said not to exist."""
    if err.code == Code.NOT_RUNNING and not await selectors.conversation_exists(
        conversation_id=conversation_id
    ):
        return NotFound("This conversation does not exist.", code=Code.CONVERSATION_NOT_FOUND)
    if err.code not in (Code.UNKNOWN_APPROVAL, Code.ALREADY_DECIDED):
        return err
    mirror = await selectors.approval_get(conversation_id=conversation_id, call_id=call_id)
    decided = mirror is not None and mirror.status != Approval.Status.PENDING
    if err.code == Code.ALREADY_DECIDED:
        # The workflow's word is first; the audit may not have the decision yet.
        channel = str(err.details.get("channel") or "")
        if not channel and decided and mirror is not None:
            channel = mirror.decision_channel
        return already_decided(
            outcome=str(err.details.get("outcome", "")),
            by=str(err.details.get("by", "")),
            at=err.details.get("at"),
            channel=channel,
        )
    if decided and mirror is not None and mirror.decided_at:
        return already_decided(
            outcome=mirror.status,
            by=mirror.decided_by_label,
            at=mirror.decided_at,
            channel=mirror.decision_channel,
        )
    return err


async def _edited_arguments(*, conversation_id: str, call_id: str, raw: str) -> tuple[str, str]:
    """The reviewer's edit validated by the tool's own schema, as canonical JSON, and the
    tool's summary of it (what will run).

    ("", "") when the edit is the same as the agent's arguments (nothing was changed).
    """
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise Refused(
            "The edited arguments are not valid JSON: {problem}",
            code=Code.INVALID_ARGUMENTS,
            problem=str(err),
        ) from err
    if not isinstance(parsed, dict):
        raise Refused(
            "The edited arguments must be a JSON object ({{…}}).",
            code=Code.INVALID_ARGUMENTS,
            problem="not an object",
        )
    try:
        pending = await client.approval_get(conversation_id=conversation_id, call_id=call_id)
    except UserError as err:
        raise await _stale(err, conversation_id=conversation_id, call_id=call_id) from err
    if pending is None:
        raise await _stale(
            Refused("No pending approval has this id.", code=Code.UNKNOWN_APPROVAL),
            conversation_id=conversation_id,
            call_id=call_id,
        )
    definition = tool_registry().get(pending.tool)
    if definition is None:
        raise Refused(
            "The tool {tool} is no longer available.", code=Code.INVALID, tool=pending.tool
        )
    try:
        arguments = definition.validate(raw)
    except ToolArgumentsError as err:
        raise Refused(str(err), code=Code.INVALID_ARGUMENTS) from err
    if arguments.canonical == pending.arguments:
        return "", ""
    return arguments.canonical, definition.summarize(arguments)


async def approval_decide(
    *,
    reviewer: AbstractBaseUser,
    conversation_id: str,
    call_id: str,
    action: str,
    reason: str = "",
    arguments_hash: str,
    edited_arguments_json: str = "",
    channel: str = CHANNEL_DASHBOARD,
) -> ApprovalDecided:
    """Approve (optionally with edited arguments) or reject with a reason, from the
    dashboard, an email link or Slack: one Update and its validator for all of them.

    Raises a UserError with the reason a reviewer can act on.
    """
    assert channel in DECISION_CHANNELS, channel
    reason = reason.strip()
    problem = decision_problem(action=action, reason=reason, edited_arguments=edited_arguments_json)
    if problem:
        raise Refused(problem, code=Code.INVALID)
    edited, summary = "", ""
    if edited_arguments_json.strip():
        edited, summary = await _edited_arguments(
            conversation_id=conversation_id, call_id=call_id, raw=edited_arguments_json
        )
    step_up_method = ""
    if action == "approve" and await step_up.policies_ask_step_up():
        step_up_method = await _step_up(
            reviewer=reviewer,
            conversation_id=conversation_id,
            call_id=call_id,
            edited=edited,
            channel=channel,
        )
    decision = DecideApproval(
        call_id=call_id,
        action="approve" if action == "approve" else "reject",
        reviewer_id=reviewer.pk,
        reviewer=reviewer_name(reviewer),
        arguments_hash=arguments_hash,
        reason=reason,
        edited_arguments=edited,
        summary=summary,
        channel=channel,
        step_up=step_up_method,
    )
    try:
        return await client.approval_decide(conversation_id=conversation_id, decision=decision)
    except UserError as err:
        raise await _stale(err, conversation_id=conversation_id, call_id=call_id) from err


async def _step_up(
    *, reviewer: AbstractBaseUser, conversation_id: str, call_id: str, edited: str, channel: str
) -> str:
    """The step-up to record when the tool's policy asks for one (on the agent's arguments
    or the reviewer's edit, whichever is larger); "" when it does not.

    The audit row names the call's tool and arguments (they never change while it waits,
    and the Update refuses a decision on others); the workflow is asked only when the row
    is not written yet."""
    mirror = await selectors.approval_get(conversation_id=conversation_id, call_id=call_id)
    if mirror is not None:
        tool, arguments = mirror.tool, [mirror.arguments]
    else:
        try:
            pending = await client.approval_get(conversation_id=conversation_id, call_id=call_id)
        except UserError as err:
            raise await _stale(err, conversation_id=conversation_id, call_id=call_id) from err
        if pending is None:
            # Decided, expired or unknown: the Update's validator says which.
            return ""
        tool, arguments = pending.tool, [json.loads(pending.arguments or "{}")]
    if edited:
        arguments.append(json.loads(edited))
    if not await step_up.step_up_needed(tool=tool, arguments=arguments):
        return ""
    detail_url = reverse("reviews:detail", args=[conversation_id, call_id])
    return step_up.step_up_for(reviewer=reviewer, channel=channel, back_to=detail_url)


async def approval_claim(
    *, reviewer: AbstractBaseUser, conversation_id: str, call_id: str
) -> ApprovalClaimed:
    """Claim a pending approval: the first claim wins, the others see who has it.

    The workflow records the claim for the audit and tells every open page."""
    claim = ClaimRequest(call_id=call_id, reviewer_id=reviewer.pk, reviewer=reviewer_name(reviewer))
    try:
        return await client.approval_claim(conversation_id=conversation_id, claim=claim)
    except UserError as err:
        raise await _stale(err, conversation_id=conversation_id, call_id=call_id) from err


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
            except UserError as err:
                return BulkItemResult(item.conversation_id, item.call_id, False, str(err), err)
        return BulkItemResult(
            item.conversation_id, item.call_id, True, decided.outcome.capitalize()
        )

    return list(await asyncio.gather(*(decide(item) for item in items)))

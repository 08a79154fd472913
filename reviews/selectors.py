"""Reads of the reviews app: dashboard rows built from Temporal's answers, and the audit mirror."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Model, Prefetch
from django.urls import reverse
from django.utils import timezone

from reviews.models import CHANNEL_LABELS, Approval, ApprovalDelivery
from temporal_worker import client
from temporal_worker.contracts.approvals import PendingApproval, arguments_hash
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.tools.registry import canonical_json

HISTORY_LIMIT = 200
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def approval_dom_id(*, conversation_id: str, call_id: str) -> str:
    """The row's element id. Call ids are only unique per conversation (the scripted
    model derives them from the transcript), so the conversation is part of it."""
    return f"approval-{conversation_id}-{_UNSAFE_ID_CHARS.sub('_', call_id)}"


@dataclass
class ApprovalRow:
    """One pending approval as the dashboard shows it."""

    pending: PendingApproval
    requester: str
    conversation_title: str
    requested_at: dt.datetime
    deadline: dt.datetime
    arguments_pretty: str

    @cached_property
    def dom_id(self) -> str:
        return approval_dom_id(
            conversation_id=self.pending.conversation_id, call_id=self.pending.call_id
        )

    # The row's three links share one reverse(): it is most of a 1,000-row page's render.
    @cached_property
    def detail_url(self) -> str:
        return reverse("reviews:detail", args=[self.pending.conversation_id, self.pending.call_id])

    @property
    def decide_url(self) -> str:
        return f"{self.detail_url}decide/"

    @property
    def claim_url(self) -> str:
        return f"{self.detail_url}claim/"

    @property
    def workflow_id(self) -> str:
        return conversation_workflow_id(self.pending.conversation_id)

    @property
    def workflow_url(self) -> str:
        return client.workflow_ui_url(self.workflow_id)

    @property
    def bulk_value(self) -> str:
        pending = self.pending
        return f"{pending.conversation_id}:{pending.call_id}:{pending.arguments_hash}"

    # Times are formatted here rather than with template filters: at 1,000 rows the
    # filters' per-call translation lookups were a fifth of the page's render.
    @property
    def requested_iso(self) -> str:
        return self.requested_at.isoformat()

    @property
    def deadline_iso(self) -> str:
        return self.deadline.isoformat()

    @property
    def deadline_label(self) -> str:
        local = timezone.localtime(self.deadline)
        return f"{local:%b} {local.day}, {local:%H:%M}"

    @property
    def waited_label(self) -> str:
        return relative_label((timezone.now() - self.requested_at).total_seconds())

    @property
    def left_label(self) -> str:
        return relative_label(max(0.0, (self.deadline - timezone.now()).total_seconds()))

    @property
    def seconds_left(self) -> int:
        return int((self.deadline - timezone.now()).total_seconds())

    @property
    def share_waited(self) -> float:
        """How much of the time to decide has passed, 0 to 1."""
        total = (self.deadline - self.requested_at).total_seconds()
        if total <= 0:
            return 1.0
        waited = (timezone.now() - self.requested_at).total_seconds()
        return max(0.0, min(1.0, waited / total))


def relative_label(seconds: float) -> str:
    """A duration as the dashboard's script shows it (static/js/reviews.js `relative`)."""
    whole = int(abs(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def pretty_json(text: str) -> str:
    try:
        return pretty_json_value(json.loads(text or "{}"))
    except ValueError:
        return text


def pretty_json_value(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


async def pending_approvals(*, listing: client.PendingListing) -> list[PendingApproval]:
    """The listed approvals with their details, the oldest first: from the audit table in
    one query (workflows' memos hold only ids), or from the workflow itself for a request
    whose audit row is not written yet."""
    wanted = [e for e in listing.entries if e.approval is None]
    workflow_ids = {conversation_workflow_id(e.conversation_id) for e in wanted}
    audit = {
        (a.workflow_id, a.call_id): a
        async for a in Approval.objects.filter(
            workflow_id__in=workflow_ids, call_id__in={e.call_id for e in wanted}
        )
    }
    items: list[PendingApproval] = []
    unrecorded: list[client.PendingEntry] = []
    for entry in listing.entries:
        row = audit.get((conversation_workflow_id(entry.conversation_id), entry.call_id))
        if entry.approval is not None:
            items.append(entry.approval)
        elif row is not None:
            items.append(_pending_from_audit(row, entry))
        else:
            unrecorded.append(entry)
    asked = await asyncio.gather(
        *(
            client.approval_get(conversation_id=e.conversation_id, call_id=e.call_id)
            for e in unrecorded
        ),
        return_exceptions=True,
    )
    items.extend(found for found in asked if isinstance(found, PendingApproval))
    items.sort(key=pending_key)
    return items


def _pending_from_audit(row: Approval, entry: client.PendingEntry) -> PendingApproval:
    arguments = canonical_json(row.arguments)
    return PendingApproval(
        call_id=row.call_id,
        conversation_id=entry.conversation_id,
        requester_id=row.requester_id or 0,  # None only once its account was deleted
        tool=row.tool,
        arguments=arguments,
        # Rows written before the column existed: the same hash of the same canonical JSON.
        arguments_hash=row.arguments_hash or arguments_hash(arguments),
        summary=row.summary,
        reason=row.reason,
        requested_at=row.requested_at.isoformat(),
        deadline=row.deadline.isoformat(),
        timeout_action="approve" if row.timeout_action == "approve" else "reject",
        # The claim as the workflow says it (the audit follows it).
        claimed_by_id=entry.claimed_by_id,
        claimed_by=entry.claimed_by,
        reminded=row.reminded_at is not None,
    )


# Where a pending approval sorts in the dashboard: the oldest first, ties by ids.
PendingKey = tuple[dt.datetime, str, str]


def pending_key(item: PendingApproval) -> PendingKey:
    return (dt.datetime.fromisoformat(item.requested_at), item.conversation_id, item.call_id)


def pending_key_query(key: PendingKey) -> str:
    """The next page's address parameters (reviews.forms.MoreRowsForm reads them)."""
    return urlencode({"after": key[0].isoformat(), "conversation": key[1], "call": key[2]})


async def approval_rows(*, items: list[PendingApproval]) -> list[ApprovalRow]:
    """Dashboard rows for pending approvals, with requesters' names and conversation titles."""
    requester_ids = {item.requester_id for item in items}
    conversation_ids = {uuid.UUID(item.conversation_id) for item in items}
    names = {
        pk: username
        async for pk, username in get_user_model()
        .objects.filter(pk__in=requester_ids)
        .values_list("pk", "username")
    }
    titles = {
        str(pk): title
        async for pk, title in _conversations()
        .filter(pk__in=conversation_ids)
        .values_list("pk", "title")
    }
    return [
        ApprovalRow(
            pending=item,
            requester=names.get(item.requester_id, f"user #{item.requester_id}"),
            conversation_title=titles.get(item.conversation_id) or "Untitled",
            requested_at=dt.datetime.fromisoformat(item.requested_at),
            deadline=dt.datetime.fromisoformat(item.deadline),
            arguments_pretty=pretty_json(item.arguments),
        )
        for item in items
    ]


def _conversations() -> Any:
    # Approvals belong to conversations (the foreign key names the chat app's model).
    return cast(type[Model], Approval.conversation.field.related_model)._default_manager


async def conversation_exists(*, conversation_id: str) -> bool:
    try:
        return bool(await _conversations().filter(pk=uuid.UUID(conversation_id)).aexists())
    except ValueError:
        return False


@dataclass(frozen=True)
class ExcerptLine:
    """One message of the conversation as a reviewer reads it beside a request."""

    role: str
    text: str
    truncated: bool


EXCERPT_MESSAGES = 6
EXCERPT_CHARS = 400


async def conversation_excerpt(
    *, conversation_id: str, limit: int = EXCERPT_MESSAGES
) -> list[ExcerptLine]:
    """The last user and assistant messages before a request, oldest first: what the
    agent was asked, so the reviewer judges the action in its context."""
    messages = _conversations().model._meta.get_field("messages").related_model._default_manager
    try:
        key = uuid.UUID(conversation_id)
    except ValueError:
        return []
    latest = [
        (role, content)
        async for role, content in messages.filter(
            conversation_id=key, role__in=("user", "assistant")
        )
        .exclude(content="")
        .order_by("-seq", "-created_at")
        .values_list("role", "content")[:limit]
    ]
    return [
        ExcerptLine(role=role, text=content[:EXCERPT_CHARS], truncated=len(content) > EXCERPT_CHARS)
        for role, content in reversed(latest)
    ]


async def approval_get(*, conversation_id: str, call_id: str) -> Approval | None:
    """The audit mirror's row for one call, or None when it was never recorded."""
    return (
        await Approval.objects.filter(
            workflow_id=conversation_workflow_id(conversation_id), call_id=call_id
        )
        .select_related("decided_by", "claimed_by", "requester")
        .afirst()
    )


async def approval_history_list(
    *,
    status: str = "",
    tool: str = "",
    reviewer: str = "",
    requester: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    channel: str = "",
    limit: int = HISTORY_LIMIT,
) -> list[Approval]:
    """Decided approvals, newest decision first; `status="pending"` lists the open ones instead.

    `reviewer` matches a username or "system" (decided at the deadline); dates are
    inclusive and compare the decision's day (the request's day for pending rows).
    """
    qs = Approval.objects.select_related(
        "requester", "decided_by", "claimed_by", "conversation"
    ).prefetch_related(
        Prefetch("deliveries", queryset=ApprovalDelivery.objects.select_related("reviewer"))
    )
    if channel:
        qs = qs.filter(decision_channel=channel)
    if status:
        qs = qs.filter(status=status)
    else:
        qs = qs.exclude(status=Approval.Status.PENDING)
    if tool:
        qs = qs.filter(tool=tool)
    if reviewer:
        if reviewer.strip().lower() == "system":
            qs = qs.filter(decided_by_system=True)
        else:
            qs = qs.filter(decided_by__username__iexact=reviewer.strip())
    if requester:
        qs = qs.filter(requester__username__iexact=requester.strip())
    day_field = "requested_at" if status == Approval.Status.PENDING else "decided_at"
    if date_from:
        qs = qs.filter(**{f"{day_field}__date__gte": date_from})
    if date_to:
        qs = qs.filter(**{f"{day_field}__date__lte": date_to})
    order = "-requested_at" if status == Approval.Status.PENDING else "-decided_at"
    return [approval async for approval in qs.order_by(order, "-pk")[:limit]]


async def approval_tool_names() -> list[str]:
    """Every tool that ever asked for approval (the history filter's choices)."""
    return [
        name
        async for name in Approval.objects.order_by("tool")
        .values_list("tool", flat=True)
        .distinct()
    ]


async def approval_summaries(*, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """What each (conversation id, call id) asked for, from the audit mirror."""
    by_workflow = {(conversation_workflow_id(c), call): (c, call) for c, call in keys}
    rows = Approval.objects.filter(
        workflow_id__in={w for w, _ in by_workflow}, call_id__in={call for _, call in keys}
    ).values_list("workflow_id", "call_id", "summary")
    return {
        by_workflow[(w, call)]: summary
        async for w, call, summary in rows
        if (w, call) in by_workflow
    }


@dataclass
class HistoryEntry:
    approval: Approval
    arguments_pretty: str
    edited_arguments_pretty: str
    workflow_url: str
    # Who was asked, reminded and escalated to, where: one line per kind and channel.
    asked: list[str]


_DELIVERY_KIND_LABELS = {"request": "Asked", "reminder": "Reminded", "escalation": "Escalated"}


def asked_lines(deliveries: Iterable[ApprovalDelivery]) -> list[str]:
    """ "Asked by email: rita, ravi", "Reminded on Slack: #approvals (failed)"."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for delivery in deliveries:
        name = delivery.label
        if delivery.status != ApprovalDelivery.Status.SENT:
            name += f" ({delivery.status})"
        grouped.setdefault((delivery.kind, delivery.channel), []).append(name)
    order = list(_DELIVERY_KIND_LABELS)
    return [
        f"{_DELIVERY_KIND_LABELS[kind]} {'by email' if channel == 'email' else 'on Slack'}: "
        + ", ".join(names)
        for (kind, channel), names in sorted(
            grouped.items(), key=lambda item: (order.index(item[0][0]), item[0][1])
        )
    ]


def channel_label(channel: str) -> str:
    return CHANNEL_LABELS.get(channel, channel)


def history_entries(approvals: list[Approval]) -> list[HistoryEntry]:
    return [
        HistoryEntry(
            approval=a,
            arguments_pretty=pretty_json_value(a.arguments),
            edited_arguments_pretty=""
            if a.edited_arguments is None
            else pretty_json_value(a.edited_arguments),
            workflow_url=client.workflow_ui_url(a.workflow_id),
            asked=asked_lines(a.deliveries.all()),
        )
        for a in approvals
    ]

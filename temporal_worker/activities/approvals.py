"""Approval notifications: mirror each approval event for audit and push it live."""

from __future__ import annotations

from temporalio import activity

from temporal_worker.contracts.approvals import (
    NOTIFY_APPROVAL_ACTIVITY,
    ApprovalEvent,
    ApprovalEventRecorded,
)
from temporal_worker.contracts.events import (
    REVIEWERS_GROUP,
    ApprovalClaimedEvent,
    ApprovalDecidedEvent,
    ApprovalRemindedEvent,
    ApprovalRequestedEvent,
    LiveEvent,
    conversation_group,
)
from temporal_worker.ports import Ports


class ApprovalActivity:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    @activity.defn(name=NOTIFY_APPROVAL_ACTIVITY)
    async def notify_approval(self, event: ApprovalEvent) -> ApprovalEventRecorded:
        """Idempotent: keyed by workflow id + tool call id in the audit table."""
        approval_id = await self.ports.audit.record(event)
        live = _live_event(event, approval_id)
        for group in (REVIEWERS_GROUP, conversation_group(event.approval.conversation_id)):
            await self.ports.live.publish(group, live)
        return ApprovalEventRecorded(call_id=event.approval.call_id)


def _live_event(event: ApprovalEvent, approval_id: int) -> LiveEvent:
    conversation_id, call_id = event.approval.conversation_id, event.approval.call_id
    if event.kind == "claimed":
        return ApprovalClaimedEvent(
            conversation_id, call_id, approval_id, claimed_by=event.approval.claimed_by
        )
    if event.kind == "reminder":
        return ApprovalRemindedEvent(conversation_id, call_id, approval_id)
    if event.kind == "decided":
        outcome = event.decision.outcome if event.decision is not None else ""
        return ApprovalDecidedEvent(conversation_id, call_id, approval_id, outcome=outcome)
    return ApprovalRequestedEvent(conversation_id, call_id, approval_id)

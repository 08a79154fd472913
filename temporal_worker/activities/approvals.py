"""Approval notifications: mirror each approval event for audit, push it live, and reach
the reviewers it concerns where they are (email, Slack)."""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError

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

logger = logging.getLogger(__name__)

# A mail server or Slack that fails this often is reported and left behind: the request
# still waits on the dashboard, and its deadline must not wait on a mail server.
MAX_DELIVERY_ATTEMPTS = 3


class ApprovalActivity:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    @activity.defn(name=NOTIFY_APPROVAL_ACTIVITY)
    async def notify_approval(self, event: ApprovalEvent) -> ApprovalEventRecorded:
        """Idempotent: the audit row is keyed by workflow id + tool call id, and each email
        or Slack message by approval, recipient, kind and channel (a retry skips sent ones)."""
        approval_id = await self.ports.audit.record(event)
        live = _live_event(event, approval_id)
        for group in (REVIEWERS_GROUP, conversation_group(event.approval.conversation_id)):
            await self.ports.live.publish(group, live)
        deliveries = await self.ports.channels.deliver(event)
        asked = list(deliveries.asked)
        if deliveries.failed:
            attempt = activity.info().attempt
            if attempt < MAX_DELIVERY_ATTEMPTS:
                raise ApplicationError(
                    f"{len(deliveries.failed)} approval deliveries failed (attempt {attempt})",
                    deliveries.failed,
                    type="ApprovalDeliveryFailed",
                )
            logger.warning(
                "approval %s: giving up on %s after %d attempts",
                event.approval.call_id,
                ", ".join(deliveries.failed),
                attempt,
            )
            asked += [f"{failed} (failed)" for failed in deliveries.failed]
        return ApprovalEventRecorded(call_id=event.approval.call_id, asked=asked)


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

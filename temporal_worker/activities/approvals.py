"""Approval notifications: mirror each approval event for audit and push it live."""

from __future__ import annotations

from temporalio import activity

from reviews.services import approval_event_record
from temporal_worker.shared import NOTIFY_APPROVAL_ACTIVITY, ApprovalEvent, ApprovalEventRecorded


@activity.defn(name=NOTIFY_APPROVAL_ACTIVITY)
async def notify_approval(event: ApprovalEvent) -> ApprovalEventRecorded:
    """Idempotent: keyed by workflow id + tool call id in the audit table."""
    await approval_event_record(event=event)
    return ApprovalEventRecorded(call_id=event.approval.call_id)

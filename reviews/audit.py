"""The approvals audit table's one writer: the worker's notify activity mirrors every
approval event here (requested, claimed, reminded, decided, and where it was decided).

Implements `temporal_worker.ports.ApprovalAudit`. The workflow history is the record;
this table lets the history page and the admin filter and read it fast.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from django.utils import timezone

from reviews.models import Approval
from temporal_worker.contracts.approvals import ApprovalDecided, ApprovalEvent
from temporal_worker.contracts.conversation import conversation_workflow_id

STATUS_BY_OUTCOME = {
    "approved": Approval.Status.APPROVED,
    "rejected": Approval.Status.REJECTED,
    "withdrawn": Approval.Status.WITHDRAWN,
}


class ApprovalAuditTable:
    async def record(self, event: ApprovalEvent) -> int:
        """Mirror one approval event (idempotent: keyed by workflow id + call id)."""
        pending = event.approval
        approval, _ = await Approval.objects.aget_or_create(
            workflow_id=conversation_workflow_id(pending.conversation_id),
            call_id=pending.call_id,
            defaults={
                "conversation_id": uuid.UUID(pending.conversation_id),
                "requester_id": pending.requester_id,
                "tool": pending.tool,
                "agent": pending.agent,
                "summary": pending.summary[:300],
                "reason": pending.reason,
                "arguments": json.loads(pending.arguments or "{}"),
                "arguments_hash": pending.arguments_hash,
                "requested_at": datetime.fromisoformat(pending.requested_at),
                "deadline": datetime.fromisoformat(pending.deadline),
                "timeout_action": pending.timeout_action,
            },
        )
        if event.kind == "claimed" and pending.claimed_by_id:
            approval.claimed_by_id = pending.claimed_by_id
            await approval.asave(update_fields=["claimed_by"])
        if event.kind == "reminder" and approval.reminded_at is None:
            approval.reminded_at = timezone.now()
            await approval.asave(update_fields=["reminded_at"])
        decision = event.decision
        if event.kind == "decided" and decision is not None:
            approval.status = STATUS_BY_OUTCOME[decision.outcome]
            approval.decided_by_id = decision.decided_by_id or None
            approval.decided_by_system = decision.by_system
            approval.decided_at = datetime.fromisoformat(decision.decided_at)
            approval.decision_reason = decision.reason
            approval.edited_arguments = json.loads(decision.arguments) if decision.edited else None
            approval.edited_summary = decision.summary[:300] if decision.edited else ""
            approval.decision_channel = decision_channel(decision)
            approval.step_up = decision.step_up
            await approval.asave()
        return approval.pk


def decision_channel(decision: ApprovalDecided) -> str:
    """Where it was decided: the reviewer's channel, the deadline, or the user's chat (a
    decision from a worker older than channels came from the dashboard)."""
    if decision.by_system:
        return "deadline"
    if decision.outcome == "withdrawn":
        return "chat"
    return decision.channel or "dashboard"

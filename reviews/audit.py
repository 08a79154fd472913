"""The approvals audit table's one writer: the worker's notify activity mirrors every
approval event here (requested, claimed, reminded, decided).

Implements `temporal_worker.ports.ApprovalAudit`. The workflow history is the record;
this table lets the history page and the admin filter and read it fast.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from reviews.models import Approval
from temporal_worker.contracts.approvals import ApprovalEvent
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
            if settings.APPROVAL_REMINDER_EMAILS:
                await sync_to_async(_reminder_email_send)(approval=approval)
        decision = event.decision
        if event.kind == "decided" and decision is not None:
            approval.status = STATUS_BY_OUTCOME[decision.outcome]
            approval.decided_by_id = decision.decided_by_id or None
            approval.decided_by_system = decision.by_system
            approval.decided_at = datetime.fromisoformat(decision.decided_at)
            approval.decision_reason = decision.reason
            approval.edited_arguments = json.loads(decision.arguments) if decision.edited else None
            approval.edited_summary = decision.summary[:300] if decision.edited else ""
            await approval.asave()
        return approval.pk


def _reminder_email_send(*, approval: Approval) -> None:
    path = reverse("reviews:detail", args=[approval.conversation_id, approval.call_id])
    send_mail(
        subject=f"Waiting for review: {approval.summary}",
        message=(
            f"{approval.summary} has waited since {approval.requested_at:%Y-%m-%d %H:%M} UTC; "
            f"at {approval.deadline:%Y-%m-%d %H:%M} UTC the policy will "
            f"{approval.timeout_action} it.\nReview it at {path}"
        ),
        from_email=None,
        recipient_list=settings.APPROVAL_REMINDER_EMAILS,
        fail_silently=True,
    )

"""Deleting conversations for good, and exporting one person's data.

The order makes every step safe to repeat: the conversation is archived first (no new
message can start its workflow again), its pending approvals are withdrawn (reviewers'
inboxes drop them), its workflow is ended and every run's history deleted in Temporal,
and only then are its rows removed. A failure on the way leaves the row, so deleting
again picks up where it stopped. The approvals audit keeps who decided what, without the
text or the arguments.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from chatapp.models import Conversation
from reviews.models import Approval, ApprovalLink
from temporal_worker.client import approval_withdraw
from temporal_worker.client import deletion as temporal_deletion
from temporal_worker.contracts.errors import Code, NotFound, Refused

logger = logging.getLogger(__name__)

# How long to wait for the worker to record a withdrawal (and tell the reviewers) before
# the workflow is ended anyway.
WITHDRAWN_WAIT_SECONDS = 10.0
REDACTED_SUMMARY = "(conversation deleted)"


async def conversation_delete(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, confirmed: bool
) -> None:
    """The owner deletes a conversation, once they confirmed it. Deleting one already gone
    does nothing, so a retried request succeeds; someone else's is not found."""
    conversation = await Conversation.objects.filter(id=conversation_id).afirst()
    if conversation is None:
        return
    if conversation.owner_id != user.pk:
        raise NotFound("No such conversation.", code=Code.CONVERSATION_NOT_FOUND)
    if not confirmed:
        raise Refused("Confirm the deletion first: it cannot be undone.", code=Code.INVALID)
    await conversation_erase(conversation=conversation)


async def conversation_erase(*, conversation: Conversation) -> None:
    """End the conversation in Temporal, then remove its rows (see the module's docstring)."""
    conversation_id = str(conversation.id)
    if conversation.archived_at is None:
        conversation.archived_at = timezone.now()
        await conversation.asave(update_fields=["archived_at"])
    pending = await temporal_deletion.conversation_pending_approvals(
        conversation_id=conversation_id
    )
    for approval in pending:
        try:
            await approval_withdraw(conversation_id=conversation_id, call_id=approval.call_id)
        except Refused:
            pass  # decided or expired meanwhile: nothing is waiting any more
    if pending:
        await _withdrawals_recorded(conversation, [p.call_id for p in pending])
    await temporal_deletion.conversation_history_delete(conversation_id=conversation_id)
    await sync_to_async(_rows_delete)(conversation.id)
    logger.info("conversation %s deleted", conversation_id)


async def _withdrawals_recorded(conversation: Conversation, call_ids: list[str]) -> None:
    """Wait (briefly) for the worker to mirror the withdrawals: its notify activity is what
    updates the audit and the reviewers' open inboxes, and ending the workflow stops it."""
    deadline = time.monotonic() + WITHDRAWN_WAIT_SECONDS
    while time.monotonic() < deadline:
        still = await Approval.objects.filter(
            conversation=conversation, call_id__in=call_ids, status=Approval.Status.PENDING
        ).aexists()
        if not still:
            return
        await asyncio.sleep(0.1)
    logger.warning("conversation %s: withdrawals not mirrored in time", conversation.id)


def _rows_delete(conversation_id: uuid.UUID) -> None:
    with transaction.atomic():
        approvals = Approval.objects.filter(conversation_id=conversation_id)
        ApprovalLink.objects.filter(approval__in=approvals).delete()
        # Still pending here only if the worker never recorded the withdrawal.
        approvals.filter(status=Approval.Status.PENDING).update(
            status=Approval.Status.WITHDRAWN, decision_channel="chat", decided_at=timezone.now()
        )
        approvals.update(
            conversation=None,
            summary=REDACTED_SUMMARY,
            reason="",
            arguments={},
            edited_arguments=None,
            edited_summary="",
            decision_reason="",
            redacted_at=timezone.now(),
        )
        Conversation.objects.filter(id=conversation_id).delete()


class ExpiredConversations:
    """Implements `temporal_worker.ports.ConversationRetention` for the retention job."""

    async def expired_delete(self, *, older_than: dt.datetime, batch: int) -> tuple[int, int]:
        expired = (
            Conversation.objects.annotate(
                last_active=Coalesce(Max("messages__created_at"), "created_at")
            )
            .filter(last_active__lt=older_than)
            .order_by("last_active")[:batch]
        )
        deleted = failed = 0
        async for conversation in expired:
            try:
                await conversation_erase(conversation=conversation)
            except Exception:
                logger.exception("retention: conversation %s not deleted", conversation.id)
                failed += 1
            else:
                deleted += 1
        return deleted, failed


def user_conversations_erase(user: AbstractBaseUser) -> int:
    """Before an account is deleted: every one of its conversations, as the owner would.
    Synchronous, for the admin's delete (a signal); raises when Temporal cannot be reached,
    which stops the account's deletion rather than leave histories behind."""
    conversations = list(Conversation.objects.filter(owner_id=user.pk))
    for conversation in conversations:
        async_to_sync(conversation_erase)(conversation=conversation)
    # Approvals the person requested in conversations already gone keep no link to them.
    Approval.objects.filter(requester_id=user.pk).update(requester=None)
    return len(conversations)


def user_data_export(user: AbstractBaseUser) -> dict[str, Any]:
    """Everything kept about one person, as JSON-ready data (an admin's export on request)."""
    conversations = []
    for conversation in Conversation.objects.filter(owner_id=user.pk).order_by("created_at"):
        conversations.append(
            {
                "id": str(conversation.id),
                "title": conversation.title,
                "created_at": conversation.created_at,
                "archived_at": conversation.archived_at,
                "messages": [
                    {
                        "id": str(m.id),
                        "seq": m.seq,
                        "role": m.role,
                        "content": m.content,
                        "tool_name": m.tool_name,
                        "status": m.status,
                        "created_at": m.created_at,
                    }
                    for m in conversation.messages.order_by("seq", "created_at")
                ],
            }
        )
    approvals = [
        {
            "tool": a.tool,
            "summary": a.summary,
            "arguments": a.arguments,
            "status": a.status,
            "requested_at": a.requested_at,
            "decided_at": a.decided_at,
            "decision_channel": a.decision_channel,
            "requested_by_this_person": a.requester_id == user.pk,
            "decided_by_this_person": a.decided_by_id == user.pk,
            "step_up": a.step_up,
        }
        for a in Approval.objects.filter(Q(requester_id=user.pk) | Q(decided_by_id=user.pk))
    ]
    return {
        "exported_at": timezone.now(),
        "account": {
            "id": user.pk,
            "username": user.get_username(),
            "email": getattr(user, "email", ""),
            "date_joined": getattr(user, "date_joined", None),
            "last_login": user.last_login,
        },
        "conversations": conversations,
        "approvals": approvals,
    }

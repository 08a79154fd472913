"""Reads of the chat app."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import OuterRef, Subquery

from chatapp.models import Conversation, FullToolResult, Message
from reviews.models import Approval
from temporal_worker.contracts.errors import Code, NotFound


def conversation_not_found() -> NotFound:
    return NotFound("No such conversation.", code=Code.CONVERSATION_NOT_FOUND)


async def conversation_get_for_owner(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID
) -> Conversation:
    """Missing, or owned by someone else: NotFound either way (a 404 for pages)."""
    try:
        return await Conversation.objects.aget(id=conversation_id, owner_id=user.pk)
    except Conversation.DoesNotExist as err:
        raise conversation_not_found() from err


async def conversation_list_for_owner(
    *, user: AbstractBaseUser, archived: bool = False, limit: int = 100
) -> list[Conversation]:
    qs = Conversation.objects.filter(owner_id=user.pk, archived_at__isnull=not archived)
    return [c async for c in qs.order_by("-updated_at")[:limit]]


async def message_list(*, conversation: Conversation) -> list[Message]:
    """The transcript, each tool message with its whole result when it was truncated."""
    full = FullToolResult.objects.filter(message_id=OuterRef("id")).values("content")[:1]
    qs = Message.objects.filter(conversation=conversation).annotate(content_full=Subquery(full))
    return [m async for m in qs.order_by("seq")]


async def message_latest(*, conversation_id: str) -> Message | None:
    return await Message.objects.filter(conversation_id=conversation_id).order_by("-seq").afirst()


async def message_get(*, message_id: uuid.UUID) -> Message | None:
    full = FullToolResult.objects.filter(message_id=OuterRef("id")).values("content")[:1]
    return (
        await Message.objects.filter(id=message_id)
        .annotate(content_full=Subquery(full))
        .select_related("conversation")
        .afirst()
    )


async def message_ids(*, conversation_id: str, ids: list[str]) -> set[str]:
    """Which of these message ids the database already holds."""
    return {
        str(pk)
        async for pk in Message.objects.filter(
            conversation_id=conversation_id, id__in=ids
        ).values_list("id", flat=True)
    }


async def approval_list_for_conversation(
    *, conversation: Conversation, pending_only: bool = False
) -> list[Approval]:
    qs = Approval.objects.filter(conversation=conversation).select_related(
        "decided_by", "claimed_by"
    )
    if pending_only:
        qs = qs.filter(status=Approval.Status.PENDING)
    return [a async for a in qs.order_by("requested_at")]


async def approval_for_conversation(*, conversation_id: str, call_id: str) -> Approval | None:
    return (
        await Approval.objects.filter(conversation_id=conversation_id, call_id=call_id)
        .select_related("decided_by", "claimed_by")
        .afirst()
    )

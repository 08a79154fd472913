"""Reads of the chat app."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser

from chatapp.models import Conversation, Message, PromptVersion
from reviews.models import Approval


class ConversationNotFound(Exception):
    """Missing, or owned by someone else: callers answer 404 either way."""


async def conversation_get_for_owner(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID
) -> Conversation:
    try:
        return await Conversation.objects.aget(id=conversation_id, owner_id=user.pk)
    except Conversation.DoesNotExist as err:
        raise ConversationNotFound from err


async def conversation_list_for_owner(
    *, user: AbstractBaseUser, archived: bool = False, limit: int = 100
) -> list[Conversation]:
    qs = Conversation.objects.filter(owner_id=user.pk, archived_at__isnull=not archived)
    return [c async for c in qs.order_by("-updated_at")[:limit]]


async def message_list(*, conversation: Conversation) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation=conversation).order_by("seq")]


async def message_latest(*, conversation_id: str) -> Message | None:
    return await Message.objects.filter(conversation_id=conversation_id).order_by("-seq").afirst()


async def message_get(*, message_id: uuid.UUID) -> Message | None:
    return await Message.objects.filter(id=message_id).select_related("conversation").afirst()


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


async def prompt_version_active(*, name: str) -> PromptVersion | None:
    """Read before every LLM call, so an activation applies to the next one."""
    active = PromptVersion.objects.filter(prompt__name=name, is_active=True)
    # At most one version is active (a constraint), so no ORDER BY: afirst() would add
    # one, a fifth of this read's cost.
    async for version in active.select_related("prompt").order_by()[:1]:
        return version
    return None

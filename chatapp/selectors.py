"""Reads of the chat app."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import OuterRef, Subquery

from chatapp.models import Agent, Conversation, FullToolResult, Message
from reviews.models import Approval
from temporal_worker.contracts.errors import Code, NotFound
from temporal_worker.contracts.tools import HANDOFF_TOOL_PREFIX, handoff_target


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


async def conversation_exists(*, conversation_id: object) -> bool:
    """Whether a conversation has this id (anything that is no UUID names none)."""
    try:
        parsed = uuid.UUID(str(conversation_id))
    except ValueError:
        return False
    return await Conversation.objects.filter(id=parsed).aexists()


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


async def agents_offered() -> list[Agent]:
    """The agents a user may start a conversation with, in the picker's order."""
    return [a async for a in Agent.objects.filter(is_active=True).order_by("position", "name")]


async def agent_default() -> Agent | None:
    return await Agent.objects.filter(is_default=True).afirst()


async def agent_current(*, conversation: Conversation) -> Agent | None:
    """Who answers now: the agent of the last hand-off, else the one the conversation
    started with, else the preselected one (None: the built-in agent)."""
    handed = (
        await Message.objects.filter(
            conversation=conversation,
            role=Message.Role.TOOL,
            status=Message.Status.COMPLETE,
            tool_name__startswith=HANDOFF_TOOL_PREFIX,
        )
        .order_by("-seq")
        .values_list("tool_name", flat=True)
        .afirst()
    )
    if handed:
        agent = await Agent.objects.filter(slug=handoff_target(handed)).afirst()
        if agent is not None:
            return agent
    if conversation.agent_id is not None:
        return await Agent.objects.filter(pk=conversation.agent_id).afirst()
    return await agent_default()


async def agent_get(*, slug: str) -> Agent | None:
    return await Agent.objects.filter(slug=slug).afirst()

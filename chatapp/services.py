"""Writes and side effects of the chat app. Views, consumers and activities call these."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chatapp import ratelimit, temporal_client
from chatapp.models import Conversation, Message
from chatapp.selectors import ConversationNotFound, conversation_get_for_owner
from temporal_worker.shared import ChatMessage, MessageAccepted, StopResult

TITLE_MAX_CHARS = 60
MESSAGE_FIELDS = [
    "seq",
    "role",
    "content",
    "status",
    "tool_calls",
    "tool_call_id",
    "tool_name",
    "prompt_version",
    "error_kind",
    "run_id",
]


@dataclass
class SentMessage:
    conversation: Conversation
    message: Message
    accepted: MessageAccepted


def title_from_text(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_MAX_CHARS else line[: TITLE_MAX_CHARS - 1].rstrip() + "…"


async def message_send(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, message_id: uuid.UUID, text: str
) -> SentMessage:
    """Send a user message, creating the conversation with its first message."""
    conversation, created = await Conversation.objects.aget_or_create(
        id=conversation_id, defaults={"owner_id": user.pk, "title": title_from_text(text)}
    )
    if conversation.owner_id != user.pk:
        raise ConversationNotFound
    if conversation.is_archived:
        raise temporal_client.ChatRejected("This conversation is archived; start a new one.")
    try:
        existing = await Message.objects.filter(id=message_id).afirst()
        retried = (
            existing is not None
            and existing.conversation_id == conversation.id
            and existing.role == Message.Role.USER
        )
        if existing is not None and not retried:
            # Ids are the browser's to choose, so one must never name someone else's
            # row: the mirror is keyed by id and would be overwritten.
            raise temporal_client.ChatRejected(
                "This message id is already in use; reload the page and send again.",
                "MessageIdInUse",
            )
        # A retried request was counted the first time.
        if not retried:
            wait = await ratelimit.message_send_wait(user_id=user.pk)
            if wait:
                raise temporal_client.ChatRejected(
                    f"You are sending messages too quickly; try again in {wait} s.",
                    "RateLimited",
                )
        accepted = await temporal_client.message_send(
            conversation_id=str(conversation.id),
            owner_id=user.pk,
            message_id=str(message_id),
            text=text,
        )
    except Exception as err:
        # A timed-out send may still start the workflow, whose replies need this row.
        unknown = isinstance(err, temporal_client.TemporalUnavailable) and err.outcome_unknown
        if created and not unknown:
            await conversation.adelete()
        raise
    # Temporal answers a repeated update id with the first result, so a retried
    # request is recognised by the row the first one wrote.
    accepted.duplicate = accepted.duplicate or retried
    # Shown at once; the workflow's own mirror of it (with its run) wins if already there.
    await messages_record(
        conversation_id=str(conversation.id),
        messages=[ChatMessage(id=str(message_id), seq=accepted.seq, role="user", content=text)],
        keep_existing=True,
    )
    message = await Message.objects.aget(id=message_id)
    return SentMessage(conversation=conversation, message=message, accepted=accepted)


async def messages_record(
    *,
    conversation_id: str,
    messages: Iterable[ChatMessage],
    run_id: str = "",
    keep_existing: bool = False,
) -> None:
    """Mirror workflow messages into the database. Idempotent: keyed by message id.

    `keep_existing` only adds missing rows (the web's early copy of a user message
    must not undo what the workflow's mirror wrote)."""
    rows = [
        Message(
            id=uuid.UUID(m.id),
            conversation_id=uuid.UUID(conversation_id),
            seq=m.seq,
            role=m.role,
            content=m.content,
            status=m.status,
            tool_calls=[
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls
            ],
            tool_call_id=m.tool_call_id,
            tool_name=m.tool_name,
            prompt_version=m.prompt_version,
            error_kind=m.error_kind,
            run_id=run_id,
        )
        for m in messages
    ]
    if rows:
        await _messages_write(conversation_id, rows, keep_existing)


@sync_to_async
def _messages_write(conversation_id: str, rows: list[Message], keep_existing: bool) -> None:
    # One trip to Django's database thread and one transaction: the transcript and the
    # conversation's last-activity time change together.
    with transaction.atomic():
        if keep_existing:
            Message.objects.bulk_create(rows, ignore_conflicts=True)
        else:
            Message.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["id"], update_fields=MESSAGE_FIELDS
            )
        Conversation.objects.filter(id=conversation_id).update(updated_at=timezone.now())


async def answer_stop(*, user: AbstractBaseUser, conversation_id: uuid.UUID) -> StopResult:
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    return await temporal_client.answer_stop(conversation_id=str(conversation.id))


async def turn_retry(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, notice_id: uuid.UUID
) -> None:
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    await temporal_client.turn_retry(conversation_id=str(conversation.id), notice_id=str(notice_id))


async def approval_withdraw(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, call_id: str
) -> None:
    """The user takes back an action that still waits for a reviewer."""
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    await temporal_client.approval_withdraw(conversation_id=str(conversation.id), call_id=call_id)


async def conversation_rename(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, title: str
) -> Conversation:
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    conversation.title = title.strip()[:120]
    await conversation.asave(update_fields=["title"])
    return conversation


async def conversation_archive(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID
) -> Conversation:
    """Archive: no new messages; the workflow answers what is queued and completes."""
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    if not conversation.is_archived:
        await temporal_client.conversation_close(conversation_id=str(conversation.id))
        conversation.archived_at = timezone.now()
        await conversation.asave(update_fields=["archived_at"])
    return conversation


async def tool_result_record(
    *, conversation_id: str, message: ChatMessage, full_content: str
) -> None:
    """Keep a tool's whole result for the transcript when the model only sees part of it."""
    await messages_record(conversation_id=conversation_id, messages=[message])
    await Message.objects.filter(id=uuid.UUID(message.id)).aupdate(content_full=full_content)

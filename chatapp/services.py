"""Writes and side effects of the chat app. Views and consumers call these.

Message rows are not written here: the worker's activities are their one writer
(chatapp.transcript). A message the user just sent is shown at once from what the
workflow accepted, and the workflow's first step records it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from chatapp import archive, ratelimit
from chatapp.models import Agent, Conversation, Message
from chatapp.selectors import agent_default, conversation_get_for_owner
from temporal_worker import client
from temporal_worker.contracts.conversation import (
    MessageAccepted,
    StopResult,
    VersionAccepted,
    text_fingerprint,
)
from temporal_worker.contracts.errors import Code, NotFound, RateLimited, Refused, Unavailable

TITLE_MAX_CHARS = 60
DIFFERENT_TEXT = "This message was already sent with different text; reload the page."


@dataclass
class SentMessage:
    conversation: Conversation
    # Not saved: the row is the workflow's to write. Rendered as the page's copy.
    message: Message
    accepted: MessageAccepted


def title_from_text(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_MAX_CHARS else line[: TITLE_MAX_CHARS - 1].rstrip() + "…"


def _connection_release() -> None:
    if not connection.in_atomic_block:
        connection.close()


async def _database_connection_release() -> None:
    """Give the request's database connection back to the pool before a wait on Temporal
    (seconds; up to 45 with retries). A send kept it otherwise: sends stalled on Temporal
    took the whole pool, and every other request waited for a connection. Without a pool
    (SQLite, DB_POOL_MAX_SIZE=0) it stays open: reopening would cost more than keeping it."""
    if settings.DATABASES["default"].get("OPTIONS", {}).get("pool"):
        await sync_to_async(_connection_release)()


async def _agent_to_start_with(slug: str) -> Agent | None:
    """The agent a new conversation records: the one picked (it must be offered), else the
    preselected one (None when no agent is defined: the built-in one answers)."""
    if not slug:
        return await agent_default()
    agent = await Agent.objects.filter(slug=slug, is_active=True).afirst()
    if agent is None:
        raise Refused("This agent is not available; pick another one.", code=Code.INVALID)
    return agent


async def message_send(
    *,
    user: AbstractBaseUser,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    text: str,
    agent: str = "",
) -> SentMessage:
    """Send a user message, creating the conversation with its first message (and the
    agent picked for it; a later message's `agent` is ignored: hand-offs change it)."""
    exists = await Conversation.objects.filter(id=conversation_id).aexists()
    conversation, created = await Conversation.objects.aget_or_create(
        id=conversation_id,
        defaults={
            "owner_id": user.pk,
            "title": title_from_text(text),
            "agent": None if exists else await _agent_to_start_with(agent),
        },
    )
    if conversation.owner_id != user.pk:
        raise NotFound("No such conversation.", code=Code.CONVERSATION_NOT_FOUND)
    if conversation.is_archived:
        raise Refused("This conversation is archived; start a new one.", code=Code.ARCHIVED)
    try:
        existing = await Message.objects.filter(id=message_id).afirst()
        if existing is not None and (
            existing.conversation_id != conversation.id or existing.role != Message.Role.USER
        ):
            # Ids are the browser's to choose, so one must never name someone else's
            # row: the mirror is keyed by id and would be overwritten.
            raise Refused(
                "This message id is already in use; reload the page and send again.",
                code=Code.MESSAGE_ID_IN_USE,
            )
        if existing is not None and existing.content != text:
            raise Refused(DIFFERENT_TEXT, code=Code.MESSAGE_ID_IN_USE)
        # A retried request (a double click, a resend after a timeout) is counted once
        # and shown once.
        first_send = await ratelimit.message_first_seen(message_id=str(message_id))
        if first_send:
            wait = await ratelimit.message_send_wait(user_id=user.pk)
            if wait:
                await ratelimit.message_refused(message_id=str(message_id))
                raise RateLimited(
                    "You are sending messages too quickly; try again in {retry_after} s.",
                    code=Code.RATE_LIMITED,
                    retry_after=wait,
                )
        await _database_connection_release()
        try:
            accepted = await client.message_send(
                conversation_id=str(conversation.id),
                owner_id=user.pk,
                owner_name=user.get_username(),
                message_id=str(message_id),
                text=text,
            )
        except Exception:
            if first_send:
                # Not sent, or not known to be: sending it again is a send of its own.
                await ratelimit.message_refused(message_id=str(message_id))
            raise
    except Exception as err:
        # A timed-out send may still start the workflow, whose replies need this row.
        unknown = isinstance(err, Unavailable) and err.outcome_unknown
        if created and not unknown:
            await conversation.adelete()
        if isinstance(err, Unavailable) and not unknown:
            raise Unavailable(
                "The agent service is unavailable; your message was not sent and is kept "
                "in the box. Send it again in a moment.",
                code=err.code,
            ) from err
        raise
    sent_as = accepted.text_fingerprint
    if sent_as and sent_as != text_fingerprint(text):
        # The id was first sent with another text: Temporal answered with that result.
        raise Refused(DIFFERENT_TEXT, code=Code.MESSAGE_ID_IN_USE)
    # Temporal answers a repeated update id with the first result: a repeat is on the
    # page already.
    accepted.duplicate = accepted.duplicate or existing is not None or not first_send
    message = Message(
        id=message_id,
        conversation=conversation,
        seq=accepted.seq,
        role=Message.Role.USER,
        content=text,
        created_at=timezone.now(),
    )
    return SentMessage(conversation=conversation, message=message, accepted=accepted)


async def answer_stop(*, user: AbstractBaseUser, conversation_id: uuid.UUID) -> StopResult:
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    return await client.answer_stop(conversation_id=str(conversation.id))


async def turn_retry(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, notice_id: uuid.UUID
) -> None:
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    await client.turn_retry(conversation_id=str(conversation.id), notice_id=str(notice_id))


async def approval_withdraw(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, call_id: str
) -> None:
    """The user takes back an action that still waits for a reviewer."""
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    await client.approval_withdraw(conversation_id=str(conversation.id), call_id=call_id)


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
        await client.conversation_close(conversation_id=str(conversation.id))
        conversation.archived_at = timezone.now()
        await conversation.asave(update_fields=["archived_at"])
    return conversation


async def conversation_unarchive(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID
) -> Conversation:
    """Unarchive: a new run of the same workflow takes over the completed one's state,
    so the next message is answered with the whole conversation in mind."""
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    if conversation.is_archived:
        await client.conversation_reopen(
            conversation_id=str(conversation.id),
            owner_id=user.pk,
            owner_name=user.get_username(),
            from_transcript=lambda: archive.state_from_transcript(conversation=conversation),
        )
        conversation.archived_at = None
        await conversation.asave(update_fields=["archived_at"])
    return conversation


async def answer_regenerate(
    *,
    user: AbstractBaseUser,
    conversation_id: uuid.UUID,
    request_id: uuid.UUID,
    reply_id: uuid.UUID,
) -> VersionAccepted:
    """A new answer to the last message; the earlier one stays, browsable."""
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    if conversation.is_archived:
        raise Refused("This conversation is archived; unarchive it first.", code=Code.ARCHIVED)
    return await client.answer_regenerate(
        conversation_id=str(conversation.id), request_id=str(request_id), reply_id=str(reply_id)
    )


async def message_edit(
    *,
    user: AbstractBaseUser,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    replaces_id: uuid.UUID,
    text: str,
) -> VersionAccepted:
    """Replace the last message with `text` and answer it anew (a new message id, made
    when the edit form was rendered: a repeat is applied once and counted once)."""
    conversation = await conversation_get_for_owner(user=user, conversation_id=conversation_id)
    if conversation.is_archived:
        raise Refused("This conversation is archived; unarchive it first.", code=Code.ARCHIVED)
    existing = await Message.objects.filter(id=message_id).afirst()
    if existing is not None and (
        existing.conversation_id != conversation.id or existing.content != text
    ):
        raise Refused(DIFFERENT_TEXT, code=Code.MESSAGE_ID_IN_USE)
    first_send = await ratelimit.message_first_seen(message_id=str(message_id))
    if first_send:
        wait = await ratelimit.message_send_wait(user_id=user.pk)
        if wait:
            await ratelimit.message_refused(message_id=str(message_id))
            raise RateLimited(
                "You are sending messages too quickly; try again in {retry_after} s.",
                code=Code.RATE_LIMITED,
                retry_after=wait,
            )
    try:
        return await client.message_edit(
            conversation_id=str(conversation.id),
            message_id=str(message_id),
            replaces_id=str(replaces_id),
            text=text,
        )
    except Exception:
        if first_send:
            await ratelimit.message_refused(message_id=str(message_id))
        raise

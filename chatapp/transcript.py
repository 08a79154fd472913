"""The transcript's one writer: the worker's activities mirror the workflow's messages here.

Implements `temporal_worker.ports.Transcript`. The workflow is the source of truth;
these rows let pages, the sidebar and the admin read fast and survive any restart.
Writes are idempotent (keyed by message id) because activities run at least once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from chatapp.agents import agent_profile
from chatapp.models import Conversation, FullToolResult, Message
from chatapp.prompts import prompt_active
from temporal_worker.contracts.conversation import ChatMessage
from temporal_worker.ports import AgentProfile, Prompt

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
    "finish_reason",
    "agent",
    "run_id",
]


def _row(conversation_id: str, message: ChatMessage, run_id: str) -> Message:
    return Message(
        id=uuid.UUID(message.id),
        conversation_id=uuid.UUID(conversation_id),
        seq=message.seq,
        role=message.role,
        content=message.content,
        status=message.status,
        tool_calls=[
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        tool_name=message.tool_name,
        prompt_version=message.prompt_version,
        error_kind=message.error_kind,
        finish_reason=message.finish_reason,
        agent=message.agent,
        run_id=run_id,
    )


def _write(conversation_id: str, messages: Sequence[ChatMessage], run_id: str) -> None:
    if not messages:
        return
    rows = [_row(conversation_id, m, run_id) for m in messages]
    # One transaction: the transcript and the conversation's last-activity time change
    # together.
    with transaction.atomic():
        Message.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["id"], update_fields=MESSAGE_FIELDS
        )
        Conversation.objects.filter(id=conversation_id).update(updated_at=timezone.now())


class DatabaseTranscript:
    async def step_begin(
        self, *, conversation_id: str, messages: Sequence[ChatMessage], run_id: str, prompt: str
    ) -> Prompt:
        return await sync_to_async(self._step_begin)(conversation_id, messages, run_id, prompt)

    @staticmethod
    def _step_begin(
        conversation_id: str, messages: Sequence[ChatMessage], run_id: str, prompt: str
    ) -> Prompt:
        # One trip to Django's database thread for both.
        _write(conversation_id, messages, run_id)
        return prompt_active(prompt)

    async def step_begin_for_agent(
        self, *, conversation_id: str, messages: Sequence[ChatMessage], run_id: str, agent: str
    ) -> AgentProfile:
        return await sync_to_async(self._step_begin_for_agent)(
            conversation_id, messages, run_id, agent
        )

    @staticmethod
    def _step_begin_for_agent(
        conversation_id: str, messages: Sequence[ChatMessage], run_id: str, agent: str
    ) -> AgentProfile:
        # One trip to Django's database thread for both.
        _write(conversation_id, messages, run_id)
        return agent_profile(conversation_id=conversation_id, agent=agent)

    async def record(
        self, *, conversation_id: str, messages: Sequence[ChatMessage], run_id: str
    ) -> None:
        await sync_to_async(_write)(conversation_id, messages, run_id)

    async def keep_full_tool_result(
        self, *, conversation_id: str, message_id: str, content: str
    ) -> None:
        await FullToolResult.objects.aupdate_or_create(
            message_id=uuid.UUID(message_id),
            defaults={"conversation_id": uuid.UUID(conversation_id), "content": content},
        )

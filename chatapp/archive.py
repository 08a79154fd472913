"""The archive: archived conversations, and what a reopened one starts from when
Temporal no longer holds its completed run (the retention period has passed)."""

from __future__ import annotations

from django.conf import settings

from chatapp.models import Conversation, Message
from chatapp.selectors import agent_current
from chatapp.versions import transcript_items
from temporal_worker.contracts.conversation import AgentState, ChatMessage
from temporal_worker.contracts.tools import ToolCall

# The seen ids the workflow keeps (SEEN_IDS_KEPT): a resend of an old id stays a repeat.
SEEN_IDS_KEPT = 500


def _chat_message(row: Message) -> ChatMessage:
    return ChatMessage(
        id=str(row.id),
        seq=row.seq,
        role=row.role,  # type: ignore[arg-type]
        content=row.content,
        status=row.status,  # type: ignore[arg-type]
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in row.tool_calls],
        tool_call_id=row.tool_call_id,
        tool_name=row.tool_name,
        prompt_version=row.prompt_version,
        error_kind=row.error_kind,
        finish_reason=row.finish_reason,
        agent=row.agent,
    )


async def state_from_transcript(*, conversation: Conversation) -> AgentState:
    """The workflow state the database implies: the model's context (the recent
    messages; the workflow trims it further), the numbering, the ids already used and
    the agent answering now."""
    keep = settings.AGENT_CONTEXT_MAX_MESSAGES
    rows = [
        m async for m in Message.objects.filter(conversation=conversation).order_by("-seq")[:keep]
    ][::-1]
    # Earlier versions (regenerated answers, edited messages) stay out, as in the run.
    current = [item for item in transcript_items(rows) if isinstance(item, Message)]
    context: list[ChatMessage] = []
    for row in current:
        # A message the model refused under its content policy stays out of its context.
        if row.error_kind == "content_policy" and context and context[-1].role == "user":
            context[-1].in_context = False
        context.append(_chat_message(row))
    last_seq = (
        await Message.objects.filter(conversation=conversation)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .afirst()
    )
    seen = [
        str(pk)
        async for pk in Message.objects.filter(conversation=conversation, role=Message.Role.USER)
        .order_by("-seq")
        .values_list("id", flat=True)[:SEEN_IDS_KEPT]
    ][::-1]
    agent = await agent_current(conversation=conversation)
    return AgentState(
        context=context,
        next_seq=(last_seq or 0) + 1,
        seen_message_ids=seen,
        agent=agent.slug if agent is not None else "",
    )

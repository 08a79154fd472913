"""The conversation workflow end to end: a real Temporal dev server, a real worker, real
HTTP to the scripted model, and the database rows the pages render.

Each test asserts what the user would see (chatapp.models.Message rows, live progress)
and what the workflow history records. No fixed sleeps: everything polls.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import logging
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus

from chatapp import prompts, services
from chatapp.models import Conversation, Message
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import (
    CONTENT_POLICY_ERROR,
    LLM_ACTIVITY,
    RATE_LIMIT_ERROR,
    ConversationResult,
    LlmRequest,
    LlmResult,
    conversation_workflow_id,
)
from temporal_worker.contracts.errors import UserError
from temporal_worker.contracts.events import conversation_group
from temporal_worker.scripted_model import server as scripted_server
from tests.factories import user_create
from tests.helpers import eventually, history, of_type

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
FAILED = EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
CANCEL_REQUESTED = EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED
UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


# --- helpers -----------------------------------------------------------------------


@dataclass
class ModelCall:
    """One request the scripted model answered: what it received and what it replied."""

    messages: list[dict[str, Any]]
    tools: Any
    reply: str

    @property
    def turns(self) -> list[tuple[str, Any]]:
        return [(m["role"], m.get("content")) for m in self.messages]


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[ModelCall]:
    """Every request the scripted model answered (faulted requests never get this far).

    A spy at the network boundary: it wraps the test double's reply function and
    changes nothing in the product.
    """
    calls: list[ModelCall] = []
    real = scripted_server.reply_for

    def spy(messages: Any, tools: Any) -> Any:
        reply = real(messages, tools)
        calls.append(ModelCall([dict(m) for m in messages], tools, reply.content or ""))
        return reply

    monkeypatch.setattr(scripted_server, "reply_for", spy)
    return calls


def system_turn() -> tuple[str, str]:
    return ("system", prompts.DEFAULTS[prompts.AGENT_SYSTEM_PROMPT].text)


async def new_user() -> Any:
    return await sync_to_async(user_create)()


async def send(user: Any, cid: uuid.UUID, text: str) -> services.SentMessage:
    return await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text=text
    )


async def rows(cid: uuid.UUID, **filters: Any) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation_id=cid, **filters)]


async def wait_rows(cid: uuid.UUID, count: int, **filters: Any) -> list[Message]:
    """Wait until at least `count` rows match, and return them (ordered by seq)."""

    async def probe() -> list[Message] | None:
        found = await rows(cid, **filters)
        return found if len(found) >= count else None

    return await eventually(probe)


async def wait_idle(cid: uuid.UUID) -> None:
    """Wait until the workflow has taken in its last result (rows are written first)."""

    async def idle() -> bool:
        live = await temporal_client.conversation_live_state(conversation_id=str(cid))
        return live is not None and live.status == "idle" and live.queued == 0

    await eventually(idle)


async def llm_inputs(client: Client, events: list[HistoryEvent]) -> list[LlmRequest]:
    """The decoded inputs of every call_llm the workflow scheduled, in order."""
    inputs = []
    for event in of_type(events, SCHEDULED):
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name != LLM_ACTIVITY:
            continue
        [request] = await client.data_converter.decode(attrs.input.payloads, [LlmRequest])
        inputs.append(request)
    return inputs


def accepted_update_ids(events: list[HistoryEvent]) -> list[str]:
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for e in of_type(events, UPDATE_ACCEPTED)
    ]


def seconds_between(earlier: HistoryEvent, later: HistoryEvent) -> float:
    return (later.event_time.ToDatetime() - earlier.event_time.ToDatetime()).total_seconds()


def requests_for(scripted_model: Any, text: str) -> list[dict[str, Any]]:
    return [r for r in scripted_model.request_log if r["last_user"] == text]


async def live_state(cid: uuid.UUID) -> temporal_client.LiveState | None:
    return await temporal_client.conversation_live_state(conversation_id=str(cid))


async def wait_thinking(cid: uuid.UUID) -> None:
    async def probe() -> bool:
        state = await live_state(cid)
        return state is not None and state.status == "thinking"

    await eventually(probe)


# --- 1. a full turn ------------------------------------------------------------------


async def test_full_turn_records_both_messages_with_prompt_version(
    temporal, worker, scripted_model, model_calls
):
    user = await new_user()
    cid, text = uuid.uuid4(), "Hello agent, what can you do?"

    sent = await send(user, cid, text)

    assert sent.accepted.seq == 1
    assert not sent.accepted.duplicate
    assert sent.accepted.queue_position == 0
    assert (sent.message.role, sent.message.seq, sent.message.content) == ("user", 1, text)
    [reply] = await wait_rows(cid, 1, role="assistant")
    [call] = model_calls
    # What went over the wire: the system prompt, then the user's message...
    assert call.turns == [system_turn(), ("user", text)]
    # ...and the user sees the model's reply, stamped with the prompt version.
    assert reply.content == call.reply
    assert reply.content.startswith("**Scripted demo model.**")
    assert reply.status == "complete"
    assert (
        reply.prompt_version
        == prompts.DEFAULTS[prompts.AGENT_SYSTEM_PROMPT].version_id
        == "agent-system@v1"
    )
    assert reply.seq > sent.message.seq
    assert [m.role for m in await rows(cid)] == ["user", "assistant"]
    # What the workflow handed the activity: the user's message, with its update's seq.
    events = await history(temporal, cid)
    [request] = await llm_inputs(temporal, events)
    assert [(m.id, m.role, m.seq, m.content) for m in request.context] == [
        (str(sent.message.id), "user", 1, text)
    ]
    assert (request.reply_id, request.reply_seq) == (str(reply.id), reply.seq)
    # The history records which prompt version produced the reply.
    [completed] = of_type(events, COMPLETED)
    [result] = await temporal.data_converter.decode(
        completed.activity_task_completed_event_attributes.result.payloads, [LlmResult]
    )
    assert (result.reply_id, result.prompt_version) == (str(reply.id), reply.prompt_version)


# --- 2. a message sent while the agent answers is queued, not dropped ----------------


async def test_messages_sent_while_answering_are_queued_and_answered_in_order(
    temporal, worker, scripted_model, model_calls
):
    first, second, third = "first question, answered slowly", "second question", "third one"
    await scripted_model.add_rules({"match": "first question", "chunk_delay_ms": 20})
    user = await new_user()
    cid = uuid.uuid4()

    await send(user, cid, first)
    await wait_thinking(cid)
    sent_second = await send(user, cid, second)
    sent_third = await send(user, cid, third)

    # One answer runs before the second message, two before the third.
    assert [s.accepted.queue_position for s in (sent_second, sent_third)] == [1, 2]
    replies = await wait_rows(cid, 3, role="assistant")
    answers = [r.content for r in replies]
    assert [c.turns for c in model_calls] == [
        [system_turn(), ("user", first)],
        [system_turn(), ("user", first), ("assistant", answers[0]), ("user", second)],
        [
            system_turn(),
            ("user", first),
            ("assistant", answers[0]),
            ("user", second),
            ("assistant", answers[1]),
            ("user", third),
        ],
    ]
    assert answers == [c.reply for c in model_calls]
    transcript = await rows(cid)
    # A queued message takes its seq when its turn starts, a reply when its answer
    # begins: the page (ordered by seq) shows each question right before its answer.
    assert [(m.seq, m.role, m.content) for m in transcript] == [
        (1, "user", first),
        (2, "assistant", answers[0]),
        (3, "user", second),
        (4, "assistant", answers[1]),
        (5, "user", third),
        (6, "assistant", answers[2]),
    ]
    # The workflow handed each call the whole conversation so far.
    inputs = await llm_inputs(temporal, await history(temporal, cid))
    assert [[m.content for m in i.context] for i in inputs] == [
        [first],
        [first, answers[0], second],
        [first, answers[0], second, answers[1], third],
    ]
    version = prompts.DEFAULTS[prompts.AGENT_SYSTEM_PROMPT].version_id
    assert [m.prompt_version for m in inputs[2].context if m.role == "assistant"] == [
        version,
        version,
    ]


# --- 3. a message id delivered twice is applied once ---------------------------------


async def test_duplicate_message_id_is_applied_once(temporal, worker, scripted_model):
    user = await new_user()
    cid, message_id, text = uuid.uuid4(), uuid.uuid4(), "say this only once"

    first = await services.message_send(
        user=user, conversation_id=cid, message_id=message_id, text=text
    )
    again = await temporal_client.message_send(
        conversation_id=str(cid), owner_id=user.pk, message_id=str(message_id), text=text
    )

    assert not first.accepted.duplicate
    assert (again.message_id, again.seq) == (str(message_id), first.accepted.seq)
    # A later message is answered after anything the duplicate could have queued.
    await send(user, cid, "and now something else")
    await wait_rows(cid, 2, role="assistant")
    transcript = await rows(cid)
    assert [(m.role, m.content) for m in transcript if m.role == "user"] == [
        ("user", text),
        ("user", "and now something else"),
    ]
    assert [m.role for m in transcript] == ["user", "assistant", "user", "assistant"]
    assert len(requests_for(scripted_model, text)) == 1
    assert accepted_update_ids(await history(temporal, cid)).count(str(message_id)) == 1


async def test_duplicate_message_id_is_reported_as_duplicate(temporal, worker, scripted_model):
    user = await new_user()
    cid, message_id, text = uuid.uuid4(), uuid.uuid4(), "double submit"

    await services.message_send(user=user, conversation_id=cid, message_id=message_id, text=text)
    await wait_rows(cid, 1, role="assistant")  # the worker has mirrored the message too
    mirrored = await Message.objects.aget(id=message_id)
    again = await services.message_send(
        user=user, conversation_id=cid, message_id=message_id, text=text
    )

    assert again.accepted.duplicate is True
    # The repeat leaves the stored row as the worker wrote it (with the run it came in).
    stored = await Message.objects.aget(id=message_id)
    assert mirrored.run_id and stored.run_id == mirrored.run_id


# --- 4. the validators refuse bad input and leave no trace ---------------------------


async def test_validators_reject_bad_messages_without_a_trace(temporal, worker, scripted_model):
    user = await new_user()
    cid = uuid.uuid4()
    limit = settings.CHAT_MESSAGE_MAX_CHARS
    rejected_ids: list[str] = []

    async def rejected(text: str) -> str:
        message_id = str(uuid.uuid4())
        rejected_ids.append(message_id)
        with pytest.raises(UserError) as caught:
            await temporal_client.message_send(
                conversation_id=str(cid), owner_id=user.pk, message_id=message_id, text=text
            )
        return str(caught.value)

    # Even as the very first message (update-with-start), an empty one is refused...
    assert "empty" in await rejected("")
    # ...and the conversation stays usable.
    await send(user, cid, "a valid message")
    await wait_rows(cid, 1, role="assistant")
    assert "empty" in await rejected(" \n\t ")
    too_long = await rejected("x" * (limit + 1))
    assert f"{limit:,}" in too_long  # states the limit...
    assert f"{limit + 1:,}" in too_long  # ...and how long this one is
    at_limit = await send(user, cid, "y" * limit)
    assert at_limit.accepted.seq > 0
    await wait_rows(cid, 2, role="assistant")
    await wait_idle(cid)
    with pytest.raises(UserError, match="not answering"):
        await temporal_client.answer_stop(conversation_id=str(cid))

    accepted = accepted_update_ids(await history(temporal, cid))
    assert not set(rejected_ids) & set(accepted)
    assert len(accepted) == 2  # the two valid messages; not the stop, nothing rejected
    assert len(await rows(cid, role="user")) == 2
    assert not await rows(cid, role="notice")


async def test_archived_conversation_refuses_messages_while_finishing_its_answer(
    temporal, worker, scripted_model, model_calls
):
    text = "slow to start"
    await scripted_model.add_rules({"match": text, "first_token_delay_ms": 2000})
    user = await new_user()
    cid = uuid.uuid4()
    await send(user, cid, text)
    await wait_thinking(cid)

    await services.conversation_archive(user=user, conversation_id=cid)
    handle = temporal.get_workflow_handle(
        conversation_workflow_id(str(cid)), result_type=ConversationResult
    )
    message_id = str(uuid.uuid4())
    with pytest.raises(UserError, match="archived"):
        await temporal_client.message_send(
            conversation_id=str(cid), owner_id=user.pk, message_id=message_id, text="one more"
        )

    # The validator refused it while the workflow was still answering...
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    # ...and the answer in flight still arrives before the workflow completes.
    result = await asyncio.wait_for(handle.result(), timeout=20)
    assert result == ConversationResult(conversation_id=str(cid), messages=2, total_steps=1)
    [reply] = await rows(cid, role="assistant")
    [call] = model_calls
    assert call.turns == [system_turn(), ("user", text)]
    assert (reply.content, reply.status) == (call.reply, "complete")
    assert message_id not in accepted_update_ids(await history(temporal, cid))


# --- 5. 429 waits exactly as long as Retry-After asks --------------------------------


async def test_rate_limit_waits_for_retry_after_then_answers(
    temporal, worker, scripted_model, model_calls
):
    text = "rate limited question"
    await scripted_model.add_rules({"match": text, "faults": [{"status": 429, "retry_after": 3}]})
    user = await new_user()
    cid = uuid.uuid4()

    await send(user, cid, text)

    [reply] = await wait_rows(cid, 1, role="assistant")
    [call] = model_calls  # the rate-limited request was never answered
    assert (reply.content, reply.status) == (call.reply, "complete")
    assert not await rows(cid, role="notice")
    events = await history(temporal, cid)
    [scheduled] = of_type(events, SCHEDULED)
    [started] = of_type(events, STARTED)
    attrs = started.activity_task_started_event_attributes
    assert attrs.attempt == 2
    assert attrs.last_failure.application_failure_info.type == RATE_LIMIT_ERROR
    assert seconds_between(scheduled, started) >= 3.0
    log = requests_for(scripted_model, text)
    assert [r["status"] for r in log] == [429, 200]
    assert log[1]["at"] - log[0]["at"] >= 3.0


# --- 6. a content policy refusal is final for that message, not the conversation -----


async def test_content_policy_refusal_shows_notice_and_conversation_goes_on(
    temporal, worker, scripted_model, model_calls, caplog
):
    caplog.set_level(logging.DEBUG, logger="temporalio")
    refused, next_text = "a forbidden topic", "a harmless follow-up"
    await scripted_model.add_rules(
        {"match": refused, "faults": [{"status": 400, "code": "content_policy_violation"}]}
    )
    user = await new_user()
    cid = uuid.uuid4()

    sent = await send(user, cid, refused)

    [notice] = await wait_rows(cid, 1, role="notice")
    assert (notice.error_kind, notice.status) == ("content_policy", "error")
    # An expected outcome: no warning with a traceback from the activity worker.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]
    assert "refused" in notice.content
    assert not notice.can_retry
    assert [m.role for m in await rows(cid)] == ["user", "notice"]
    with pytest.raises(UserError, match="fail the same way"):
        await temporal_client.turn_retry(conversation_id=str(cid), notice_id=str(notice.id))

    sent_next = await send(user, cid, next_text)

    [reply] = await wait_rows(cid, 1, role="assistant")
    assert [(m.role, m.content) for m in await rows(cid) if m.role != "notice"] == [
        ("user", refused),
        ("user", next_text),
        ("assistant", reply.content),
    ]
    # Tried exactly once: one request, attempt 1, a non-retryable failure.
    assert [r["status"] for r in requests_for(scripted_model, refused)] == [400]
    events = await history(temporal, cid)
    started, failed = of_type(events, STARTED), of_type(events, FAILED)
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1, 1]
    [failure] = [e.activity_task_failed_event_attributes.failure for e in failed]
    assert failure.application_failure_info.type == CONTENT_POLICY_ERROR
    assert failure.application_failure_info.non_retryable
    assert started[0].event_id < failed[0].event_id < started[1].event_id
    # The refused message is left out of every later call: in the workflow's context...
    inputs = await llm_inputs(temporal, events)
    assert [m.id for m in inputs[0].context if m.role == "user"] == [str(sent.message.id)]
    assert [m.id for m in inputs[1].context if m.role == "user"] == [str(sent_next.message.id)]
    # ...and on the wire (the notice is for the user, never for the model).
    [call] = model_calls
    assert call.turns == [system_turn(), ("user", next_text)]
    assert (reply.content, reply.status) == (call.reply, "complete")


# --- 7. a server error is retried ------------------------------------------------------


async def test_server_error_is_retried_and_answered(temporal, worker, scripted_model, model_calls):
    text = "the model hiccups"
    await scripted_model.add_rules({"match": text, "faults": [{"status": 500}]})
    user = await new_user()
    cid = uuid.uuid4()

    await send(user, cid, text)

    [reply] = await wait_rows(cid, 1, role="assistant")
    [call] = model_calls
    assert (reply.content, reply.status) == (call.reply, "complete")
    assert not await rows(cid, role="notice")
    [started] = of_type(await history(temporal, cid), STARTED)
    assert started.activity_task_started_event_attributes.attempt == 2
    assert started.activity_task_started_event_attributes.last_failure.message
    assert [r["status"] for r in requests_for(scripted_model, text)] == [500, 200]


# --- 8. stop keeps what was streamed ---------------------------------------------------


async def test_stop_keeps_the_partial_reply_and_the_conversation_goes_on(
    temporal, worker, scripted_model, model_calls
):
    text = "stop me halfway"
    # Slow enough that the Stop lands mid-reply on a loaded machine (100 ms did not).
    await scripted_model.add_rules({"match": text, "chunk_delay_ms": 300})
    user = await new_user()
    cid = uuid.uuid4()
    await send(user, cid, text)

    async def streaming() -> temporal_client.LiveState | None:
        state = await live_state(cid)
        return state if state is not None and state.partial_text else None

    seen = await eventually(streaming)
    stop = await services.answer_stop(user=user, conversation_id=cid)

    assert stop.reply_id == seen.reply_id
    [reply] = await wait_rows(cid, 1, role="assistant")
    full = model_calls[0].reply  # what the model would have said, had it finished
    assert str(reply.id) == stop.reply_id
    assert reply.status == "stopped"
    assert reply.content.startswith(seen.partial_text)
    assert full.startswith(reply.content)
    assert 0 < len(reply.content) < len(full)
    assert len(of_type(await history(temporal, cid), CANCEL_REQUESTED)) == 1

    await send(user, cid, "are you still there?")
    replies = await wait_rows(cid, 2, role="assistant")
    assert (replies[1].content, replies[1].status) == (model_calls[1].reply, "complete")
    # The partial reply stays part of the conversation the model sees.
    assert model_calls[1].turns == [
        system_turn(),
        ("user", text),
        ("assistant", reply.content),
        ("user", "are you still there?"),
    ]


async def test_stop_before_the_first_token_shows_a_retryable_notice(
    temporal, worker, scripted_model
):
    text = "think for a long time"
    await scripted_model.add_rules({"match": text, "first_token_delay_ms": 3000})
    user = await new_user()
    cid = uuid.uuid4()
    await send(user, cid, text)

    async def model_thinking() -> bool:
        return bool(requests_for(scripted_model, text))

    await eventually(model_thinking)
    await services.answer_stop(user=user, conversation_id=cid)

    async def answered() -> list[Message]:
        return await rows(cid, role__in=["assistant", "notice"])

    [shown] = await eventually(answered)
    assert (shown.role, shown.error_kind, shown.can_retry) == ("notice", "stopped", True)


# --- 9. retry after a stopped turn -------------------------------------------------------


async def test_retry_after_a_stopped_turn_answers_and_refuses_stale_retries(
    temporal, worker, scripted_model, model_calls
):
    text = "retry this one"
    # Rate limited for 5 s first: Stop lands while the activity waits for its retry.
    await scripted_model.add_rules(
        {"match": text, "faults": [{"status": 429, "retry_after": 5}], "first_token_delay_ms": 300}
    )
    user = await new_user()
    cid = uuid.uuid4()
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(cid)))
    await send(user, cid, text)

    async def waiting_to_retry() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return bool(pending) and pending[0].attempt == 2

    await eventually(waiting_to_retry)
    await temporal_client.answer_stop(conversation_id=str(cid))

    [notice] = await wait_rows(cid, 1, role="notice")
    assert (notice.error_kind, notice.status, notice.can_retry) == ("stopped", "error", True)
    assert not await rows(cid, role="assistant")

    await services.turn_retry(user=user, conversation_id=cid, notice_id=notice.id)
    with pytest.raises(UserError, match="already answering"):
        await temporal_client.turn_retry(conversation_id=str(cid), notice_id=str(notice.id))

    [reply] = await wait_rows(cid, 1, role="assistant")
    [call] = model_calls
    assert call.turns == [system_turn(), ("user", text)]
    assert (reply.content, reply.status) == (call.reply, "complete")
    assert [m.role for m in await rows(cid)] == ["user", "notice", "assistant"]
    await wait_idle(cid)
    with pytest.raises(UserError, match="latest failed answer"):
        await temporal_client.turn_retry(conversation_id=str(cid), notice_id=str(notice.id))
    assert [r["status"] for r in requests_for(scripted_model, text)] == [429, 200]


# --- 10. archive ---------------------------------------------------------------------------


async def test_archive_completes_the_workflow_and_refuses_new_messages(
    temporal, worker, scripted_model
):
    user = await new_user()
    cid = uuid.uuid4()
    await send(user, cid, "hello before archiving")
    await wait_rows(cid, 1, role="assistant")

    conversation = await services.conversation_archive(user=user, conversation_id=cid)

    assert conversation.is_archived
    assert (await Conversation.objects.aget(id=cid)).archived_at is not None
    handle = temporal.get_workflow_handle(
        conversation_workflow_id(str(cid)), result_type=ConversationResult
    )
    result = await asyncio.wait_for(handle.result(), timeout=20)
    assert result == ConversationResult(conversation_id=str(cid), messages=2, total_steps=1)
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    with pytest.raises(UserError, match="archived"):
        await temporal_client.message_send(
            conversation_id=str(cid), owner_id=user.pk, message_id=str(uuid.uuid4()), text="hi"
        )
    with pytest.raises(UserError, match="archived"):
        await send(user, cid, "hi again")
    assert len(await rows(cid)) == 2
    gc.collect()  # log the SDK's unretrieved start error here, not during a later test


async def test_send_to_an_archived_conversation_leaves_no_unretrieved_error(
    temporal, worker, scripted_model, caplog
):
    user = await new_user()
    cid = uuid.uuid4()
    await send(user, cid, "hello before closing")
    await wait_rows(cid, 1, role="assistant")
    await temporal_client.conversation_close(conversation_id=str(cid))
    await asyncio.wait_for(
        temporal.get_workflow_handle(conversation_workflow_id(str(cid))).result(), timeout=20
    )
    gc.collect()
    caplog.clear()

    with pytest.raises(UserError, match="archived"):
        await temporal_client.message_send(
            conversation_id=str(cid), owner_id=user.pk, message_id=str(uuid.uuid4()), text="hi"
        )
    gc.collect()

    assert "exception was never retrieved" not in caplog.text


# --- 11. the workflow code never imports Django ----------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        "workflows.py",
        "context.py",
        *(
            f"contracts/{p.name}"
            for p in (ROOT / "temporal_worker" / "contracts").glob("*.py")
            if p.name != "__init__.py"
        ),
    ],
)
def test_workflow_modules_import_no_django_or_io(module):
    source = (ROOT / "temporal_worker" / module).read_text()
    # CPython 3.11.7 raises "AST constructor recursion depth mismatch" when a garbage
    # collection during ast.parse logs a traceback (which parses too): collect first.
    gc.collect()
    gc.disable()
    try:
        tree = ast.parse(source)
    finally:
        gc.enable()
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert imported  # the walk did find the module's imports
    forbidden = ("django", "chatapp", "openai", "temporal_worker.activities")
    offending = [n for n in imported if any(n == f or n.startswith(f + ".") for f in forbidden)]
    assert offending == []


def test_importing_the_workflow_loads_no_django():
    code = (
        "import sys, temporal_worker.workflows; "
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "assert not loaded, loaded"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# --- 12. progress reaches the conversation's channel group -----------------------------------


async def test_progress_events_stream_deltas_before_the_final_message(
    temporal, worker, scripted_model
):
    text = "stream this to my browser"
    await scripted_model.add_rules({"match": text, "chunk_delay_ms": 5})
    user = await new_user()
    cid = uuid.uuid4()
    layer = get_channel_layer()
    group = conversation_group(str(cid))
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    events: list[dict[str, Any]] = []

    async def listen() -> None:
        while True:
            event = await layer.receive(channel)
            events.append(event)
            if event["type"] == "chat.message" and event["final"]:
                return

    listener = asyncio.create_task(listen())
    try:
        await send(user, cid, text)
        await asyncio.wait_for(listener, timeout=20)
    finally:
        listener.cancel()
        await layer.group_discard(group, channel)

    [reply] = await rows(cid, role="assistant")
    assert reply.content.startswith("**Scripted demo model.**")
    # A message that was answered next is not announced again: every event is the reply's.
    assert {e["reply_id"] for e in events} == {str(reply.id)}
    kinds = [e["type"] for e in events]
    assert (kinds[0], events[0]["phase"]) == ("chat.phase", "thinking")
    assert kinds[-1] == "chat.message"
    assert (events[-1]["message_id"], events[-1]["final"]) == (str(reply.id), True)
    deltas = [e for e in events if e["type"] == "chat.delta"]
    assert len(deltas) > 1
    assert kinds.index("chat.delta") < kinds.index("chat.message")
    assert "".join(e["delta"] for e in deltas) == reply.content
    offsets = [e["offset"] for e in deltas]
    assert offsets == [len("".join(e["delta"] for e in deltas[:i])) for i in range(len(deltas))]
    assert {e["reply_id"] for e in events} == {str(reply.id)}
    assert set(kinds) <= {"chat.phase", "chat.delta", "chat.snapshot", "chat.message"}

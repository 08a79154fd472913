"""The LLM step against the ways OpenAI-compatible servers misbehave, end to end: the
real workflow and worker, the scripted model over real HTTP (it learned each fault), and
the rows and pages the user sees.

A stream without a finish reason is broken and retried; a reply the provider cut short
is kept, marked and runs no tool; a client error other than 408, 409 and 429 fails the
turn with a notice at once; an empty reply never breaks the next turn; and the phase a
retry waits in ("rate limited") survives a reload.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from chatapp import services
from chatapp.models import Message
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import (
    LLM_ACTIVITY,
    LLM_REQUEST_ERROR,
    conversation_workflow_id,
)
from temporal_worker.contracts.tools import tool_activity_name
from temporal_worker.scripted_model import ScriptedModelServer, reply_for
from temporal_worker.scripted_model.server import _deltas
from temporal_worker.tools.registry import tool_registry
from tests.factories import user_create
from tests.helpers import body, eventually, history, html_element, html_text, logged_in, of_type

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
FAILED = EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
TWO_TOOLS = "status of order 1001 and how do I return an item"


# --- helpers -----------------------------------------------------------------------------


async def start(text: str) -> tuple[Any, uuid.UUID]:
    user = await sync_to_async(user_create)()
    cid = uuid.uuid4()
    await send(user, cid, text)
    return user, cid


async def send(user: Any, cid: uuid.UUID, text: str) -> None:
    await services.message_send(user=user, conversation_id=cid, message_id=uuid.uuid4(), text=text)


async def rows(cid: uuid.UUID, **filters: Any) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation_id=cid, **filters)]


async def turn_done(cid: uuid.UUID) -> list[Message]:
    """The transcript once the workflow has taken in its last result and waits."""

    async def idle() -> bool:
        live = await temporal_client.conversation_live_state(conversation_id=str(cid))
        return live is not None and live.status == "idle" and live.queued == 0

    await eventually(idle, timeout=30)
    return await rows(cid)


def statuses(scripted_model: ScriptedModelServer, text: str) -> list[int]:
    return [r["status"] for r in scripted_model.request_log if r["last_user"] == text]


def events_before_tool_call(text: str, index: int) -> int:
    """How many events the scripted model streams before tool call `index` of its reply
    to `text` begins (with the tools the agent offers)."""
    reply = reply_for([{"role": "user", "content": text}], tool_registry().openai_tools())
    for position, delta in enumerate(_deltas(reply)):
        if any(call["index"] == index for call in delta.get("tool_calls", ())):
            return 1 + position  # the role chunk comes first
    raise AssertionError(f"the reply has no tool call {index}")


async def llm_attempts(temporal: Client, cid: uuid.UUID) -> list[int]:
    events = await history(temporal, cid)
    llm = {
        e.event_id
        for e in of_type(events, SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_type.name == LLM_ACTIVITY
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in of_type(events, STARTED)
        if e.activity_task_started_event_attributes.scheduled_event_id in llm
    ]


async def message_on_page(user: Any, cid: uuid.UUID, message_id: uuid.UUID) -> str:
    page = body(await (await logged_in(user)).get(f"/c/{cid}/"))
    element = html_element(page, f"msg-{message_id}")
    assert element is not None, f"message {message_id} is not on the page"
    return " ".join(html_text(element).split())


# --- a stream that ends before the model finished is broken: retried, never saved ---------


async def test_a_stream_that_ends_without_a_finish_reason_is_retried_not_saved(
    temporal, worker, scripted_model
):
    text = "answer me whole"
    await scripted_model.add_rules(
        {"match": text, "faults": [{"end_after_chunks": 3}], "reply": "alpha beta gamma delta"}
    )

    _, cid = await start(text)

    messages = await turn_done(cid)
    [reply] = [m for m in messages if m.role == "assistant"]
    assert (reply.content, reply.status) == ("alpha beta gamma delta", "complete")
    assert not [m for m in messages if m.role == "notice"]
    assert statuses(scripted_model, text) == [200, 200]
    assert await llm_attempts(temporal, cid) == [2]
    assert reply.finish_reason == "stop"


@pytest.mark.parametrize("inside_arguments", [False, True], ids=["between", "inside-arguments"])
async def test_a_stream_cut_among_tool_calls_runs_no_tool_until_it_comes_whole(
    temporal, worker, scripted_model, demo_shop, inside_arguments
):
    cut = events_before_tool_call(TWO_TOOLS, 1) + (2 if inside_arguments else 0)
    await scripted_model.add_rules({"match": TWO_TOOLS, "faults": [{"end_after_chunks": cut}]})

    _, cid = await start(TWO_TOOLS)

    messages = await turn_done(cid)
    calling, answer = [m for m in messages if m.role == "assistant"]
    assert [call["name"] for call in calling.tool_calls] == ["get_order", "search_help"]
    assert not answer.tool_calls
    results = sorted((m.tool_name, m.status) for m in messages if m.role == "tool")
    assert results == [("get_order", "complete"), ("search_help", "complete")]
    assert json.loads(calling.tool_calls[0]["arguments"]) == {"order_id": 1001}
    # The cut attempt produced nothing: each tool was scheduled once, after the retry.
    events = await history(temporal, cid)
    tools = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in of_type(events, SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_type.name != LLM_ACTIVITY
    ]
    assert sorted(tools) == [tool_activity_name("get_order"), tool_activity_name("search_help")]
    assert statuses(scripted_model, TWO_TOOLS) == [200, 200, 200]


# --- a reply the provider cut short is kept, marked, and runs no tool -----------------------


@pytest.mark.parametrize(
    ("reason", "note"),
    [
        ("length", "Cut off: the answer reached the length limit."),
        ("content_filter", "Stopped by the provider's content filter."),
    ],
)
async def test_a_reply_cut_short_is_marked_for_the_user_and_runs_no_tool(
    temporal, worker, scripted_model, reason, note
):
    # Cut inside the second call's arguments: the first is whole, yet neither runs.
    cut = events_before_tool_call(TWO_TOOLS, 1) + 2
    await scripted_model.add_rules(
        {"match": TWO_TOOLS, "faults": [{"finish_reason": reason, "end_after_chunks": cut}]}
    )

    user, cid = await start(TWO_TOOLS)

    messages = await turn_done(cid)
    assert [m.role for m in messages] == ["user", "assistant"]
    reply = messages[1]
    assert (reply.finish_reason, reply.status, reply.tool_calls) == (reason, "complete", [])
    assert reply.content.startswith("You asked: “status of order 1001")
    # Said so rather than retried: the same request would be cut the same way.
    assert statuses(scripted_model, TWO_TOOLS) == [200]
    shown = await message_on_page(user, cid, reply.id)
    assert note in shown
    assert "You asked:" in shown


async def test_a_plain_reply_is_not_marked(temporal, worker, scripted_model):
    user, cid = await start("a normal question")

    messages = await turn_done(cid)

    [reply] = [m for m in messages if m.role == "assistant"]
    assert reply.finish_reason == "stop"
    shown = await message_on_page(user, cid, reply.id)
    assert "Cut off" not in shown and "content filter" not in shown and "empty answer" not in shown


# --- client errors other than 408, 409 and 429 fail the turn at once --------------------------


@pytest.mark.parametrize("status", [422, 413])
async def test_a_client_error_fails_the_turn_with_a_notice_without_retrying(
    temporal, worker, scripted_model, status
):
    text = f"a request the server refuses with {status}"
    await scripted_model.add_rules({"match": text, "faults": [{"status": status}]})

    _, cid = await start(text)

    messages = await turn_done(cid)
    assert [m.role for m in messages] == ["user", "notice"]
    notice = messages[1]
    assert (notice.error_kind, notice.status) == ("llm_request", "error")
    assert not notice.can_retry
    assert statuses(scripted_model, text) == [status]
    events = await history(temporal, cid)
    [failed] = of_type(events, FAILED)
    failure = failed.activity_task_failed_event_attributes.failure
    assert failure.application_failure_info.type == LLM_REQUEST_ERROR
    assert failure.application_failure_info.non_retryable
    assert str(status) in failure.message
    assert await llm_attempts(temporal, cid) == [1]


# --- an empty reply is shown as such and never breaks the next turn -------------------------


async def test_an_empty_reply_is_shown_and_the_next_turn_is_answered(
    temporal, worker, scripted_model
):
    await scripted_model.add_rules({"match": "say nothing", "reply": ""})
    user, cid = await start("say nothing")
    [empty] = [m for m in await turn_done(cid) if m.role == "assistant"]
    assert (empty.content, empty.tool_calls) == ("", [])

    await send(user, cid, "are you there?")

    messages = await turn_done(cid)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "“are you there?”" in messages[3].content
    assert statuses(scripted_model, "are you there?") == [200]
    assert (await message_on_page(user, cid, empty.id)).startswith(
        "The model sent an empty answer."
    )
    assert empty.finish_reason == "stop"


# --- the phase a retry waits in survives a reload ---------------------------------------------


async def test_the_rate_limited_phase_survives_a_reload(temporal, worker, scripted_model):
    text = "hi while the model is busy"
    await scripted_model.add_rules({"match": text, "faults": [{"status": 429, "retry_after": 5}]})
    label = "The model is rate limited; trying again in 5 s…"
    user, cid = await start(text)
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(cid)))

    async def between_attempts() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return any(
            p.attempt == 2 and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            for p in pending
        )

    # The first attempt failed and the second waits for Retry-After: what the page shows
    # is the failed attempt's last heartbeat, which the server keeps meanwhile.
    await eventually(between_attempts)

    page = body(await (await logged_in(user)).get(f"/c/{cid}/"))

    live_reply, status = html_element(page, "live-reply"), html_element(page, "agent-status")
    assert live_reply is not None and status is not None
    assert " ".join(html_text(live_reply).split()) == label
    assert label in html_text(status)
    live = await temporal_client.conversation_live_state(conversation_id=str(cid))
    assert live is not None
    assert (live.status, live.phase, live.phase_label) == ("thinking", "waiting", label)
    assert f'data-reply="{live.reply_id}"' in live_reply
    assert [m.role for m in await turn_done(cid)] == ["user", "assistant"]

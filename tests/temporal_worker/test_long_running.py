"""Agents that run for days: continue-as-new, prompt versions, huge tool results.

Scaled so the suite stays fast: a low step threshold makes a few dozen steps cross
several continue-as-new boundaries, exactly as several hundred would by default.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from chatapp import selectors, services
from chatapp.models import Conversation, Message, Prompt
from chatapp.prompt_services import prompt_version_activate, prompt_version_create
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import LLM_ACTIVITY, conversation_workflow_id
from temporal_worker.worker import build_worker
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import decision_for, listed_pending
from tests.factories import user_create
from tests.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)

CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW


async def _runs(client: Client, conversation_id: str) -> list[Any]:
    workflow_id = conversation_workflow_id(conversation_id)
    return [e async for e in client.list_workflows(f'WorkflowId = "{workflow_id}"')]


async def _messages(conversation_id: str) -> list[Message]:
    return [
        m async for m in Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    ]


async def _idle(conversation_id: str) -> bool:
    live = await temporal_client.conversation_live_state(conversation_id=conversation_id)
    return live is not None and live.status == "idle" and live.queued == 0


async def test_a_long_turn_crosses_runs_and_loses_nothing(temporal, worker, settings) -> None:
    settings.AGENT_STEPS_PER_RUN = 10
    settings.AGENT_MAX_STEPS_PER_TURN = 500
    settings.AGENT_CONTEXT_MAX_MESSAGES = 12
    user = await sync_to_async(user_create)()
    conversation_id = uuid.uuid4()
    cid = str(conversation_id)
    steps = 45
    await services.message_send(
        user=user,
        conversation_id=conversation_id,
        message_id=uuid.uuid4(),
        text=f"[[loop {steps}]] work through the backlog",
    )
    # Messages sent while the long turn runs, some of them right around a switch of
    # runs: all must be accepted, queued and answered after it, in order.
    followups = [f"follow-up {i}" for i in range(6)]
    for text in followups:
        sent = await services.message_send(
            user=user, conversation_id=conversation_id, message_id=uuid.uuid4(), text=text
        )
        assert not sent.accepted.duplicate

    async def settled() -> bool:
        replies = [m for m in await _messages(cid) if m.role == "assistant" and not m.tool_calls]
        return len(replies) == 1 + len(followups) and await _idle(cid)

    await eventually(settled, timeout=120)

    transcript = await _messages(cid)
    seqs = [m.seq for m in transcript]
    assert seqs == sorted(set(seqs)), "messages duplicated or out of order"
    users = [m.content for m in transcript if m.role == "user"]
    assert users == [f"[[loop {steps}]] work through the backlog", *followups]
    assert sum(1 for m in transcript if m.role == "tool") == steps
    finals = [m.content for m in transcript if m.role == "assistant" and not m.tool_calls]
    assert finals[0] == f"Finished {steps} steps."
    # Each follow-up is answered after it was sent, one answer each, in order.
    answered = [m for m in transcript if m.role == "assistant" and not m.tool_calls][1:]
    for text, reply in zip(followups, answered, strict=True):
        assert text in reply.content

    runs = await _runs(temporal, cid)
    assert len(runs) >= 3, f"expected at least two continue-as-new boundaries, got {len(runs)} runs"
    assert len({m.run_id for m in transcript if m.run_id}) >= 3
    # Every run but the current one ended by continuing as new, never by failing.
    runs.sort(key=lambda run: run.start_time)
    for run in runs[:-1]:
        history = await temporal.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        assert history.events[-1].event_type == CONTINUED
    snapshot = await temporal.get_workflow_handle(conversation_workflow_id(cid)).query(
        ConversationWorkflow.snapshot
    )
    assert snapshot.total_steps == steps + 1 + len(followups)


async def test_an_approval_during_a_long_conversation_is_decided_across_runs(
    temporal, worker, settings
) -> None:
    settings.AGENT_STEPS_PER_RUN = 3
    user = await sync_to_async(user_create)()
    reviewer = await sync_to_async(user_create)()
    conversation_id = uuid.uuid4()
    cid = str(conversation_id)
    for text in ("[[loop 4]] warm up", "refund 15 on order 1009"):
        await services.message_send(
            user=user, conversation_id=conversation_id, message_id=uuid.uuid4(), text=text
        )

    async def pending() -> list:
        return [p for p in await listed_pending() if p.conversation_id == cid]

    [item] = await eventually(pending, timeout=60)
    assert len(await _runs(temporal, cid)) >= 2  # the loop already crossed a run
    decided = await temporal_client.approval_decide(
        conversation_id=cid,
        decision=decision_for(item, reviewer),
    )
    assert decided.outcome == "approved"

    async def answered() -> bool:
        return any(
            "issue_refund" in m.content
            for m in await _messages(cid)
            if m.role == "assistant" and not m.tool_calls
        ) and await _idle(cid)

    await eventually(answered, timeout=60)


async def test_a_prompt_version_change_takes_effect_on_the_next_call_only(temporal, worker) -> None:
    await sync_to_async(_seed_prompt)()
    user = await sync_to_async(user_create)()
    conversation_id = uuid.uuid4()
    cid = str(conversation_id)
    await services.message_send(
        user=user, conversation_id=conversation_id, message_id=uuid.uuid4(), text="first"
    )

    async def replies() -> list[Message]:
        found = [m for m in await _messages(cid) if m.role == "assistant"]
        return found if await _idle(cid) else []

    [first] = await eventually(replies)
    assert first.prompt_version == "agent-system@v1"

    prompt = await Prompt.objects.aget(name="agent-system")
    v2 = await sync_to_async(prompt_version_create)(prompt=prompt, text="You are terse.")
    await sync_to_async(prompt_version_activate)(version=v2)
    await services.message_send(
        user=user, conversation_id=conversation_id, message_id=uuid.uuid4(), text="second"
    )

    async def two() -> list[Message]:
        found = await replies()
        return found if len(found) == 2 else []

    first_again, second = await eventually(two)
    assert (first_again.prompt_version, second.prompt_version) == (
        "agent-system@v1",
        "agent-system@v2",
    )
    # The first call's prompt is in its recorded input's result, never re-read: the
    # history holds one completed LLM activity per reply, each with its version.
    history = await temporal.get_workflow_handle(conversation_workflow_id(cid)).fetch_history()
    scheduled = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == LLM_ACTIVITY
    ]
    assert len(scheduled) == 2


def _seed_prompt() -> None:
    from chatapp.signals import prompts_seed_defaults

    prompts_seed_defaults()


@pytest_asyncio.fixture
async def huge_tool_worker(
    temporal: Client, task_queue: str, settings: Any
) -> AsyncIterator[Worker]:
    """The product's worker, with a test tool module listed the documented way."""
    settings.AGENT_TOOL_MODULES = ["shop.tools", "tests.temporal_worker.huge_tools"]
    async with build_worker(temporal, task_queue=task_queue) as worker:
        yield worker


async def test_a_several_megabyte_tool_result_is_truncated_for_the_model_and_kept_whole(
    temporal, huge_tool_worker, settings
) -> None:
    settings.AGENT_TOOL_RESULT_MAX_CHARS = 4000
    user = await sync_to_async(user_create)()
    conversation_id = uuid.uuid4()
    cid = str(conversation_id)
    await services.message_send(
        user=user,
        conversation_id=conversation_id,
        message_id=uuid.uuid4(),
        text='[[call export_everything {"megabytes": 3}]]',
    )

    async def answered() -> list[Message]:
        found = [m for m in await _messages(cid) if m.role == "assistant" and not m.tool_calls]
        return found if await _idle(cid) else []

    await eventually(answered, timeout=60)
    [result] = [m for m in await _messages(cid) if m.role == "tool"]
    assert len(result.content) < 5000
    assert "truncated: the result has" in result.content
    transcript = await selectors.message_list(conversation=await Conversation.objects.aget(id=cid))
    [shown] = [m for m in transcript if m.role == "tool"]
    assert len(shown.content_full) > 3_000_000
    assert json.loads(shown.content_full)["rows"][0] == "x" * 1000
    history = await temporal.get_workflow_handle(conversation_workflow_id(cid)).fetch_history()
    largest = max(len(e.SerializeToString()) for e in history.events)
    assert largest < 200_000, f"a history event of {largest} bytes"

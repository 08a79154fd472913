"""kill -9 of a standalone worker (`python -m temporal_worker`), mid-stream and mid-write.

The workers are real child processes on the test database file; Temporal (the session's
dev server) notices the dead one and a second worker process finishes the turn. Nothing
the user said or the agent did is lost or done twice.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from django.db.models import Sum
from temporalio.api.enums.v1 import TimeoutType

from reviews.models import ApprovalPolicy
from shop.models import Order, Refund
from temporal_worker.contracts.conversation import LLM_ACTIVITY, conversation_workflow_id
from temporal_worker.contracts.tools import tool_activity_name
from tests.faults.support import (
    COMPLETED,
    FAILED,
    SCHEDULED,
    STARTED,
    activity_events,
    live_state,
    new_user,
    rows,
    send,
    unique,
    wait_turn_done,
)
from tests.helpers import (
    eventually,
    history,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Generous: the point is that it recovers, not how fast (the time is printed and reported).
RECOVERY_BOUND_SECONDS = 60


async def test_worker_killed_mid_stream_the_reply_is_finished_once_by_another_worker(
    temporal, worker_processes, scripted_model, model_calls, fault_timings
):
    text = unique("Tell me something slowly, a worker is about to die")
    # ~75 words at 100 ms each: about 7 s of streaming, long enough to kill it midway.
    await scripted_model.add_rules({"match": text, "chunk_delay_ms": 100})
    first_worker = await worker_processes.start()
    user = await new_user()
    cid = uuid.uuid4()

    sent = await send(user, cid, text)

    async def streaming():
        state = await live_state(cid)
        return state if state and state.status == "thinking" and state.partial_text else None

    mid_stream = await eventually(streaming, timeout=30)
    assert not await rows(cid, role="assistant"), "the reply finished before the kill"
    killed_at, killed_wall = time.monotonic(), time.time()
    first_worker.kill9()
    assert first_worker.proc.returncode == -9
    second_worker = await worker_processes.start()
    fault_timings("kill -9 -> second worker polling", time.monotonic() - killed_at)

    [reply] = await wait_turn_done(cid, 1, timeout=RECOVERY_BOUND_SECONDS)
    recovery = time.monotonic() - killed_at
    fault_timings("kill -9 mid-stream -> turn completed", recovery)
    assert recovery < RECOVERY_BOUND_SECONDS

    # Exactly one reply, with the whole text (the retry streamed it again from the start).
    calls = [c for c in model_calls if c.last_user == text]
    assert len(calls) == 2  # the killed attempt and the retry
    assert calls[0].reply == calls[1].reply
    full = calls[1].reply
    assert (reply.content, reply.status) == (full, "complete")
    assert full.startswith(mid_stream.partial_text) and len(mid_stream.partial_text) < len(full)
    assert reply.id == uuid.UUID(mid_stream.reply_id)  # the same reply, not a second one
    transcript = await rows(cid)
    assert [(m.role, m.content) for m in transcript] == [("user", text), ("assistant", full)]
    assert transcript[0].id == sent.message.id
    # The history: one call_llm, finished by attempt 2 on the second worker after the first
    # one's heartbeat timed out.
    llm = activity_events(await history(temporal, cid), LLM_ACTIVITY)
    assert (len(llm[SCHEDULED]), len(llm[COMPLETED]), len(llm[FAILED])) == (1, 1, 0)
    [started] = llm[STARTED]
    attrs = started.activity_task_started_event_attributes
    fault_timings(
        "kill -9 mid-stream -> retry attempt started",
        started.event_time.ToDatetime().timestamp() - killed_wall,
    )
    assert attrs.attempt == 2
    assert attrs.identity == second_worker.identity
    timeout = attrs.last_failure.timeout_failure_info.timeout_type
    assert timeout == TimeoutType.TIMEOUT_TYPE_HEARTBEAT, attrs.last_failure


async def _refunded(order_number: int) -> Decimal:
    total = await Refund.objects.filter(order__number=order_number).aaggregate(s=Sum("amount"))
    return total["s"] or Decimal("0.00")


@pytest.mark.timeout(120)
async def test_worker_killed_after_a_refund_was_written_the_retry_does_not_refund_twice(
    temporal, worker_processes, demo_shop, scripted_model, model_calls, fault_timings
):
    await ApprovalPolicy.objects.acreate(tool_name="issue_refund", mode="never")
    order = await Order.objects.aget(number=1009)
    refunded_before = await _refunded(order.number)
    text = "refund 20 on order 1009"
    # The first worker writes the refund, then holds the activity (a test-only
    # interceptor, tests/interceptors.py) until it is killed.
    first_worker = await worker_processes.start("--pause-after-write", "600")
    user = await new_user()
    cid = uuid.uuid4()

    await send(user, cid, text)

    refund = await eventually(
        lambda: Refund.objects.filter(conversation_id=str(cid)).afirst(), timeout=30
    )
    state = await live_state(cid)
    assert state is not None and state.status == "running_tools"
    killed_at, killed_wall = time.monotonic(), time.time()
    first_worker.kill9()
    second_worker = await worker_processes.start()

    # The tool activity has no heartbeat timeout: Temporal notices the dead worker only
    # when its start-to-close timeout (2 min) expires, then the second worker retries it.
    [answer] = await wait_turn_done(cid, 1, timeout=60)
    recovery = time.monotonic() - killed_at
    fault_timings("kill -9 mid write tool -> turn completed", recovery)

    # One refund, written once, with the call's idempotency key.
    workflow_id = conversation_workflow_id(str(cid))
    refunds = [r async for r in Refund.objects.filter(conversation_id=str(cid))]
    assert [r.pk for r in refunds] == [refund.pk]
    assert refund.idempotency_key.startswith(f"{workflow_id}:")
    assert await Refund.objects.filter(idempotency_key=refund.idempotency_key).acount() == 1
    assert refund.amount == Decimal("20.00")
    assert await _refunded(order.number) == refunded_before + Decimal("20.00")
    # The transcript: the request, the agent's tool call, the tool's result, the answer;
    # each once, in order.
    transcript = await rows(cid)
    assert [m.role for m in transcript] == ["user", "assistant", "tool", "assistant"]
    assert [m.seq for m in transcript] == sorted({m.seq for m in transcript})
    call_message, tool_message = transcript[1], transcript[2]
    [call] = call_message.tool_calls
    assert call["name"] == "issue_refund"
    assert refund.idempotency_key == f"{workflow_id}:{call['id']}"
    assert (tool_message.tool_name, tool_message.status) == ("issue_refund", "complete")
    assert f'"refund_id": {refund.pk}' in tool_message.content
    # The agent's answer is about the refund the retry found (not a second one).
    assert "issue_refund" in answer.content
    assert f"refund_id: {refund.pk}" in answer.content
    assert "amount: 20.00" in answer.content
    # The history: one tool activity, finished by attempt 2 on the second worker after the
    # first attempt's start-to-close timeout.
    tool = activity_events(await history(temporal, cid), tool_activity_name("issue_refund"))
    assert (len(tool[SCHEDULED]), len(tool[COMPLETED]), len(tool[FAILED])) == (1, 1, 0)
    [started] = tool[STARTED]
    attrs = started.activity_task_started_event_attributes
    fault_timings(
        "kill -9 mid write tool -> retry attempt started",
        started.event_time.ToDatetime().timestamp() - killed_wall,
    )
    assert (attrs.attempt, attrs.identity) == (2, second_worker.identity)
    timeout = attrs.last_failure.timeout_failure_info.timeout_type
    assert timeout == TimeoutType.TIMEOUT_TYPE_HEARTBEAT, attrs.last_failure
    assert len([c for c in model_calls if c.last_user == text]) == 2  # plan + answer

"""Tools and the approval gate inside the real conversation workflow."""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from chatapp import services
from chatapp.models import Message
from reviews.models import Approval, ApprovalPolicy
from reviews.policies import approval_rule_for
from shop.models import Refund
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.contracts.errors import UserError
from temporal_worker.contracts.tools import tool_activity_name
from temporal_worker.worker import build_worker
from tests.approvals import decision_for, listed_pending
from tests.factories import user_create
from tests.helpers import eventually
from tests.interceptors import AfterWrite

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


async def _start(text: str) -> tuple[str, Any]:
    user = await sync_to_async(user_create)()
    conversation_id = uuid.uuid4()
    await services.message_send(
        user=user, conversation_id=conversation_id, message_id=uuid.uuid4(), text=text
    )
    return str(conversation_id), user


async def _rows(cid: str, **filters: Any) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation_id=cid, **filters).order_by("seq")]


async def _answered(cid: str) -> Message:
    async def final() -> Message | None:
        found = [m for m in await _rows(cid, role="assistant") if not m.tool_calls]
        live = await temporal_client.conversation_live_state(conversation_id=cid)
        return found[-1] if found and live is not None and live.status == "idle" else None

    return await eventually(final, timeout=30)


async def _pending(cid: str, count: int = 1, *, exactly: bool = False) -> list:
    """The conversation's pending approvals as the dashboard lists them; visibility is
    eventually consistent, so wait for at least (or exactly) `count` of them."""

    async def found() -> list:
        items = [p for p in await listed_pending() if p.conversation_id == cid]
        enough = len(items) == count if exactly else len(items) >= count
        return items if enough else []

    return await eventually(found, timeout=30)


async def _events(temporal: Any, cid: str) -> list[Any]:
    handle = temporal.get_workflow_handle(conversation_workflow_id(cid))
    return list((await handle.fetch_history()).events)


async def test_two_tools_of_one_step_run_concurrently(temporal, worker, demo_shop) -> None:
    cid, _ = await _start("status of order 1001 and how do I return an item")
    await _answered(cid)
    events = await _events(temporal, cid)
    names = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == SCHEDULED
    }
    tools = {tool_activity_name("get_order"), tool_activity_name("search_help")}
    scheduled = [e for e in events if e.event_type == SCHEDULED and names[e.event_id] in tools]
    completed = [
        e
        for e in events
        if e.event_type == COMPLETED
        and names.get(e.activity_task_completed_event_attributes.scheduled_event_id) in tools
    ]
    assert len(scheduled) == 2 and len(completed) == 2
    # Both were scheduled before either finished: their spans overlap.
    assert max(e.event_id for e in scheduled) < min(e.event_id for e in completed)
    results = {m.tool_name: m.status for m in await _rows(cid, role="tool")}
    assert results == {"get_order": "complete", "search_help": "complete"}


async def test_a_failing_tool_leaves_the_others_result_intact(temporal, worker, demo_shop) -> None:
    cid, _ = await _start("status of order 999999 and how do I return an item")
    answer = await _answered(cid)
    tools = {m.tool_name: m for m in await _rows(cid, role="tool")}
    assert tools["get_order"].status == "error"
    assert "999999" in json.loads(tools["get_order"].content)["error"]
    assert tools["search_help"].status == "complete"
    assert json.loads(tools["search_help"].content)["articles"]
    assert "get_order** failed" in answer.content


async def test_malformed_arguments_reach_the_model_as_an_error(temporal, worker) -> None:
    cid, _ = await _start('[[call get_order {"order_id": "not a number"}]]')
    answer = await _answered(cid)
    [result] = await _rows(cid, role="tool")
    error = json.loads(result.content)["error"]
    assert "invalid arguments for get_order" in error and "order_id" in error
    assert "failed" in answer.content
    # Answered without running the tool: no tool activity was scheduled at all.
    names = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in await _events(temporal, cid)
        if e.event_type == SCHEDULED
    ]
    assert tool_activity_name("get_order") not in names


async def test_a_write_retried_after_it_took_effect_writes_once(
    temporal, task_queue, demo_shop
) -> None:
    await ApprovalPolicy.objects.acreate(tool_name="issue_refund", mode="never")
    failing = build_worker(
        temporal, task_queue=task_queue, interceptors=[AfterWrite(fail={"issue_refund"})]
    )
    async with failing:
        cid, _ = await _start("refund 20 on order 1009")
        await _answered(cid)
    key_prefix = f"{conversation_workflow_id(cid)}:"
    assert await Refund.objects.filter(idempotency_key__startswith=key_prefix).acount() == 1
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in await _events(temporal, cid)
        if e.event_type == STARTED
    ]
    assert 2 in started  # the refund activity's second attempt completed


async def test_policy_thresholds() -> None:
    await ApprovalPolicy.objects.acreate(
        tool_name="issue_refund",
        mode="above",
        threshold="50.00",
        deadline_seconds=3600,
        timeout_action="approve",
    )
    below = await approval_rule_for(
        tool="issue_refund",
        kind="write",
        threshold_argument="amount",
        arguments={"amount": "50.00"},
    )
    above = await approval_rule_for(
        tool="issue_refund",
        kind="write",
        threshold_argument="amount",
        arguments={"amount": "50.01"},
    )
    garbled = await approval_rule_for(
        tool="issue_refund",
        kind="write",
        threshold_argument="amount",
        arguments={"amount": "lots"},
    )
    assert below is None
    assert above is not None and (above.deadline_seconds, above.timeout_action) == (3600, "approve")
    assert garbled is not None  # what cannot be compared is asked about
    # No policy: reads run freely, writes always ask, 24 h, reject on timeout.
    assert (
        await approval_rule_for(
            tool="search_orders", kind="read", threshold_argument=None, arguments={}
        )
        is None
    )
    default = await approval_rule_for(
        tool="send_email", kind="write", threshold_argument=None, arguments={}
    )
    assert default is not None
    assert (default.deadline_seconds, default.timeout_action) == (24 * 3600, "reject")


async def test_two_gated_calls_of_one_step_are_decided_separately(
    temporal, worker, demo_shop
) -> None:
    cid, _ = await _start("refund 10 on order 1009 and refund 12 on order 1013")
    reviewer = await sync_to_async(user_create)()
    first, second = sorted(await _pending(cid, 2), key=lambda p: p.summary)
    await temporal_client.approval_decide(
        conversation_id=cid, decision=decision_for(first, reviewer)
    )
    # Still waiting for the other one, which is still listed.
    assert [p.call_id for p in await _pending(cid, 1, exactly=True)] == [second.call_id]
    await temporal_client.approval_decide(
        conversation_id=cid,
        decision=decision_for(second, reviewer, action="reject", reason="Not this one."),
    )
    await _answered(cid)
    statuses = {a.call_id: a.status async for a in Approval.objects.filter(conversation_id=cid)}
    assert statuses == {first.call_id: "approved", second.call_id: "rejected"}
    results = {m.tool_call_id: json.loads(m.content) for m in await _rows(cid, role="tool")}
    assert "refund_id" in results[first.call_id]
    assert results[second.call_id]["status"] == "rejected"
    assert results[second.call_id]["reason"] == "Not this one."


async def test_the_decision_validator_refuses_stale_unknown_and_changed(
    temporal, worker, demo_shop
) -> None:
    cid, _ = await _start("refund 10 on order 1009")
    reviewer = await sync_to_async(user_create)()
    [item] = await _pending(cid)

    with pytest.raises(UserError) as changed:
        await temporal_client.approval_decide(
            conversation_id=cid, decision=decision_for(item, reviewer, arguments_hash="0" * 16)
        )
    assert changed.value.code == "StaleArguments"
    with pytest.raises(UserError) as unknown:
        await temporal_client.approval_decide(
            conversation_id=cid,
            decision=decision_for(item, reviewer, call_id="call_unknown"),
        )
    assert unknown.value.code == "UnknownApproval"

    await temporal_client.approval_decide(
        conversation_id=cid, decision=decision_for(item, reviewer)
    )
    with pytest.raises(UserError) as again:
        await temporal_client.approval_decide(
            conversation_id=cid, decision=decision_for(item, reviewer)
        )
    assert again.value.code == "AlreadyDecided"
    assert f"Already approved by {reviewer.get_username()}" in str(again.value)


# --- the 24 h deadline, with the time-skipping test server ------------------------------


@pytest_asyncio.fixture
async def time_skipping(scripted_model, settings, task_queue) -> AsyncIterator[Any]:
    path = shutil.which("temporal-test-server") or str(
        Path(sys.executable).parent / "temporal-test-server"
    )
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path)
    # The time-skipping server cannot register custom search attributes.
    settings.AGENT_APPROVAL_SEARCH_ATTRIBUTES = False
    settings.TEMPORAL_TASK_QUEUE = task_queue
    settings.OPENAI_BASE_URL = scripted_model.base_url
    settings.OPENAI_API_KEY = ""
    settings.AGENT_MODEL = "scripted"
    temporal_client.set_client(env.client)
    try:
        async with build_worker(env.client, task_queue=task_queue):
            yield env
    finally:
        await env.shutdown()


async def test_the_24h_deadline_applies_the_default_action(time_skipping, demo_shop) -> None:
    env = time_skipping
    cid, _ = await _start("refund 15 on order 1009")

    async def requested() -> Approval | None:
        return await Approval.objects.filter(conversation_id=cid).afirst()

    approval = await eventually(requested, timeout=30)
    assert approval.status == "pending"
    await env.sleep(timedelta(hours=24, minutes=1))

    async def decided() -> Approval | None:
        row = await Approval.objects.filter(conversation_id=cid).afirst()
        return row if row is not None and row.status != "pending" else None

    approval = await eventually(decided, timeout=30)
    assert (approval.status, approval.decided_by_system) == ("rejected", True)
    assert approval.reminded_at is not None  # the reminder went out at half the deadline
    [result] = await _rows(cid, role="tool")
    assert json.loads(result.content)["decided_by"] == "system"
    assert not await Refund.objects.filter(
        idempotency_key__startswith=conversation_workflow_id(cid)
    ).aexists()


async def test_operators_find_a_pending_approval_by_the_requester_s_username(
    temporal, worker, demo_shop
) -> None:
    user = await sync_to_async(user_create)(username=f"requester-{uuid.uuid4().hex[:8]}")
    cid = uuid.uuid4()
    await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text="refund 10 on order 1009"
    )
    await _pending(str(cid))

    async def found() -> list[str]:
        query = f"ApprovalRequester = '{user.username}' AND ApprovalPending = true"
        return [w.id async for w in temporal.list_workflows(query)]

    # What an operator types in the Temporal UI or `temporal workflow list --query`.
    assert await eventually(found) == [conversation_workflow_id(str(cid))]


# Temporal's default memo size warning (limit.memoSize.warn): the dev server logs "Blob
# data size exceeds the warning limit" on every task past it.
MEMO_WARNING_BYTES = 2 * 1024


async def test_twenty_pending_approvals_keep_the_memo_under_the_warning_limit(
    temporal, worker, demo_shop
) -> None:
    text = " and ".join(f"refund {n} on order 1009 because of a long story" for n in range(1, 21))
    cid, _ = await _start(text)

    listed = await _pending(cid, 20, exactly=True)

    handle = temporal.get_workflow_handle(conversation_workflow_id(cid))
    memo = (await handle.describe()).raw_description.workflow_execution_info.memo
    assert 0 < memo.ByteSize() < MEMO_WARNING_BYTES
    # The inbox still has every detail (from the audit table): what, why, which arguments.
    assert {p.summary for p in listed} == {
        f"Refund {n}.00 EUR on order #1009" for n in range(1, 21)
    }
    assert all(p.reason and p.arguments_hash for p in listed)

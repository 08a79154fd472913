"""The Temporal server stops (SIGTERM) mid-conversation and starts again on its file.

A dev server of this test's own, persisted to a SQLite file in the test's tmp dir (as
`make run` persists `var/temporal.db`), with an in-process worker. The conversation has
an answered message and an approval pending when the server goes away; after the
restart the approval is still listed, a decision resumes the agent, and the next
message is answered. Every message appears once, in order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from temporalio.client import Client

from reviews.models import Approval
from shop.models import Refund
from temporal_worker import client as temporal_client
from temporal_worker.contracts.tools import tool_activity_name
from temporal_worker.worker import build_worker
from tests.approvals import decision_for, listed_pending
from tests.factories import user_create
from tests.faults.support import (
    COMPLETED,
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


@asynccontextmanager
async def running_worker(client: Client, task_queue: str):
    """The product's worker in this process, polling `client`'s server."""
    worker = build_worker(client, task_queue=task_queue)
    run = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        # Its server may be gone: do not wait forever for a clean shutdown.
        try:
            await asyncio.wait_for(worker.shutdown(), timeout=30)
        finally:
            if not run.done():
                run.cancel()
            try:
                await run
            except BaseException:  # a worker whose server vanished may fail
                pass


async def pending_for(cid: uuid.UUID) -> list:
    return [p for p in await listed_pending() if p.conversation_id == str(cid)]


async def test_temporal_restart_keeps_the_pending_approval_and_the_conversation(
    model_settings,
    demo_shop,
    temporal_servers,
    restore_temporal_client,
    task_queue,
    fault_timings,
):
    server = temporal_servers()
    client = await server.start()
    temporal_client.set_client(client)
    user = await new_user()
    cid = uuid.uuid4()
    hello, refund_request, thanks = (
        unique("Hello before the restart"),
        "refund 20 on order 1009",
        unique("Thanks, after the restart"),
    )

    async with running_worker(client, task_queue):
        await send(user, cid, hello)
        await wait_turn_done(cid, 1)
        await send(user, cid, refund_request)  # a write tool: the default policy asks
        [before] = await eventually(lambda: pending_for(cid), timeout=30)
        state = await live_state(cid)
        assert state is not None and state.status == "waiting_approval"

        exit_status = await asyncio.to_thread(server.stop)
        # The worker keeps running while its server is away; nothing answers meanwhile.
        asked_at = time.monotonic()
        assert await live_state(cid) is None
        fault_timings("live state asked while Temporal is down", time.monotonic() - asked_at)
    assert exit_status in (0, -15), exit_status

    restarting_at = time.monotonic()
    client = await server.start()
    temporal_client.set_client(client)
    fault_timings("Temporal restarted and reconnected", time.monotonic() - restarting_at)
    async with running_worker(client, task_queue):
        [after] = await eventually(lambda: pending_for(cid), timeout=30)
        fault_timings("Temporal restart -> approval listed again", time.monotonic() - restarting_at)
        assert (after.call_id, after.arguments_hash, after.tool) == (
            before.call_id,
            before.arguments_hash,
            "issue_refund",
        )
        reviewer = await sync_to_async(user_create)()
        decided = await temporal_client.approval_decide(
            conversation_id=str(cid),
            decision=decision_for(after, reviewer),
        )
        assert decided.outcome == "approved"
        decided_at = time.monotonic()
        await wait_turn_done(cid, 2)
        fault_timings("decision after the restart -> answer", time.monotonic() - decided_at)
        await send(user, cid, thanks)
        final = await wait_turn_done(cid, 3)
        assert not await pending_for(cid)

    # Every message once, in order: nothing lost, nothing doubled across the restart.
    transcript = await rows(cid)
    assert [m.role for m in transcript] == [
        "user",
        "assistant",
        "user",
        "assistant",  # the agent's tool call, which waited for the reviewer
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    seqs = [m.seq for m in transcript]
    assert seqs == sorted(set(seqs))
    assert len({m.id for m in transcript}) == len(transcript)
    assert [m.content for m in transcript if m.role == "user"] == [hello, refund_request, thanks]
    [call] = transcript[3].tool_calls
    assert call["id"] == after.call_id
    assert (transcript[4].tool_name, transcript[4].status) == ("issue_refund", "complete")
    assert final[-1].id == transcript[-1].id
    assert thanks in final[-1].content
    # The approved refund happened once; the audit table has the one decision.
    refunds = [r async for r in Refund.objects.filter(conversation_id=str(cid))]
    assert len(refunds) == 1 and str(refunds[0].amount) == "20.00"
    approval = await Approval.objects.aget(conversation_id=cid)
    assert (approval.status, approval.decided_by_id) == ("approved", reviewer.pk)
    tool = activity_events(await history(client, cid), tool_activity_name("issue_refund"))
    assert (len(tool[STARTED]), len(tool[COMPLETED])) == (1, 1)

"""Record the replay histories in tests/histories/: `make record-histories`.

Run only after a deliberate, `workflow.patched`-guarded change to workflow code; the
replay tests (test_replay.py) then prove old and new histories both replay. Not a test
module: the normal run never collects it (its name is no test_*.py and its functions
are record_*), so nothing here shows up as a skip.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from temporalio.client import Client

from chatapp import services
from chatapp.models import Conversation, McpServer, Message
from chatapp.usage_models import UserBudget
from reviews.models import ApprovalPolicy
from temporal_worker import client as temporal_client
from temporal_worker.contracts.approvals import ClaimApproval, PendingApproval
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.tools.mcp.connections import mcp_pool_close
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import decision_for, listed_pending
from tests.factories import user_create
from tests.helpers import eventually
from tests.mcp.support import agent_create, conversation_start, listed

HISTORIES = Path(__file__).resolve().parents[1] / "histories"

Scenario = Callable[[Client], Awaitable[list[str]]]


# --- scenarios: each drives one conversation and returns its conversation ids ----------


async def _conversation(text: str) -> str:
    """Start a conversation with its first message; its id."""
    user = await sync_to_async(user_create)()
    sent = await services.message_send(
        user=user, conversation_id=uuid.uuid4(), message_id=uuid.uuid4(), text=text
    )
    return str(sent.conversation.id)


async def _answered(conversation_id: str, replies: int = 1) -> None:
    async def done() -> bool:
        live = await temporal_client.conversation_live_state(conversation_id=conversation_id)
        idle = live is not None and live.status == "idle" and live.queued == 0
        count = await Message.objects.filter(
            conversation_id=conversation_id, role="assistant", tool_calls=[]
        ).acount()
        return idle and count >= replies

    await eventually(done, timeout=30)


async def _pending(conversation_id: str) -> list[PendingApproval]:
    async def found() -> list[PendingApproval]:
        return [p for p in await listed_pending() if p.conversation_id == conversation_id]

    return await eventually(found, timeout=30)


async def _decide(conversation_id: str, action: str, reason: str = "") -> None:
    reviewer = await sync_to_async(user_create)()
    for item in await _pending(conversation_id):
        await temporal_client.approval_decide(
            conversation_id=conversation_id,
            decision=decision_for(item, reviewer, action, reason=reason),
        )


async def plain_turn(client: Client) -> list[str]:
    cid = await _conversation("Hello there")
    await _answered(cid)
    return [cid]


async def parallel_tools(client: Client) -> list[str]:
    cid = await _conversation("status of order 1001 and how do I return an item")
    await _answered(cid)
    return [cid]


async def approval_approved(client: Client) -> list[str]:
    cid = await _conversation("refund 20 on order 1009")
    await _decide(cid, "approve")
    await _answered(cid)
    return [cid]


async def approval_rejected(client: Client) -> list[str]:
    cid = await _conversation("refund 30 on order 1013")
    await _decide(cid, "reject", reason="Refunds over 25 need a receipt.")
    await _answered(cid)
    return [cid]


async def approval_timed_out(client: Client) -> list[str]:
    await ApprovalPolicy.objects.aupdate_or_create(
        tool_name="send_email", defaults={"mode": "always", "deadline_seconds": 2}
    )
    cid = await _conversation("email customer of order 1003: Your parcel is on its way")
    await _answered(cid)
    return [cid]


async def approval_claimed(client: Client) -> list[str]:
    """A reviewer claims first (the claim is recorded for the audit by an activity)."""
    cid = await _conversation("refund 15 on order 1009")
    reviewer = await sync_to_async(user_create)()
    [item] = await _pending(cid)
    await temporal_client.approval_claim(
        conversation_id=cid,
        claim=ClaimApproval(call_id=item.call_id, reviewer_id=reviewer.pk, reviewer="claimer"),
    )
    await temporal_client.approval_decide(
        conversation_id=cid, decision=decision_for(item, reviewer, "approve")
    )
    await _answered(cid)
    return [cid]


async def queued_message(client: Client) -> list[str]:
    """A message sent during a turn of several steps waits for its turn (and its number)."""
    user = await sync_to_async(user_create)()
    cid = uuid.uuid4()
    await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text="[[loop 3]] slowly"
    )
    await eventually(
        lambda: Message.objects.filter(conversation_id=cid, role="tool").aexists(), timeout=30
    )
    await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text="And then?"
    )
    await _answered(str(cid), replies=2)
    return [str(cid)]


async def continue_as_new(client: Client) -> list[str]:
    cid = await _conversation("[[loop 5]] keep going")
    await _answered(cid)
    return [cid]


async def handoff(client: Client) -> list[str]:
    """The front agent hands over; the next step runs as the other agent, with its tools."""
    desk = await agent_create("desk", tools=["get_order"])
    await agent_create("front", tools=["search_help"], handoffs=[desk])
    cid, _ = await conversation_start("talk to desk and status of order 1001", agent="front")
    await _answered(cid)
    return [cid]


async def mcp_approval(client: Client) -> list[str]:
    """A write of the demo MCP server (over stdio) waits for a reviewer, then runs with its
    server's timeout and retry policy."""
    server = await McpServer.objects.acreate(
        name="warehouse",
        title="Warehouse",
        transport=McpServer.Transport.STDIO,
        command=sys.executable,
        args=["-m", "shop.mcp_server", "--data", str(Path(tempfile.mkdtemp()) / "w.sqlite3")],
        idempotent=True,
    )
    assert (await listed(server)).ok
    await agent_create("warehouse", servers=[server])
    cid, _ = await conversation_start("reserve 2 of KB-01 for order 1001", agent="warehouse")
    await _decide(cid, "approve")
    await _answered(cid)
    await mcp_pool_close()
    return [cid]


async def idle_close(client: Client) -> list[str]:
    """Idle for its configured time, the run completes carrying its state (the idle-close
    patch); the next message starts a second run from that state."""
    with override_settings(CONVERSATION_IDLE_CLOSE_SECONDS=2):
        cid = await _conversation("hello, then wait")
    await _answered(cid)
    first = client.get_workflow_handle_for(ConversationWorkflow.run, conversation_workflow_id(cid))
    assert (await first.result()).idle_closed
    conversation = await Conversation.objects.select_related("owner").aget(id=cid)
    await services.message_send(
        user=conversation.owner,
        conversation_id=conversation.id,
        message_id=uuid.uuid4(),
        text="back",
    )
    await _answered(cid, replies=2)
    return [cid]


async def budget_refused(client: Client) -> list[str]:
    """A budget used up: the call is refused before the model is asked and the turn ends
    with the budget notice; with the budget raised, the next message is answered."""
    budget = await UserBudget.objects.acreate(user=None, daily_limit_usd=0)
    cid = await _conversation("Hello over budget")

    async def noticed() -> bool:
        return await Message.objects.filter(
            conversation_id=cid, role="notice", error_kind="budget_user"
        ).aexists()

    await eventually(noticed, timeout=30)
    await budget.adelete()
    conversation = await Conversation.objects.select_related("owner").aget(id=cid)
    await services.message_send(
        user=conversation.owner,
        conversation_id=conversation.id,
        message_id=uuid.uuid4(),
        text="again",
    )
    await _answered(cid)
    return [cid]


async def answer_versions(client: Client) -> list[str]:
    """Regenerate the last answer (the answer-versions patch), then edit the last message
    and send it again; each a Workflow Update that starts a new version of the exchange."""
    cid = await _conversation("hello, versions")
    await _answered(cid)
    conversation = await Conversation.objects.select_related("owner").aget(id=cid)
    reply = await Message.objects.filter(conversation_id=cid, role="assistant").alast()
    assert reply is not None
    await services.answer_regenerate(
        user=conversation.owner,
        conversation_id=conversation.id,
        request_id=uuid.uuid4(),
        reply_id=reply.id,
    )
    await _answered(cid, replies=2)
    first = await Message.objects.filter(conversation_id=cid, role="user").afirst()
    assert first is not None
    await services.message_edit(
        user=conversation.owner,
        conversation_id=conversation.id,
        message_id=uuid.uuid4(),
        replaces_id=first.id,
        text="hello again, edited",
    )
    await _answered(cid, replies=3)
    return [cid]


async def unarchived(client: Client) -> list[str]:
    """Archived, then unarchived: a second run starts from the first one's state (read
    with the carried_state query) and answers the next message."""
    cid = await _conversation("hello before the archive")
    await _answered(cid)
    conversation = await Conversation.objects.select_related("owner").aget(id=cid)
    await services.conversation_archive(user=conversation.owner, conversation_id=conversation.id)
    await client.get_workflow_handle(conversation_workflow_id(cid)).result()
    await services.conversation_unarchive(user=conversation.owner, conversation_id=conversation.id)
    await services.message_send(
        user=conversation.owner,
        conversation_id=conversation.id,
        message_id=uuid.uuid4(),
        text="hello after the archive",
    )
    await _answered(cid, replies=2)
    return [cid]


SCENARIOS: dict[str, Scenario] = {
    "plain_turn": plain_turn,
    "parallel_tools": parallel_tools,
    "approval_approved": approval_approved,
    "approval_rejected": approval_rejected,
    "approval_timed_out": approval_timed_out,
    "approval_claimed": approval_claimed,
    "queued_message": queued_message,
    "continue_as_new": continue_as_new,
    "handoff": handoff,
    "mcp_approval": mcp_approval,
    "idle_close": idle_close,
    "budget_refused": budget_refused,
    "answer_versions": answer_versions,
    "unarchived": unarchived,
}


# --- recording ---------------------------------------------------------------------------


async def _runs_json(client: Client, conversation_id: str) -> list[tuple[str, str]]:
    """Every run of the conversation's workflow, oldest first, as history JSON."""
    workflow_id = conversation_workflow_id(conversation_id)
    runs = [execution async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    runs.sort(key=lambda e: e.start_time)
    histories = []
    for index, execution in enumerate(runs, start=1):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        history = await handle.fetch_history()
        histories.append((f"run{index}", history.to_json()))
    return histories


# Collected only by `make record-histories` (pytest -o python_functions='record_*' <this file>).
# demo_shop: the orders the scenarios ask about, which an earlier transactional test flushed.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", list(SCENARIOS))
async def record_history(
    name: str, temporal: Client, worker, settings, demo_shop, scripted_model
) -> None:
    settings.AGENT_STEPS_PER_RUN = 2  # so the continue_as_new scenario crosses runs
    # "slowly" streams at 50 ms a chunk: a turn long enough to queue a message behind.
    await scripted_model.add_rules({"match": "slowly", "chunk_delay_ms": 50})
    conversation_ids = await SCENARIOS[name](temporal)
    for conversation_id in conversation_ids:
        # Archive, so each recorded history also covers the close and ends complete.
        await temporal_client.conversation_close(conversation_id=conversation_id)
        await temporal.get_workflow_handle(conversation_workflow_id(conversation_id)).result()
    for stale in HISTORIES.glob(f"{name}.*.json"):
        stale.unlink()
    for conversation_id in conversation_ids:
        for run, text in await _runs_json(temporal, conversation_id):
            (HISTORIES / f"{name}.{run}.json").write_text(text)

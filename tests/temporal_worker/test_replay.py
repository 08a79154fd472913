"""Replay safety: committed histories of representative conversations must replay
against today's workflow code, and a non-deterministic change must be caught.

Re-record the histories (after a deliberate, versioned change) with
`make record-histories`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from chatapp import services, temporal_client
from chatapp.models import Message
from reviews.models import ApprovalPolicy
from temporal_worker.shared import conversation_workflow_id
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import decision_for
from tests.factories import user_create
from tests.helpers import eventually
from tests.temporal_worker.nondeterministic_workflow import ChangedConversationWorkflow

pytestmark = pytest.mark.django_db(transaction=True)

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
RECORDING = os.environ.get("RECORD_HISTORIES") == "1"

Scenario = Callable[[Client], Awaitable[list[str]]]


# --- scenarios: each drives one conversation and returns its workflow ids ------------


async def _conversation(text: str) -> tuple[str, object]:
    """Start a conversation with its first message; (conversation id, its user)."""
    user = await sync_to_async(user_create)()
    sent = await services.message_send(
        user=user, conversation_id=uuid.uuid4(), message_id=uuid.uuid4(), text=text
    )
    return str(sent.conversation.id), user


async def _answered(conversation_id: str, replies: int = 1) -> None:
    async def done() -> bool:
        snapshot_ok = await _idle(conversation_id)
        count = await Message.objects.filter(
            conversation_id=conversation_id, role="assistant", tool_calls=[]
        ).acount()
        return snapshot_ok and count >= replies

    await eventually(done, timeout=30)


async def _idle(conversation_id: str) -> bool:
    live = await temporal_client.conversation_live_state(conversation_id=conversation_id)
    return live is not None and live.status == "idle" and live.queued == 0


async def _pending(conversation_id: str) -> list:
    async def found() -> list:
        listing = await temporal_client.approvals_pending_list()
        return [p for p in listing.items if p.conversation_id == conversation_id]

    return await eventually(found, timeout=30)


async def _decide(conversation_id: str, action: str, reason: str = "") -> None:
    reviewer = await sync_to_async(user_create)()
    for item in await _pending(conversation_id):
        await temporal_client.approval_decide(
            conversation_id=conversation_id,
            decision=decision_for(item, reviewer, action, reason=reason),
        )


async def plain_turn(client: Client) -> list[str]:
    cid, _ = await _conversation("Hello there")
    await _answered(cid)
    return [cid]


async def parallel_tools(client: Client) -> list[str]:
    cid, _ = await _conversation("status of order 1001 and how do I return an item")
    await _answered(cid)
    return [cid]


async def approval_approved(client: Client) -> list[str]:
    cid, _ = await _conversation("refund 20 on order 1009")
    await _decide(cid, "approve")
    await _answered(cid)
    return [cid]


async def approval_rejected(client: Client) -> list[str]:
    cid, _ = await _conversation("refund 30 on order 1013")
    await _decide(cid, "reject", reason="Refunds over 25 need a receipt.")
    await _answered(cid)
    return [cid]


async def approval_timed_out(client: Client) -> list[str]:
    await ApprovalPolicy.objects.aupdate_or_create(
        tool_name="send_email", defaults={"mode": "always", "deadline_seconds": 2}
    )
    cid, _ = await _conversation("email customer of order 1003: Your parcel is on its way")
    await _answered(cid)
    return [cid]


async def continue_as_new(client: Client) -> list[str]:
    cid, _ = await _conversation("[[loop 5]] keep going")
    await _answered(cid)
    return [cid]


SCENARIOS: dict[str, Scenario] = {
    "plain_turn": plain_turn,
    "parallel_tools": parallel_tools,
    "approval_approved": approval_approved,
    "approval_rejected": approval_rejected,
    "approval_timed_out": approval_timed_out,
    "continue_as_new": continue_as_new,
}


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


@pytest.mark.skipif(not RECORDING, reason="set RECORD_HISTORIES=1 (make record-histories)")
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_record_history(name: str, temporal: Client, worker, settings) -> None:
    settings.AGENT_STEPS_PER_RUN = 2  # so the continue_as_new scenario crosses runs
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


# --- replay ----------------------------------------------------------------------------


def _committed() -> list[Path]:
    # Histories recorded before a versioned change stay in a subfolder, so old
    # workflows keep being proven to replay under the `workflow.patched` guards.
    return sorted(HISTORIES.rglob("*.json"))


def _workflow_id(path: Path) -> str:
    return f"replay-{path.parent.name}-{path.stem}"


def test_every_scenario_has_a_committed_history() -> None:
    recorded = {path.name.split(".")[0] for path in HISTORIES.glob("*.json")}
    assert recorded == set(SCENARIOS), "re-record with `make record-histories`"
    assert len(list(HISTORIES.glob("continue_as_new.*.json"))) >= 2


@pytest.mark.parametrize(
    "path", _committed(), ids=lambda p: str(p.relative_to(HISTORIES).with_suffix(""))
)
async def test_committed_history_replays(path: Path) -> None:
    result = await Replayer(workflows=[ConversationWorkflow]).replay_workflow(
        _history(path), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, (
        f"{path.name} no longer replays against temporal_worker/workflows.py: "
        f"{result.replay_failure}. A change to workflow code must keep old histories "
        "deterministic: guard it with workflow.patched(...) (see README), then re-record."
    )


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(_workflow_id(path), path.read_text())


async def test_replayer_catches_a_non_deterministic_change() -> None:
    path = HISTORIES / "plain_turn.run1.json"
    result = await Replayer(workflows=[ChangedConversationWorkflow]).replay_workflow(
        _history(path), raise_on_replay_failure=False
    )
    assert result.replay_failure is not None
    assert "nondetermin" in str(result.replay_failure).lower()

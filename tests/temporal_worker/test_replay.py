"""Replay safety: committed histories of representative conversations must replay
against today's workflow code, and a non-deterministic change must be caught.

Re-record the histories (after a deliberate, versioned change) with
`make record-histories` (tests/temporal_worker/record_histories.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from temporal_worker.workflows import ConversationWorkflow
from tests.temporal_worker.nondeterministic_workflow import ChangedConversationWorkflow
from tests.temporal_worker.record_histories import HISTORIES, SCENARIOS


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

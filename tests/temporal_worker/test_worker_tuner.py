"""How many activities a worker runs at once: up to the maximum while the machine has CPU
to spare, the minimum regardless (temporal_worker.worker.worker_tuner)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.worker import FixedSizeSlotSupplier, ResourceBasedSlotSupplier

from temporal_worker.worker import worker_tuner

ROOT = Path(__file__).resolve().parents[2]


def test_activities_follow_the_machines_load_by_default() -> None:
    tuner = worker_tuner(activities=100, workflow_tasks=50)

    activities = tuner._get_activity_task_slot_supplier()
    assert isinstance(activities, ResourceBasedSlotSupplier)
    assert activities.slot_config.minimum_slots == 8
    assert activities.slot_config.maximum_slots == 100
    assert activities.tuner_config.target_cpu_usage == 0.9
    # Workflow tasks (Update acceptances among them) are never held back by the load.
    workflow_tasks = tuner._get_workflow_task_slot_supplier()
    assert isinstance(workflow_tasks, FixedSizeSlotSupplier) and workflow_tasks.num_slots == 50


def test_a_small_maximum_caps_the_minimum() -> None:
    tuner = worker_tuner(activities=3, workflow_tasks=3)

    activities = tuner._get_activity_task_slot_supplier()
    assert isinstance(activities, ResourceBasedSlotSupplier)
    assert activities.slot_config.minimum_slots == 3


def test_a_target_of_zero_runs_a_fixed_number(settings: object) -> None:
    settings.WORKER_TARGET_CPU = 0.0  # type: ignore[attr-defined]

    activities = worker_tuner(activities=40, workflow_tasks=10)._get_activity_task_slot_supplier()

    assert isinstance(activities, FixedSizeSlotSupplier) and activities.num_slots == 40


@pytest.mark.parametrize(
    ("name", "value"), [("WORKER_TARGET_CPU", "1.5"), ("WORKER_MIN_ACTIVITIES", "0")]
)
def test_the_standalone_worker_refuses_a_bad_setting_before_it_starts(
    name: str, value: str
) -> None:
    env = {**os.environ, name: value, "WORKER_CONNECT_WAIT_SECONDS": "0"}
    completed = subprocess.run(
        [sys.executable, "-m", "temporal_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert name in completed.stderr + completed.stdout

"""The retention Schedule: created, updated or removed to match the settings, so running
the registration again (each deploy, each CI run) is safe."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from temporal_worker.client.connection import get_client
from temporal_worker.contracts.retention import (
    RETENTION_SCHEDULE_ID,
    RETENTION_WORKFLOW,
    RetentionRequest,
)

RETENTION_EVERY = timedelta(days=1)


def retention_schedule(*, older_than_days: int, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RETENTION_WORKFLOW,
            RetentionRequest(older_than_days=older_than_days),
            id=f"{RETENTION_SCHEDULE_ID}-run",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=RETENTION_EVERY)]),
        # A run still deleting when the next is due: the next is skipped, never doubled.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def retention_schedule_register(*, older_than_days: int, task_queue: str) -> str:
    """Make the retention Schedule match the settings: "created", "updated", "removed"
    (retention off: 0 days) or "absent" (off, and there was none)."""
    client = await get_client()
    handle = client.get_schedule_handle(RETENTION_SCHEDULE_ID)
    if older_than_days <= 0:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return "absent"
            raise
        return "removed"
    schedule = retention_schedule(older_than_days=older_than_days, task_queue=task_queue)
    try:
        await client.create_schedule(RETENTION_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        return "updated"
    return "created"

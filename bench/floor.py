"""The floor: a bare Temporal workflow with the product's shape and nothing else.

An Update appends a step to an inbox; the run loop takes it and executes no-op
activities, one round after another (`rounds=[1]` is one agent step, `[1, 2, 1]`
an LLM call, two parallel tools and a second LLM call). The last activity of the
step resolves a future in this process: the same "reply out" point as the
product's LLM activity pushing its final `chat.message` event.

Nothing but temporalio and the standard library is imported: the workflow
sandbox re-imports this module.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow

FLOOR_WORKFLOW = "BenchFloorWorkflow"
NOOP_ACTIVITY = "bench_noop"


@dataclass
class FloorStep:
    step_id: str
    # Parallel no-op activities per round; rounds run one after another.
    rounds: list[int] = field(default_factory=lambda: [1])


@dataclass
class NoopInput:
    step_id: str
    last: bool


@dataclass
class FloorAccepted:
    accepted: int


# step id -> future resolved (with perf_counter) when the step's last activity runs.
# Only the activity (outside the sandbox) touches it.
WAITERS: dict[str, asyncio.Future[float]] = {}


@activity.defn(name=NOOP_ACTIVITY)
async def noop(inp: NoopInput) -> str:
    if inp.last:
        waiter = WAITERS.pop(inp.step_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())
    return inp.step_id


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorWorkflow:
    def __init__(self) -> None:
        self._inbox: list[FloorStep] = []
        self._accepted = 0
        self._done = 0
        self._closed = False

    @workflow.run
    async def run(self) -> int:
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox) or self._closed)
            if not self._inbox:
                break
            step = self._inbox.pop(0)
            for index, width in enumerate(step.rounds):
                last = index == len(step.rounds) - 1
                await asyncio.gather(
                    *(
                        workflow.execute_activity(
                            NOOP_ACTIVITY,
                            NoopInput(step_id=step.step_id, last=last and slot == width - 1),
                            result_type=str,
                            start_to_close_timeout=timedelta(seconds=30),
                        )
                        for slot in range(width)
                    )
                )
            self._done += 1
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._done

    @workflow.update
    def send(self, step: FloorStep) -> FloorAccepted:
        self._inbox.append(step)
        self._accepted += 1
        return FloorAccepted(accepted=self._accepted)

    @workflow.update
    def close(self) -> int:
        self._closed = True
        return self._done

    @workflow.query
    def done(self) -> int:
        return self._done

"""Test-only faults, installed as worker interceptors (never part of the product's worker).

`AfterWrite(fail={"issue_refund"})` makes the first attempt of those tool activities
fail after the tool ran (so Temporal retries a write that took effect);
`AfterWrite(pause_seconds=600)` holds every tool activity's first attempt after it ran,
so a fault test can kill the worker there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from temporal_worker.contracts.tools import TOOL_ACTIVITY_PREFIX


class _AfterWrite(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, config: AfterWrite) -> None:
        super().__init__(next)
        self.config = config

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        info = activity.info()
        name = info.activity_type.removeprefix(TOOL_ACTIVITY_PREFIX)
        if info.attempt != 1 or not info.activity_type.startswith(TOOL_ACTIVITY_PREFIX):
            return result
        if self.config.pause_seconds:
            await asyncio.sleep(self.config.pause_seconds)
        if name in self.config.fail:
            raise RuntimeError("injected failure after the write")
        return result


class AfterWrite(Interceptor):
    def __init__(self, *, fail: Collection[str] = (), pause_seconds: float = 0) -> None:
        self.fail = frozenset(fail)
        self.pause_seconds = pause_seconds

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _AfterWrite(next, self)

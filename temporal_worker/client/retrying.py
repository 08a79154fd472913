"""Updates tried again while Temporal lacks time or capacity, under one update id; an
attempt that hangs because Temporal is down is cut short by a health check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import stamina

from temporal_worker.client.errors import is_transient
from temporal_worker.client.health import TemporalDown, temporal_reachable

logger = logging.getLogger(__name__)
T = TypeVar("T")

UPDATE_ATTEMPT_TIMEOUT = timedelta(seconds=15)
# How long a request keeps retrying an update that timed out before telling the user.
# A busy worker can take longer than one RPC's deadline to run the workflow task.
UPDATE_RETRY_BUDGET_SECONDS = 45.0
# An attempt still running after this long is checked on: the SDK itself retries an
# unreachable server for about ten seconds before it reports anything.
DOWN_CHECK_AFTER_SECONDS = 1.0


def _retry_worthy(err: Exception) -> bool:
    task = asyncio.current_task()
    if task is not None and task.cancelling() > 0:
        return False
    if is_transient(err):
        logger.warning("update %s; trying again", type(err).__name__)
        return True
    return False


async def retry_update(call: Callable[[], Awaitable[T]]) -> T:
    """Run an update call again while it fails for lack of time or capacity.

    Only for calls with a fixed update id: the outcome of a timed-out attempt is
    unknown, and the id is what makes trying again safe."""
    async for attempt in stamina.retry_context(
        on=_retry_worthy,
        attempts=None,
        timeout=UPDATE_RETRY_BUDGET_SECONDS,
        wait_initial=0.2,
        wait_max=5.0,
        wait_jitter=0.1,
    ):
        with attempt:
            return await _watched(call)
    raise AssertionError("unreachable: stamina re-raises the last error")


async def _watched(call: Callable[[], Awaitable[T]]) -> T:
    """One attempt; if it is still running after a second and Temporal does not answer
    its health check, give up now (slow but up: keep waiting)."""
    attempt = asyncio.ensure_future(call())
    try:
        done, _ = await asyncio.wait({attempt}, timeout=DOWN_CHECK_AFTER_SECONDS)
        if not done and not await temporal_reachable(fresh=True):
            raise TemporalDown
        return await attempt
    finally:
        if not attempt.done():
            attempt.cancel()

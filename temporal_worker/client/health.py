"""Is Temporal reachable? Answered in about a second, so an outage is said plainly and
fast instead of after a minute of retries that cannot succeed."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from temporal_worker.client.connection import get_client

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = timedelta(seconds=1)
# Pages and the status banner ask often; one check a few seconds serves them all.
CACHE_SECONDS = 3.0

_last: dict[int, tuple[float, bool]] = {}


class TemporalDown(Exception):
    """Temporal did not answer its health check: no request can get through now."""


async def temporal_reachable(*, fresh: bool = False) -> bool:
    """True when Temporal's frontend answers its gRPC health check (cached briefly)."""
    key = id(asyncio.get_running_loop())
    checked_at, reachable = _last.get(key, (0.0, True))
    if not fresh and time.monotonic() - checked_at < CACHE_SECONDS:
        return reachable
    try:
        client = await asyncio.wait_for(get_client(), CHECK_TIMEOUT.total_seconds())
        reachable = await client.service_client.check_health(timeout=CHECK_TIMEOUT)
    except Exception as err:  # refused, timed out, TLS: all mean "not now"
        logger.info("Temporal health check failed: %s: %s", type(err).__name__, err)
        reachable = False
    _last[key] = (time.monotonic(), reachable)
    return reachable

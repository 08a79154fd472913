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
# Pages and the status banner ask often; one check a few seconds serves them all. A
# "down" is checked again sooner, so a recovery is noticed within a second.
UP_CACHE_SECONDS = 3.0
DOWN_CACHE_SECONDS = 1.0

# Keyed by client: a new client (a reconnect, another server) starts with no verdict.
_last: dict[int, tuple[float, bool]] = {}


class TemporalDown(Exception):
    """Temporal did not answer its health check: no request can get through now."""


async def temporal_reachable(*, fresh: bool = False) -> bool:
    """True when Temporal's frontend answers its gRPC health check (cached briefly)."""
    try:
        client = await asyncio.wait_for(get_client(), CHECK_TIMEOUT.total_seconds())
    except Exception as err:  # not even connected: refused, timed out, TLS
        logger.info("Temporal not reachable: %s: %s", type(err).__name__, err)
        return False
    checked_at, reachable = _last.get(id(client), (0.0, True))
    fresh_for = UP_CACHE_SECONDS if reachable else DOWN_CACHE_SECONDS
    if not fresh and time.monotonic() - checked_at < fresh_for:
        return reachable
    try:
        reachable = await client.service_client.check_health(timeout=CHECK_TIMEOUT)
    except Exception as err:  # refused, timed out: "not now"
        logger.info("Temporal health check failed: %s: %s", type(err).__name__, err)
        reachable = False
    _last[id(client)] = (time.monotonic(), reachable)
    return reachable

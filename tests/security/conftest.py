from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from django.core.cache import cache
from temporalio.client import Client as TemporalClient

from tests.approvals import (
    pending_approvals_terminate,
)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in the (process-wide) cache: start every test from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest_asyncio.fixture
async def no_leftover_approvals(temporal: TemporalClient) -> AsyncIterator[None]:
    await pending_approvals_terminate(temporal)
    yield
    await pending_approvals_terminate(temporal)

"""Fixtures for the MCP tests (helpers: tests/mcp/support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from temporal_worker.tools.mcp.connections import mcp_pool_close
from temporal_worker.tools.registry import mcp_catalog_changed
from tests.mcp.support import HttpLab


@pytest.fixture(autouse=True)
def fresh_catalog() -> Iterator[None]:
    """Each test reads the MCP catalog of its own database (rows flushed between tests
    send no signal)."""
    mcp_catalog_changed()
    yield
    mcp_catalog_changed()


@pytest_asyncio.fixture(autouse=True)
async def mcp_sessions_closed() -> AsyncIterator[None]:
    """Stdio servers are the worker's children: none outlives its test."""
    yield
    await mcp_pool_close()


@pytest.fixture
def record(tmp_path: Path) -> Path:
    """The lab server's effects, one JSON line per kept note."""
    return tmp_path / "effects.jsonl"


@pytest_asyncio.fixture
async def http_lab(record: Path) -> AsyncIterator[HttpLab]:
    lab = HttpLab(record)
    await lab.start()
    try:
        yield lab
    finally:
        await lab.stop()

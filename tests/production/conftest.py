"""Production mode: PostgreSQL, Redis, a Temporal server, two worker processes and two
daphne web processes, each its own process, configured only through the environment
(`scripts/prod_stack.py`).

These tests are marked `production` and skipped unless PRODUCTION_MODE=1, so
`make test` skips them; `make test-production` (CI's second pass) runs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from scripts.chat_client import ChatClient
from scripts.prod_stack import DEMO_PASSWORD, ProductionStack, production_stack

ENABLED = os.environ.get("PRODUCTION_MODE") == "1"
# Every process's log, kept after the run for whoever reads a CI failure.
LOGS_TO = Path(__file__).resolve().parents[2] / "var" / "log" / "production"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "production: needs PostgreSQL and Redis; runs only with PRODUCTION_MODE=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="production mode: set PRODUCTION_MODE=1 (make test-production)")
    for item in items:
        if item.get_closest_marker("production"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def prod() -> Iterator[ProductionStack]:
    """The whole production-shaped stack, once per test session."""
    with production_stack(
        workers=2,
        webs=2,
        chunk_delay_ms=0,
        # A tool added the documented way must exist in every process (workers and webs).
        extra_env={"AGENT_TOOL_MODULES": "shop.tools,tests.production.loyalty_tools"},
        logs_to=LOGS_TO,
    ) as running:
        yield running
    failed = {name: code for name, code in running.exit_codes.items() if code != 0}
    assert not failed, f"processes did not stop cleanly: {failed} (logs in {LOGS_TO})"


@pytest_asyncio.fixture
async def alice(prod: ProductionStack) -> AsyncIterator[ChatClient]:
    """alice, logged in through web process A (the first)."""
    client = ChatClient(prod.web_urls, behind_proxy=True)
    await client.login(prod.web_urls[0], "alice", DEMO_PASSWORD)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="session")
def user_sessions(prod: ProductionStack) -> list[str]:
    """Session keys of six more end users (each user has their own message rate limit)."""
    return list(
        json.loads(prod.manage("bench_users", "--count", "6", "--prefix", "prod-")).values()
    )

"""Shared fixtures: a real Temporal dev server, the scripted model over real HTTP,
and a worker on a fresh task queue per test."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_worker import client as temporal_client
from temporal_worker.contracts.approvals import SEARCH_ATTRIBUTES
from temporal_worker.scripted_model import ScriptedModelServer, start_scripted_model
from temporal_worker.worker import build_worker
from tests.helpers import TIMINGS_FILE

BIN = Path(sys.executable).parent


def _binary(name: str) -> str:
    path = shutil.which(name) or str(BIN / name)
    if not Path(path).exists():
        pytest.exit(f"{name} is missing: run `make test`, which installs it from PyPI", 2)
    return path


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or a plain run)
        TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS_FILE.write_text("")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = TIMINGS_FILE.read_text().splitlines() if TIMINGS_FILE.exists() else []
    if not lines:
        return
    terminalreporter.section("fault recovery timings")
    for timing in map(json.loads, lines):
        terminalreporter.write_line(
            f"{timing['seconds']:7.1f} s  {timing['test']}: {timing['what']}"
        )


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Django's PBKDF2 (a million rounds) costs 0.6 s a password on this machine, and the
    tests create hundreds of users: the whole suite spent minutes hashing. Tests only;
    the product, and the `manage.py serve` the browser tests drive, keep the default."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database file per pytest process, so parallel runs never share one."""
    from django.conf import settings

    test = settings.DATABASES["default"].setdefault("TEST", {})
    if test.get("NAME"):
        test["NAME"] = test["NAME"].replace(".sqlite3", f"-{os.getpid()}.sqlite3")


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        dev_server_log_level="error",
        dev_server_extra_args=[
            arg
            for name, kind in SEARCH_ATTRIBUTES.items()
            for arg in ("--search-attribute", f"{name}={kind}")
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def scripted_model() -> AsyncIterator[ScriptedModelServer]:
    server = await start_scripted_model(chunk_delay_ms=0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest_asyncio.fixture
async def temporal(
    temporal_env: WorkflowEnvironment,
    scripted_model: ScriptedModelServer,
    settings: pytest.FixtureRequest,
    task_queue: str,
) -> AsyncIterator[Client]:
    """The client Django uses, pointed at the test server, the scripted model and a fresh queue."""
    settings.TEMPORAL_TASK_QUEUE = task_queue  # type: ignore[attr-defined]
    settings.OPENAI_BASE_URL = scripted_model.base_url  # type: ignore[attr-defined]
    settings.OPENAI_API_KEY = ""  # type: ignore[attr-defined]
    settings.AGENT_MODEL = "scripted"  # type: ignore[attr-defined]
    await scripted_model.clear()
    temporal_client.set_client(temporal_env.client)
    yield temporal_env.client


@pytest_asyncio.fixture
async def worker(temporal: Client, task_queue: str) -> AsyncIterator[Worker]:
    worker = build_worker(temporal, task_queue=task_queue)
    async with worker:
        yield worker


def _seed_shop() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    seed_migration = importlib.import_module("shop.migrations.0002_seed_demo_data")
    state = MigrationExecutor(connection).loader.project_state(("shop", "0001_initial"))
    seed_migration.seed(state.apps, None)


@pytest_asyncio.fixture
async def demo_shop(transactional_db: None) -> None:
    """Orders #1001-#1020 as the seed migration writes them (it leaves existing rows alone)."""
    await sync_to_async(_seed_shop)()

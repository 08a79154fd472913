"""The whole product as `make run` starts it (`manage.py serve`), in a subprocess.

It uses the session's Temporal dev server (so no second server starts), its own
SQLite database with the demo accounts, a fresh task queue, and a scripted model
that `serve` starts on a free port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright, expect
from temporalio.testing import WorkflowEnvironment

from config import processes

BASE_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
DEMO_PASSWORD = "demo-pass-123"


@dataclass
class RunningProduct:
    url: str
    scripted_model_url: str
    log_path: Path


def _manage(*args: str, env: dict[str, str], log_path: Path) -> None:
    with log_path.open("ab") as log:
        completed = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    if completed.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{processes.log_tail(log_path, 40)}")


def seeded_database(
    path: Path, tmp_path_factory: pytest.TempPathFactory, *, env: dict[str, str], log_path: Path
) -> None:
    """`path` becomes a migrated database with the demo seeded, as `make run` makes it.
    Made once per test process and copied for each module: migrate and seed_demo take
    about 28 s together, and a module's tests then change only their copy."""
    template = tmp_path_factory.getbasetemp() / "e2e-seeded.sqlite3"
    if not template.exists():
        building = template.with_suffix(".building")
        build_env = {**env, "DATABASE_URL": f"sqlite:///{building}"}
        _manage("migrate", "--noinput", env=build_env, log_path=log_path)
        _manage("seed_demo", env=build_env, log_path=log_path)
        building.rename(template)
    shutil.copyfile(template, path)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def product(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningProduct]:
    # serve --no-temporal leaves registering search attributes to whoever runs Temporal.
    await processes.search_attributes_ensure(temporal_env.client, "default")
    tmp_path = tmp_path_factory.mktemp("e2e")
    web_port, model_port = processes.free_ports(2)
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "DEBUG": "True",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        "REDIS_URL": "",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": f"e2e-{uuid.uuid4()}",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "AGENT_MODEL": "scripted",
        "SCRIPTED_MODEL_PORT": str(model_port),
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    await asyncio.to_thread(
        seeded_database, tmp_path / "e2e.sqlite3", tmp_path_factory, env=env, log_path=log_path
    )

    url = f"http://127.0.0.1:{web_port}"
    serve = processes.Child(
        name="serve",
        command=[sys.executable, "manage.py", "serve", "--port", str(web_port), "--no-temporal"],
        log_path=log_path,
        cwd=BASE_DIR,
        env=env,
        ready_url=f"{url}/healthz",
        start_timeout=START_TIMEOUT_SECONDS,
        # Ctrl-C, as a person at the terminal would; SIGKILL only if it hangs.
        stop_signal=signal.SIGINT,
        stop_timeout=STOP_TIMEOUT_SECONDS,
    )
    # Launched from the event loop's thread, which outlives the module (a child dies
    # with the thread that started it); only the wait goes to a worker thread.
    serve.launch()
    try:
        await asyncio.to_thread(serve.wait_ready)
    except processes.StackError as err:
        pytest.fail(str(err))

    yield RunningProduct(
        url=url, scripted_model_url=f"http://127.0.0.1:{model_port}", log_path=log_path
    )

    returncode = await asyncio.to_thread(serve.stop)
    assert returncode == 0, (
        f"manage.py serve exited with {returncode} after SIGINT:\n{serve.log_tail(40)}"
    )
    assert not processes.port_open("127.0.0.1", model_port), "serve left its scripted model running"


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()

"""Fault-injection fixtures: real processes that a test can kill, stop and start again.

- `worker_processes`: the product's standalone worker (`python -m temporal_worker`) as
  child processes against the pytest-django test database file, the session's Temporal
  dev server and the session's scripted model; every one is stopped when the test ends.
- `temporal_servers`: Temporal dev servers of the test's own, persisted to a file in
  the test's tmp dir, so one can be stopped and started again on the same file.
- `redis_servers`: `redis-server` on a free port (the test fails without it).
- `fault_timings`: recovery times, printed in pytest's terminal summary.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config import processes
from temporal_worker.client import connection as temporal_connection
from temporal_worker.client import health as temporal_health
from temporal_worker.scripted_model import ScriptedModelServer
from temporal_worker.scripted_model import server as scripted_server
from tests.helpers import TIMINGS_FILE, eventually

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()

# --- timings, reported at the end of the run ------------------------------------------


@pytest.fixture
def fault_timings(request: pytest.FixtureRequest) -> Any:
    """`fault_timings("kill -> turn completed", 12.3)` records (and prints) a measurement."""

    def record(what: str, seconds: float) -> None:
        line = json.dumps({"test": request.node.name, "what": what, "seconds": seconds})
        with TIMINGS_FILE.open("a") as timings:
            timings.write(line + "\n")
        print(f"[faults] {request.node.name}: {what}: {seconds:.1f} s")

    return record


# --- the scripted model, seen from the test process -----------------------------------


@dataclass
class ModelCall:
    """One request the scripted model answered (faulted requests never get this far)."""

    last_user: str
    reply: str


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[ModelCall]:
    """A spy on the scripted model's reply function (it runs in this process, whoever calls)."""
    calls: list[ModelCall] = []
    real = scripted_server.reply_for

    def spy(messages: Any, tools: Any) -> Any:
        reply = real(messages, tools)
        last_user = next(
            (str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        calls.append(ModelCall(last_user, reply.content or ""))
        return reply

    monkeypatch.setattr(scripted_server, "reply_for", spy)
    return calls


@pytest.fixture
def model_settings(
    settings: Any, scripted_model: ScriptedModelServer, task_queue: str
) -> Iterator[None]:
    """Django settings for this process: the session's scripted model and a fresh queue."""
    settings.TEMPORAL_TASK_QUEUE = task_queue
    settings.OPENAI_BASE_URL = scripted_model.base_url
    settings.OPENAI_API_KEY = ""
    settings.AGENT_MODEL = "scripted"
    scripted_model.state.clear()
    yield
    scripted_model.state.clear()


# --- the demo shop's rows (a transactional test elsewhere may have flushed them) --------


# --- worker processes -------------------------------------------------------------------


@dataclass
class WorkerProcess:
    child: processes.Child

    @property
    def proc(self) -> subprocess.Popen[str]:
        return self.child.proc

    @property
    def identity(self) -> str:
        # The SDK's default worker identity.
        return f"{self.child.pid}@{HOST}"

    def kill9(self) -> None:
        """SIGKILL: no graceful shutdown, no last heartbeat, nothing flushed."""
        self.child.kill()

    def log(self) -> str:
        return self.child.log_tail(60)


@dataclass
class WorkerProcesses:
    """Starts the standalone worker (`python -m tests.faults.worker`, the product's worker
    with test-only faults on request) as children; the fixture stops every one."""

    env: dict[str, str]
    log_dir: Path
    client: Client
    task_queue: str
    started: list[WorkerProcess] = field(default_factory=list)

    async def start(self, *args: str, **extra_env: str) -> WorkerProcess:
        name = f"worker-{len(self.started) + 1}"
        child = processes.Child(
            name=name,
            command=[sys.executable, "-m", "tests.faults.worker", *args],
            log_path=self.log_dir / f"{name}.log",
            cwd=ROOT,
            env={**self.env, **extra_env},
        )
        worker = WorkerProcess(child.start())
        self.started.append(worker)
        await self.wait_polling(worker)
        return worker

    async def wait_polling(self, worker: WorkerProcess, timeout: float = 60) -> None:
        """Until Temporal has seen this worker poll for both workflow and activity tasks."""

        async def polling() -> bool:
            if not worker.child.running():
                raise AssertionError(
                    f"worker exited with {worker.child.returncode}:\n{worker.log()}"
                )
            return all(
                [
                    worker.identity in await self._pollers(kind)
                    for kind in (
                        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                        TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                    )
                ]
            )

        await eventually(polling, timeout=timeout, interval=0.1)

    async def _pollers(self, kind: TaskQueueType.ValueType) -> set[str]:
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=kind,
            )
        )
        return {p.identity for p in response.pollers}

    def stop_all(self) -> None:
        processes.stop_all([w.child for w in self.started])


@pytest_asyncio.fixture
async def worker_processes(
    transactional_db: None,
    temporal: Client,
    temporal_env: WorkflowEnvironment,
    scripted_model: ScriptedModelServer,
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[WorkerProcesses]:
    """Standalone workers on the test database file, the session Temporal server and model.

    `temporal` points this process (the Django client) at the same server and queue and
    runs no worker here. The children are stopped before the test database is flushed.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("worker processes share the test database through its SQLite file")
    db_path = Path(database["NAME"])
    assert db_path.is_absolute(), db_path
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal_env.client.namespace,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "OPENAI_BASE_URL": scripted_model.base_url,
        "OPENAI_API_KEY": "",
        "AGENT_MODEL": "scripted",
        "EMBEDDED_WORKER": "False",
        "REDIS_URL": "",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    workers = WorkerProcesses(env, tmp_path / "log", temporal, task_queue)
    try:
        yield workers
    finally:
        await asyncio.to_thread(workers.stop_all)
        for number, worker in enumerate(workers.started, 1):
            # Shown by pytest when the test failed.
            print(f"--- worker-{number} (pid {worker.child.pid}) log tail:\n{worker.log()}")


# --- Temporal dev servers of the test's own ----------------------------------------------


@dataclass
class TemporalServer:
    """A dev server persisted to `db_path`; stop() and start() it again on the same file."""

    db_path: Path
    log_path: Path
    port: int
    ui_port: int
    child: processes.Child | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        """Start (again) on the same file and port; a connected client with the search
        attributes registered."""
        if self.child is None:
            self.child = processes.Child(
                name="temporal",
                command=processes.temporal_dev_server_command(
                    db_path=self.db_path, port=self.port, ui_port=self.ui_port
                ),
                log_path=self.log_path,
                cwd=ROOT,
                ready_port=("127.0.0.1", self.port),
                start_timeout=60,
                stop_timeout=30,
            )
        # Launched from the event loop's thread, which outlives the test (a child dies
        # with the thread that started it); only the wait goes to a worker thread.
        self.child.launch()
        await asyncio.to_thread(self.child.wait_ready)
        client = await processes.temporal_connect(self.address, wait_seconds=60)
        await processes.search_attributes_ensure(client, client.namespace)
        return client

    def stop(self) -> int:
        """SIGTERM (what a service manager sends), wait for the exit; its exit status."""
        assert self.child is not None
        status = self.child.stop()
        assert status is not None
        return status


@pytest.fixture
def temporal_servers(tmp_path: Path) -> Iterator[Any]:
    made: list[TemporalServer] = []

    def make() -> TemporalServer:
        port, ui_port = processes.free_ports(2)
        server = TemporalServer(
            db_path=tmp_path / f"temporal-{len(made) + 1}.db",
            log_path=tmp_path / "log" / f"temporal-{len(made) + 1}.log",
            port=port,
            ui_port=ui_port,
        )
        made.append(server)
        return server

    try:
        yield make
    finally:
        processes.stop_all([s.child for s in made if s.child is not None])


@pytest.fixture
def restore_temporal_client() -> Iterator[None]:
    """Tests that point the Django client elsewhere leave the mapping as they found it."""
    saved = dict(temporal_connection._clients)
    yield
    temporal_connection._clients.clear()
    temporal_connection._clients.update(saved)
    # What the health check last saw was about the server the test stopped.
    temporal_health._last.clear()


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    log_path: Path
    child: processes.Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port: in memory only, nothing saved."""
        if self.child is None:
            binary = shutil.which("redis-server")
            assert binary is not None
            self.child = processes.Child(
                name="redis",
                command=[
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                log_path=self.log_path,
                ready_port=("127.0.0.1", self.port),
            )
        self.child.start()

    def stop(self) -> None:
        """SIGTERM, and wait until it has exited."""
        assert self.child is not None
        self.child.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/check_test_dependencies.sh redis")
    server = RedisServer(port=processes.free_port(), log_path=tmp_path / "log" / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()

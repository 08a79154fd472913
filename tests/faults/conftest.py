"""Fault-injection fixtures: real processes that a test can kill, stop and start again.

- `worker_processes`: the product's standalone worker (`python -m temporal_worker`) as
  child processes against the pytest-django test database file, the session's Temporal
  dev server and the session's scripted model; every one is stopped when the test ends.
- `temporal_servers`: Temporal dev servers of the test's own, persisted to a file in
  the test's tmp dir, so one can be stopped and started again on the same file.
- `redis_servers`: `redis-server` on a free port (the test is skipped without it).
- `fault_timings`: recovery times, printed in pytest's terminal summary.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
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

from chatapp import stack, temporal_client
from temporal_worker.scripted_model import ScriptedModelServer
from temporal_worker.scripted_model import server as scripted_server
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()

# --- timings, reported at the end of the run ------------------------------------------

_TIMINGS: list[tuple[str, str, float]] = []


@pytest.fixture
def fault_timings(request: pytest.FixtureRequest) -> Any:
    """`fault_timings("kill -> turn completed", 12.3)` records (and prints) a measurement."""

    def record(what: str, seconds: float) -> None:
        _TIMINGS.append((request.node.name, what, seconds))
        print(f"[faults] {request.node.name}: {what}: {seconds:.1f} s")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TIMINGS:
        return
    terminalreporter.section("fault recovery timings")
    for test, what, seconds in _TIMINGS:
        terminalreporter.write_line(f"{seconds:7.1f} s  {test}: {what}")


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
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def identity(self) -> str:
        # The SDK's default worker identity.
        return f"{self.proc.pid}@{HOST}"

    def kill9(self) -> None:
        """SIGKILL: no graceful shutdown, no last heartbeat, nothing flushed."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def log(self) -> str:
        return stack.log_tail(self.log_path, 60)


@dataclass
class WorkerProcesses:
    """Starts `python -m temporal_worker` children; the fixture stops every one."""

    env: dict[str, str]
    log_dir: Path
    client: Client
    task_queue: str
    started: list[WorkerProcess] = field(default_factory=list)

    async def start(self, **extra_env: str) -> WorkerProcess:
        name = f"worker-{len(self.started) + 1}"
        proc = stack.process_start(
            [sys.executable, "-m", "temporal_worker"],
            log_path=self.log_dir / f"{name}.log",
            cwd=ROOT,
            env={**self.env, **extra_env},
        )
        worker = WorkerProcess(proc, self.log_dir / f"{name}.log")
        self.started.append(worker)
        await self.wait_polling(worker)
        return worker

    async def wait_polling(self, worker: WorkerProcess, timeout: float = 60) -> None:
        """Until Temporal has seen this worker poll for both workflow and activity tasks."""

        async def polling() -> bool:
            if worker.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {worker.proc.returncode}:\n{worker.log()}"
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
        stack.processes_stop([w.proc for w in self.started], timeout=10)


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
        "DJANGO_SETTINGS_MODULE": "chatapp.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal_env.client.namespace,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "OPENAI_BASE_URL": scripted_model.base_url,
        "OPENAI_API_KEY": "",
        "AGENT_MODEL": "scripted",
        "EMBEDDED_WORKER": "False",
        "REDIS_URL": "",
        "TOOL_PAUSE_AFTER_WRITE_SECONDS": "0",
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
            print(f"--- worker-{number} (pid {worker.proc.pid}) log tail:\n{worker.log()}")


# --- Temporal dev servers of the test's own ----------------------------------------------


@dataclass
class TemporalServer:
    """A dev server persisted to `db_path`; stop() and start() it again on the same file."""

    db_path: Path
    log_path: Path
    port: int
    ui_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        """Start (again) on the same file and port; a connected client with the search
        attributes registered."""
        command = stack.temporal_dev_server_command(
            db_path=self.db_path, port=self.port, ui_port=self.ui_port
        )
        self.proc = stack.process_start(command, log_path=self.log_path, cwd=ROOT)
        await asyncio.to_thread(
            stack.wait_for_port,
            "127.0.0.1",
            self.port,
            timeout=60,
            proc=self.proc,
            what="the Temporal dev server",
        )
        client = await stack.temporal_connect(self.address, wait_seconds=60, proc=self.proc)
        await stack.search_attributes_ensure(client, client.namespace)
        return client

    def stop(self) -> int:
        """SIGTERM (what a service manager sends), wait for the exit; its exit status."""
        assert self.proc is not None
        stack.processes_stop([self.proc], timeout=30)
        return self.proc.returncode


@pytest.fixture
def temporal_servers(tmp_path: Path) -> Iterator[Any]:
    made: list[TemporalServer] = []

    def make() -> TemporalServer:
        server = TemporalServer(
            db_path=tmp_path / f"temporal-{len(made) + 1}.db",
            log_path=tmp_path / "log" / f"temporal-{len(made) + 1}.log",
            port=stack.free_port(),
            ui_port=stack.free_port(),
        )
        made.append(server)
        return server

    try:
        yield make
    finally:
        stack.processes_stop([s.proc for s in made if s.proc is not None], timeout=30)


@pytest.fixture
def restore_temporal_client() -> Iterator[None]:
    """Tests that point the Django client elsewhere leave the mapping as they found it."""
    saved = dict(temporal_client._clients)
    yield
    temporal_client._clients.clear()
    temporal_client._clients.update(saved)


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port: in memory only, nothing saved."""
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = stack.process_start(
            [
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
        )
        stack.wait_for_port("127.0.0.1", self.port, timeout=30, proc=self.proc, what="redis")

    def stop(self) -> None:
        """SIGTERM, and wait until it has exited."""
        assert self.proc is not None
        stack.processes_stop([self.proc], timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip(
            "redis-server is not installed (Debian: apt-get install redis-server); CI installs it"
        )
    server = RedisServer(port=stack.free_port(), log_path=tmp_path / "log" / "redis.log")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            stack.processes_stop([server.proc], timeout=10)

"""The benchmark's moving parts, in one process: Django on a throwaway SQLite database,
one Temporal dev server, the product's real worker, the floor worker and the scripted
model; plus the helpers every measurement uses (statistics, channel-layer watches).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporal_worker.contracts.events import LiveEvent

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLOOR_QUEUE = "bench-floor"
PRODUCT_QUEUE = "bench-agent"
PASSWORD = "bench-pass-123"


def now() -> float:
    return time.perf_counter()


# --- statistics -----------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (the same definition as bench/stack.py)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def summary(seconds: list[float]) -> dict[str, float]:
    """Median, p95, mean and n of a list of durations in seconds, reported in ms."""
    if not seconds:
        return {"median_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    return {
        "median_ms": round(statistics.median(seconds) * 1000, 2),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 2),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 2),
        "n": len(seconds),
    }


# --- the machine ------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import temporalio

    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "loadavg_start": load_average(),
    }
    with contextlib.suppress(Exception):
        import django

        info["django"] = django.get_version()
    with contextlib.suppress(Exception):
        import subprocess

        out = subprocess.run(
            [str(BIN / "temporal"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        info["temporal_cli"] = out
    return info


def load_average() -> list[float]:
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return []


# --- Django ---------------------------------------------------------------------------


def django_setup(var_dir: str) -> None:
    """Django on a fresh SQLite database in `var_dir`, migrated, with the bench's users.

    Runs before the event loop starts (migrate and the user setup are synchronous).
    """
    os.environ["VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The same settings `make run` and bench/stack.py use, minus what would distort a
    # benchmark: chatty logs and the per-user message rate limit.
    os.environ.pop("DATABASE_URL", None)
    os.environ["REDIS_URL"] = ""
    os.environ["OPENAI_API_KEY"] = ""
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["CHAT_RATE_LIMIT_MESSAGES"] = "0"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


@dataclass
class Users:
    owner: Any
    reviewer: Any
    owner_session: str


def users_create() -> Users:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_model = get_user_model()
    owner = user_model.objects.create_user(username="bench-owner", password=PASSWORD)
    reviewer = user_model.objects.create_superuser(
        username="bench-reviewer", password=PASSWORD, email="reviewer@example.com"
    )
    client = Client()
    client.force_login(owner)
    return Users(owner=owner, reviewer=reviewer, owner_session=client.cookies["sessionid"].value)


async def conversations_create(owner_id: int, count: int) -> list[str]:
    from chatapp.models import Conversation

    rows = [Conversation(id=uuid.uuid4(), owner_id=owner_id, title="bench") for _ in range(count)]
    await Conversation.objects.abulk_create(rows)
    return [str(row.id) for row in rows]


# --- the stack in this process ----------------------------------------------------------


@dataclass
class Stack:
    env: Any  # WorkflowEnvironment
    client: Any  # temporalio Client
    model: Any  # ScriptedModelServer
    product_worker: Any
    floor_worker: Any
    users: Users
    product_queue: str = PRODUCT_QUEUE
    floor_queue: str = FLOOR_QUEUE
    model_url: str = ""
    debug: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def activate(self) -> None:
        """Point the globals (Temporal client, task queue, model, DEBUG) at this stack, so
        that two stacks can be measured side by side in one process."""
        from django.conf import settings

        from temporal_worker import client as temporal_client

        temporal_client.set_client(self.client)
        settings.TEMPORAL_TASK_QUEUE = self.product_queue
        settings.OPENAI_BASE_URL = self.model_url
        settings.DEBUG = self.debug


def search_attribute_args() -> list[str]:
    from temporal_worker.contracts.approvals import SEARCH_ATTRIBUTES

    return [
        arg
        for name, kind in SEARCH_ATTRIBUTES.items()
        for arg in ("--search-attribute", f"{name}={kind}")
    ]


@contextlib.asynccontextmanager
async def temporal_server(
    var_dir: str, *, extra_args: list[str] | None = None
) -> AsyncIterator[Any]:
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_log_level="error",
        # Persisted to a file, as `make run` and bench/stack.py run it.
        dev_server_database_filename=str(Path(var_dir) / "temporal.db"),
        dev_server_extra_args=[*search_attribute_args(), *(extra_args or [])],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def floor_worker(client: Any, task_queue: str = FLOOR_QUEUE, **options: Any) -> Any:
    from temporalio.worker import Worker

    from bench.floor import FloorWorkflow, noop

    return Worker(
        client, task_queue=task_queue, workflows=[FloorWorkflow], activities=[noop], **options
    )


@contextlib.contextmanager
def model_subprocess() -> Iterator[str]:
    """The scripted model in a process of its own, as `make run` starts it: its CPU is
    then not counted in the worker's event loop. Yields its base URL."""
    from config.processes import free_port, wait_for_http

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "temporal_worker.scripted_model",
            "--port",
            str(port),
            "--chunk-delay-ms",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def in_process_stack(
    var_dir: str,
    users: Users,
    *,
    server_args: list[str] | None = None,
    product_worker_factory: Callable[[Any, str], Any] | None = None,
    floor_options: dict[str, Any] | None = None,
    model_url: str | None = None,
    debug: bool | None = None,
    name: str = "",
) -> AsyncIterator[Stack]:
    """Everything in this process; `model_url` points the LLM activity at a model
    running elsewhere instead of the in-process scripted model; `name` keeps the task
    queues of two stacks apart."""
    from django.conf import settings

    from temporal_worker.scripted_model import start_scripted_model
    from temporal_worker.worker import build_worker

    suffix = f"-{name}" if name else ""
    model = await start_scripted_model(chunk_delay_ms=0)
    settings.OPENAI_API_KEY = ""
    settings.AGENT_MODEL = "scripted"
    try:
        async with temporal_server(var_dir, extra_args=server_args) as env:
            client = env.client
            factory = product_worker_factory or (lambda c, q: build_worker(c, task_queue=q))
            product = factory(client, PRODUCT_QUEUE + suffix)
            floor = floor_worker(client, FLOOR_QUEUE + suffix, **(floor_options or {}))
            stack = Stack(
                env=env,
                client=client,
                model=model,
                product_worker=product,
                floor_worker=floor,
                users=users,
                product_queue=PRODUCT_QUEUE + suffix,
                floor_queue=FLOOR_QUEUE + suffix,
                model_url=model_url or model.base_url,
                debug=settings.DEBUG if debug is None else debug,
            )
            stack.activate()
            try:
                async with product, floor:
                    yield stack
            finally:
                await HistoryFollower.stop_all(client)
    finally:
        await model.stop()


# --- watching a conversation's channel-layer group ---------------------------------------


@dataclass
class Event:
    at: float
    message: dict[str, Any]


class GroupWatch:
    """Receives what the activities push to one conversation's group, timestamped on arrival."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._channel = ""

    async def start(self) -> GroupWatch:
        from channels.layers import get_channel_layer

        from temporal_worker.contracts.events import conversation_group

        self._layer = get_channel_layer()
        self._channel = await self._layer.new_channel("bench.")
        await self._layer.group_add(conversation_group(self.conversation_id), self._channel)
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        while True:
            message = await self._layer.receive(self._channel)
            self.queue.put_nowait(Event(now(), message))

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 30.0
    ) -> Event:
        async with asyncio.timeout(within):
            while True:
                event = await self.queue.get()
                if predicate(event.message):
                    return event

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def stop(self) -> None:
        from temporal_worker.contracts.events import conversation_group

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._layer.group_discard(conversation_group(self.conversation_id), self._channel)


def is_final_message(message: dict[str, Any]) -> bool:
    from temporal_worker.contracts.events import MessageRecorded

    return message.get("type") == MessageRecorded.type and bool(message.get("final"))


def is_event(event: type[LiveEvent]) -> Callable[[dict[str, Any]], bool]:
    """Matches the channel-layer messages of one live event class (by its Channels type)."""
    return lambda message: message.get("type") == event.type


async def poll_until(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, interval: float = 0.001
) -> float:
    """Poll `check` until it is true; the time it first was."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return now()
            await asyncio.sleep(interval)


_STARTED = time.monotonic()


def progress(text: str) -> None:
    load = load_average()
    print(
        f"[bench {time.monotonic() - _STARTED:6.1f}s load {load[0] if load else '?'}] {text}",
        flush=True,
    )


# --- following a workflow's history (when a step is durably done) -------------------------

_CLOSED_ACTIVITY = {
    "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
    "EVENT_TYPE_ACTIVITY_TASK_FAILED",
    "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT",
    "EVENT_TYPE_ACTIVITY_TASK_CANCELED",
}


@dataclass
class HistoryEvent:
    type: str
    event_id: int
    arrived: float  # perf_counter when this process learnt of it
    event_time: float  # the server's timestamp (unix seconds)


class HistoryFollower:
    """Long-polls a workflow's history, timestamping each event as it arrives.

    Server-side only (no query through the worker), so following costs the floor and
    the product alike. A step is *settled* once the completion of its last activity is
    in the history followed by a completed workflow task: the workflow has taken the
    result in and is waiting again.
    """

    def __init__(self, client: Any, workflow_id: str) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.events: list[HistoryEvent] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    _running: set[HistoryFollower] = set()

    def start(self) -> HistoryFollower:
        self._task = asyncio.create_task(self._follow())
        HistoryFollower._running.add(self)
        return self

    @classmethod
    async def stop_all(cls, client: Any = None) -> None:
        for follower in list(cls._running):
            if client is None or follower.client is client:
                await follower.stop()

    async def _follow(self) -> None:
        from datetime import timedelta

        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.enums.v1 import EventType
        from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

        token = b""
        while True:
            response = await self.client.workflow_service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=self.client.namespace,
                    execution=WorkflowExecution(workflow_id=self.workflow_id),
                    next_page_token=token,
                    wait_new_event=True,
                    maximum_page_size=1000,
                ),
                retry=True,
                timeout=timedelta(seconds=70),
            )
            arrived = now()
            for event in response.history.events:
                self.events.append(
                    HistoryEvent(
                        type=EventType.Name(event.event_type),
                        event_id=event.event_id,
                        arrived=arrived,
                        event_time=event.event_time.ToNanoseconds() / 1e9,
                    )
                )
            if response.history.events:
                self._changed.set()
            token = response.next_page_token
            if not token:
                return

    def activities_closed(self) -> int:
        return sum(1 for e in self.events if e.type in _CLOSED_ACTIVITY)

    def _settled_at(self, activities: int) -> float | None:
        seen = 0
        for event in self.events:
            if event.type in _CLOSED_ACTIVITY:
                seen += 1
            elif seen >= activities and event.type == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED":
                return event.arrived
        return None

    async def settled(self, activities: int, within: float = 30.0) -> float:
        """When the `activities`-th activity's completion had been taken in."""
        async with asyncio.timeout(within):
            while True:
                at = self._settled_at(activities)
                if at is not None:
                    return at
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        HistoryFollower._running.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


@contextlib.contextmanager
def mcp_lab_http() -> Iterator[str]:
    """The bench's MCP server over Streamable HTTP, in a process of its own (as the stdio
    one is). Yields its URL."""
    from config.processes import free_port, port_open

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.mcp_lab", "--http", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the bench's MCP server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)

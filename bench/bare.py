"""The bare design: the chat a user would write instead of the product, as the anchor.

The reference text's pattern 1 and nothing more: a workflow takes a chat message by
Update, keeps the messages in memory, runs one activity that calls the model through
one reused `AsyncOpenAI(max_retries=0)` client (Temporal owns the retries) and returns
the reply as the Update's result. No web server, no websocket, no database mirror.
Two variants: non-streaming, and streaming (the content deltas joined).

    .venv/bin/python bench/bare.py worker --address HOST:PORT --task-queue Q --model-url URL

runs its worker as a process of its own (bench/load.py measures its CPU apart);
`bare_stack()` starts Temporal, the scripted model and that worker; bench/run.py runs
the worker in-process next to the floor's.

Only temporalio and the standard library are imported at the top: the workflow sandbox
re-imports this module. openai and the bench's helpers are imported where used.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

BARE_WORKFLOW = "BenchBareChatWorkflow"
CALL_LLM = "bench_bare_call_llm"
BARE_QUEUE = "bench-bare"
MODEL = "scripted"
SYSTEM_PROMPT = "You are a helpful assistant."
SETUP_CONCURRENCY = 25
TURN_TIMEOUT_SECONDS = 120.0
SLOW_SECONDS = 60.0


def _root() -> Path:
    # Not a module constant: the sandbox forbids Path.resolve while it imports this.
    return Path(__file__).resolve().parent.parent


@dataclass
class LlmInput:
    system_prompt: str
    messages: list[dict[str, str]]
    stream: bool = False


@dataclass
class BareStart:
    stream: bool = False


# --- the activity: pattern 1 --------------------------------------------------------------

# The model's /v1 URL, set once per worker process before the first call.
MODEL_BASE_URL = ""
_client: Any = None


def configure(base_url: str) -> None:
    global MODEL_BASE_URL, _client
    MODEL_BASE_URL = base_url
    _client = None


def _llm() -> Any:
    """One client per process, reused: its connection pool is what a user would keep."""
    global _client
    if _client is None:
        from openai import AsyncOpenAI

        _client = AsyncOpenAI(base_url=MODEL_BASE_URL, api_key="bare", max_retries=0)
    return _client


@activity.defn(name=CALL_LLM)
async def call_llm(inp: LlmInput) -> str:
    import openai

    activity.heartbeat("calling the model")
    messages = [{"role": "system", "content": inp.system_prompt}, *inp.messages]
    try:
        if not inp.stream:
            response = await _llm().chat.completions.create(model=MODEL, messages=messages)
            return response.choices[0].message.content or ""
        parts: list[str] = []
        stream = await _llm().chat.completions.create(model=MODEL, messages=messages, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)
    except openai.RateLimitError as err:
        retry_after = err.response.headers.get("retry-after")
        raise ApplicationError(
            str(err),
            type="RateLimitError",
            next_retry_delay=timedelta(seconds=float(retry_after)) if retry_after else None,
        ) from err
    except openai.BadRequestError as err:
        raise ApplicationError(str(err), type="ContentPolicyError", non_retryable=True) from err


# --- the workflow -----------------------------------------------------------------------------


@workflow.defn(name=BARE_WORKFLOW)
class BareChatWorkflow:
    def __init__(self) -> None:
        self._messages: list[dict[str, str]] = []
        self._stream = False
        self._closed = False
        # Updates may arrive together; the conversation takes them one at a time.
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, start: BareStart) -> int:
        self._stream = start.stream
        await workflow.wait_condition(lambda: self._closed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(self._messages)

    @workflow.update
    async def chat(self, text: str) -> str:
        async with self._lock:
            self._messages.append({"role": "user", "content": text})
            reply = await workflow.execute_activity(
                call_llm,
                LlmInput(SYSTEM_PROMPT, list(self._messages), self._stream),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=2),
                    maximum_attempts=10,
                    non_retryable_error_types=["ContentPolicyError"],
                ),
            )
            self._messages.append({"role": "assistant", "content": reply})
            return reply

    @workflow.update
    def close(self) -> int:
        self._closed = True
        return len(self._messages)


def worker(client: Any, task_queue: str, model_base_url: str, **options: Any) -> Any:
    """The bare worker (an async context manager); `model_base_url` ends in /v1."""
    from temporalio.worker import Worker

    configure(model_base_url)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BareChatWorkflow],
        activities=[call_llm],
        **options,
    )


# --- one conversation, timed (bench/run.py) -------------------------------------------------


class BareConversation:
    """A bare workflow; each turn is timed from the Update call to the reply returned."""

    def __init__(self, client: Any, task_queue: str, *, stream: bool) -> None:
        self.client = client
        self.task_queue = task_queue
        self.stream = stream
        self.workflow_id = f"bench-bare-{uuid.uuid4()}"
        self.handle: Any = None
        self.turns = 0

    async def start(self, text: str = "hello") -> BareConversation:
        """Update-with-start with the first message (untimed)."""
        from temporalio.client import WithStartWorkflowOperation
        from temporalio.common import WorkflowIDConflictPolicy

        operation = WithStartWorkflowOperation(
            BareChatWorkflow.run,
            BareStart(stream=self.stream),
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await self.client.execute_update_with_start_workflow(
            BareChatWorkflow.chat, text, start_workflow_operation=operation
        )
        self.handle = await operation.workflow_handle()
        return self

    async def turn(self, text: str) -> dict[str, float]:
        cpu = time.process_time()
        started = time.perf_counter()
        reply = await self.handle.execute_update(BareChatWorkflow.chat, text)
        ended = time.perf_counter()
        if not reply:
            raise RuntimeError(f"{self.workflow_id}: empty reply")
        self.turns += 1
        return {"reply_out": ended - started, "cpu": time.process_time() - cpu}

    async def close(self) -> None:
        # Closed so that a long bench does not leave thousands of open workflows behind.
        with contextlib.suppress(Exception):  # best effort, after the measure
            await self.handle.execute_update(BareChatWorkflow.close)


# --- its own stack (bench/load.py) -------------------------------------------------------------


@dataclass
class BareStack:
    address: str
    task_queue: str
    model_url: str
    # Process name -> pid, as bench/load.py's MemoryWatch takes them.
    processes: dict[str, int] = field(default_factory=dict)


@contextmanager
def bare_stack(task_queue: str = BARE_QUEUE) -> Iterator[BareStack]:
    """A Temporal dev server, the scripted model (zero delay) and the bare worker, each a
    process of its own, in a temporary folder; all stopped on exit. Call it from a thread
    that outlives the stack: the children die with the thread that started them."""
    import os
    import sys
    import tempfile

    if str(_root()) not in sys.path:
        sys.path.insert(0, str(_root()))
    from config import processes
    from config.processes import Child

    # The production stack's readiness check: Temporal lists the worker as a poller of
    # both its workflow and activity queues, so the first turn does not wait for it.
    from scripts.prod_stack import _wait_workers

    with tempfile.TemporaryDirectory(prefix="bench-bare-") as base:
        log_dir = Path(base) / "log"
        ports = dict(zip(("temporal", "ui", "model"), processes.free_ports(3), strict=True))
        address = f"127.0.0.1:{ports['temporal']}"
        model_url = f"http://127.0.0.1:{ports['model']}"
        temporal = Child(
            name="temporal",
            command=processes.temporal_dev_server_command(
                db_path=Path(base) / "temporal.db", port=ports["temporal"], ui_port=ports["ui"]
            ),
            log_path=log_dir / "temporal.log",
            ready_port=("127.0.0.1", ports["temporal"]),
            start_timeout=60,
        )
        model = Child(
            name="scripted model",
            command=processes.scripted_model_command(port=ports["model"], chunk_delay_ms=0),
            log_path=log_dir / "model.log",
            ready_url=f"{model_url}/healthz",
            cwd=_root(),
            env={"SCRIPTED_MODEL_CHUNK_DELAY_MS": "0"},
            start_timeout=60,
        )
        bare_worker = Child(
            name="bare worker",
            command=[
                sys.executable,
                str(_root() / "bench" / "bare.py"),
                "worker",
                "--address",
                address,
                "--task-queue",
                task_queue,
                "--model-url",
                model_url,
            ],
            log_path=log_dir / "worker.log",
            cwd=_root(),
            start_timeout=60,
        )
        # Stopped in this order: the worker first, then the servers.
        children = [bare_worker, model, temporal]
        try:
            for server in (temporal, model):
                server.launch()
            for server in (temporal, model):
                server.wait_ready()
            asyncio.run(processes.temporal_connect(address, wait_seconds=60))
            bare_worker.start()
            identity = f"{bare_worker.pid}@{os.uname().nodename}"
            asyncio.run(_wait_workers(address, task_queue, {identity}, [bare_worker]))
            yield BareStack(
                address=address,
                task_queue=task_queue,
                model_url=model_url,
                processes={c.name: c.pid for c in (temporal, bare_worker, model)},
            )
        finally:
            for child in children:
                if child.running():
                    child.stop()


# --- N users at once (bench/load.py) ---------------------------------------------------------


async def run_bare_users(
    address: str,
    task_queue: str,
    users: int,
    turns: int,
    stream: bool,
    *,
    on_go: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """bench/load.py's run_users for the bare design, with the same definitions: each user
    starts its conversation (update-with-start, untimed, at most SETUP_CONCURRENCY at
    once), all wait for `go`, then each sends `turns` messages one after another, timed
    from the Update call to the reply returned. An error is a turn that raises or takes
    longer than TURN_TIMEOUT_SECONDS. `on_go`/`on_end` run when the clock starts and
    stops (bench/load.py takes its CPU snapshots there)."""
    import statistics

    from bench.harness import percentile
    from config.processes import temporal_connect

    client = await temporal_connect(address)
    latencies: list[float] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    ready_count = 0
    all_ready = asyncio.Event()
    go = asyncio.Event()
    conversations: list[BareConversation] = []

    def ready() -> None:
        nonlocal ready_count
        ready_count += 1
        if ready_count == users:
            all_ready.set()

    def record_error(where: str, err: BaseException) -> None:
        if isinstance(err, TimeoutError) and not str(err):
            err = TimeoutError(f"no reply within {TURN_TIMEOUT_SECONDS:.0f}s")
        errors.append(f"{where}: {type(err).__name__}: {err}"[:300])

    async def user(index: int) -> None:
        conversation = BareConversation(client, task_queue, stream=stream)
        try:
            async with gate, asyncio.timeout(TURN_TIMEOUT_SECONDS):
                await conversation.start(f"load user {index} says hello")
            conversations.append(conversation)
        except Exception as err:
            record_error(f"user {index} setup", err)
            ready()
            return
        ready()
        await go.wait()
        for turn in range(turns):
            try:
                async with asyncio.timeout(TURN_TIMEOUT_SECONDS):
                    sample = await conversation.turn(f"user {index} turn {turn}")
            except Exception as err:
                record_error(f"user {index} turn {turn}", err)
                return
            latencies.append(sample["reply_out"])

    setup_started = time.perf_counter()
    # As load.py's client_cpu_seconds: setup included (per-turn CPU is load.py's job).
    client_cpu = time.process_time()
    tasks = [asyncio.create_task(user(i)) for i in range(users)]
    await all_ready.wait()
    started = time.perf_counter()
    if on_go is not None:
        on_go()
    go.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    if on_end is not None:
        on_end()
    client_cpu_seconds = time.process_time() - client_cpu
    await asyncio.gather(*(c.close() for c in conversations))

    out: dict[str, Any] = {
        "turns": len(latencies),
        "seconds": round(seconds, 2),
        "errors": len(errors),
        "error_samples": errors[:5],
        "setup_seconds": round(started - setup_started, 1),
        "client_cpu_seconds": round(client_cpu_seconds, 1),
    }
    if latencies:
        out["turns_per_second"] = round(len(latencies) / seconds, 1)
        out["p50_ms"] = round(statistics.median(latencies) * 1000, 1)
        out["p95_ms"] = round(percentile(latencies, 0.95) * 1000, 1)
        out["max_ms"] = round(max(latencies) * 1000, 1)
        out["slow"] = sum(1 for s in latencies if s > SLOW_SECONDS)
    return out


# --- the worker process ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("worker", help="run the bare worker until SIGTERM / Ctrl-C")
    run.add_argument("--address", required=True)
    run.add_argument("--task-queue", default=BARE_QUEUE)
    run.add_argument("--model-url", required=True, help="the model's URL (/v1 is added)")
    args = parser.parse_args(argv)

    if str(_root()) not in sys.path:
        sys.path.insert(0, str(_root()))
    # The workflow must come from `bench.bare`, not `__main__`: the sandbox re-imports
    # a workflow's module by name.
    from bench import bare

    base_url = args.model_url.rstrip("/")
    if not base_url.endswith("/v1"):
        base_url += "/v1"
    asyncio.run(bare.serve(args.address, args.task_queue, base_url))


async def serve(address: str, task_queue: str, model_base_url: str) -> None:
    import signal

    from config.processes import temporal_connect

    client = await temporal_connect(address, wait_seconds=60)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker(client, task_queue, model_base_url):
        await stop.wait()


if __name__ == "__main__":
    main()

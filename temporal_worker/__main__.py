"""Run a standalone worker: `python -m temporal_worker` (production: one or more per host).

Configuration is Django's (DATABASE_URL, REDIS_URL, TEMPORAL_*, OPENAI_*, ...) plus:

| variable | default | meaning |
|---|---|---|
| `WORKER_MAX_ACTIVITIES` | 100 | activities (LLM calls, tools) run at once by this process |
| `WORKER_MAX_WORKFLOW_TASKS` | 100 | workflow tasks run at once by this process |
| `WORKER_SHUTDOWN_GRACE_SECONDS` | 10 | on SIGTERM, how long in-flight activities may finish |
| `WORKER_CONNECT_WAIT_SECONDS` | 60 | how long to keep retrying a Temporal that is not up yet |

SIGTERM or SIGINT stops polling, lets in-flight activities finish for up to the grace
period, then cancels the rest (Temporal retries them on another worker) and exits 0.
A second signal exits at once. A worker that dies on its own exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from datetime import timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
django.setup()

from django.conf import settings  # noqa: E402
from temporalio.client import Client  # noqa: E402

from chatapp import temporal_client  # noqa: E402
from temporal_worker.worker import build_worker  # noqa: E402

logger = logging.getLogger("temporal_worker")


def _env_int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, not {value}")
    return value


async def _connect(wait_seconds: float) -> Client:
    """Connect with retries: in a fresh deployment Temporal may start after the workers."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return await temporal_client.get_client()
        except Exception as err:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "Temporal at %s not reachable (%s); retrying in %.1fs",
                settings.TEMPORAL_ADDRESS,
                type(err).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def main() -> int:
    max_activities = _env_int("WORKER_MAX_ACTIVITIES", 100)
    max_workflow_tasks = _env_int("WORKER_MAX_WORKFLOW_TASKS", 100)
    grace = _env_int("WORKER_SHUTDOWN_GRACE_SECONDS", 10, minimum=0)
    connect_wait = _env_int("WORKER_CONNECT_WAIT_SECONDS", 60, minimum=0)

    client = await _connect(connect_wait)
    worker = build_worker(
        client,
        task_queue=settings.TEMPORAL_TASK_QUEUE,
        max_concurrent_activities=max_activities,
        max_concurrent_workflow_tasks=max_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=grace),
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            logger.warning("second %s: exiting without waiting", signal.Signals(signum).name)
            os._exit(1)
        logger.info("%s received: shutting down", signal.Signals(signum).name)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    run = asyncio.create_task(worker.run())
    identity = worker.config().get("identity") or client.identity
    logger.info(
        "worker %s polling task queue %s (at most %d activities, %d workflow tasks)",
        identity,
        settings.TEMPORAL_TASK_QUEUE,
        max_activities,
        max_workflow_tasks,
        extra={
            "identity": identity,
            "task_queue": settings.TEMPORAL_TASK_QUEUE,
            "namespace": settings.TEMPORAL_NAMESPACE,
        },
    )
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({run, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if run.done():
        stop_wait.cancel()
        err = run.exception() if not run.cancelled() else None
        logger.error("worker stopped unexpectedly", exc_info=err)
        return 1

    logger.info("finishing in-flight tasks", extra={"grace_seconds": grace})
    await worker.shutdown()
    try:
        await run
    except Exception:
        logger.exception("worker failed while shutting down")
        return 1
    logger.info("worker stopped")
    return 0


if __name__ == "__main__":
    exit_code = asyncio.run(main())
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's Rust threads may still touch Python while the interpreter finalizes
    # ("Fatal Python error: PyGILState_Release", exit by SIGABRT): everything is
    # stopped and flushed by now, so leave without finalizing.
    os._exit(exit_code)

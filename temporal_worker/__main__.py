"""Run a standalone worker: `python -m temporal_worker` (production: one or more per host).

Configuration is Django's settings (DATABASE_URL, REDIS_URL, TEMPORAL_*, OPENAI_*, and
WORKER_MAX_ACTIVITIES, WORKER_MAX_WORKFLOW_TASKS, WORKER_SHUTDOWN_GRACE_SECONDS,
WORKER_CONNECT_WAIT_SECONDS; see .env.example).

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
from collections.abc import Sequence
from datetime import timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from temporalio.worker import Interceptor  # noqa: E402

from config import telemetry  # noqa: E402
from temporal_worker import client  # noqa: E402
from temporal_worker.worker import build_worker  # noqa: E402

logger = logging.getLogger("temporal_worker")


def _checked(name: str, minimum: int) -> int:
    value: int = getattr(settings, name)
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, not {value}")
    return value


async def main(interceptors: Sequence[Interceptor] = ()) -> int:
    max_activities = _checked("WORKER_MAX_ACTIVITIES", 1)
    max_workflow_tasks = _checked("WORKER_MAX_WORKFLOW_TASKS", 1)
    grace = _checked("WORKER_SHUTDOWN_GRACE_SECONDS", 0)
    connect_wait = _checked("WORKER_CONNECT_WAIT_SECONDS", 0)
    _checked("WORKER_MIN_ACTIVITIES", 1)
    for share in ("WORKER_TARGET_CPU", "WORKER_TARGET_MEMORY"):
        if not 0 <= getattr(settings, share) <= 1:
            raise SystemExit(f"{share} must be between 0 and 1, not {getattr(settings, share)}")

    # Before connecting: the client is given the tracing interceptor only when on.
    telemetry.setup()
    temporal = await client.connect_when_up(connect_wait)
    worker = build_worker(
        temporal,
        task_queue=settings.TEMPORAL_TASK_QUEUE,
        max_concurrent_activities=max_activities,
        max_concurrent_workflow_tasks=max_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=grace),
        interceptors=interceptors,
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

    running = asyncio.create_task(worker.run())
    identity = worker.config().get("identity") or temporal.identity
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
    await asyncio.wait({running, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        stop_wait.cancel()
        err = running.exception() if not running.cancelled() else None
        logger.error("worker stopped unexpectedly", exc_info=err)
        return 1

    logger.info("finishing in-flight tasks", extra={"grace_seconds": grace})
    await worker.shutdown()
    try:
        await running
    except Exception:
        logger.exception("worker failed while shutting down")
        return 1
    logger.info("worker stopped")
    return 0


def run(interceptors: Sequence[Interceptor] = ()) -> None:
    """Run until stopped, then leave the process (tests wrap this with their interceptors)."""
    exit_code = asyncio.run(main(interceptors))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's Rust threads may still touch Python while the interpreter finalizes
    # ("Fatal Python error: PyGILState_Release", exit by SIGABRT): everything is
    # stopped and flushed by now, so leave without finalizing.
    os._exit(exit_code)


if __name__ == "__main__":
    run()

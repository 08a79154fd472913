"""Run a standalone worker: `python -m temporal_worker` (production: one or more per host)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
django.setup()

from django.conf import settings  # noqa: E402

from chatapp import temporal_client  # noqa: E402
from temporal_worker.worker import build_worker  # noqa: E402

logger = logging.getLogger("temporal_worker")


async def main() -> None:
    client = await temporal_client.get_client()
    worker = build_worker(
        client,
        task_queue=settings.TEMPORAL_TASK_QUEUE,
        max_concurrent_activities=int(os.environ.get("WORKER_MAX_ACTIVITIES", "100")),
        max_concurrent_workflow_tasks=int(os.environ.get("WORKER_MAX_WORKFLOW_TASKS", "100")),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        logger.info("worker polling task queue %s", settings.TEMPORAL_TASK_QUEUE)
        await stop.wait()
        logger.info("worker shutting down: finishing in-flight tasks")
    logger.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())

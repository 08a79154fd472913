"""Builds the Temporal worker that runs conversation workflows and their activities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from temporal_worker.activities.approvals import notify_approval
from temporal_worker.activities.llm import call_llm
from temporal_worker.activities.notices import record_notice
from temporal_worker.activities.tools import TOOL_ACTIVITIES
from temporal_worker.workflows import ConversationWorkflow

WORKFLOWS = [ConversationWorkflow]
ACTIVITIES = [call_llm, record_notice, notify_approval, *TOOL_ACTIVITIES]


class _DatabaseConnections(ActivityInboundInterceptor):
    """Django closes stale connections around each request; do the same around each
    activity, so a database restart costs one reconnect, not a string of failed attempts."""

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # With CONN_MAX_AGE = 0 the close after the last activity left nothing to check:
        # skip the trip to the database thread.
        if _persistent_connections():
            await sync_to_async(close_old_connections)()
        try:
            return await super().execute_activity(input)
        finally:
            await sync_to_async(close_old_connections)()


def _persistent_connections() -> bool:
    return any(db.get("CONN_MAX_AGE", 0) for db in settings.DATABASES.values())


class DatabaseConnectionsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _DatabaseConnections(next)


def build_worker(
    client: Client,
    *,
    task_queue: str,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int = 100,
    graceful_shutdown_timeout: timedelta = timedelta(seconds=10),
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        interceptors=[DatabaseConnectionsInterceptor()],
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        # Heartbeats carry the streamed text and the Stop button's cancellation:
        # send them at least every second, not at 80% of the heartbeat timeout.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
        graceful_shutdown_timeout=graceful_shutdown_timeout,
    )

"""The worker assembly: the one module that wires the apps into the Temporal worker.

Activities depend on interfaces (temporal_worker.ports); here each gets the apps'
implementations: the chat app's transcript, the reviews app's policies and audit,
the channel layer, the reviews app's email and Slack deliveries, and the tool registry
every process shares.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    FixedSizeSlotSupplier,
    Interceptor,
    ResourceBasedSlotConfig,
    ResourceBasedSlotSupplier,
    ResourceBasedTunerConfig,
    Worker,
    WorkerTuner,
)

from chatapp.deletion import ExpiredConversations
from chatapp.mcp_catalog import McpServerTable
from chatapp.transcript import DatabaseTranscript
from chatapp.usage import UsageTable
from reviews.audit import ApprovalAuditTable
from reviews.notifications import ApprovalNotifier
from reviews.policies import PolicyTable
from temporal_worker import llm_gateway
from temporal_worker.activities.approvals import ApprovalActivity
from temporal_worker.activities.llm import LlmActivity
from temporal_worker.activities.notices import NoticeActivity
from temporal_worker.activities.retention import RetentionActivity
from temporal_worker.activities.tools import ToolActivity
from temporal_worker.live import ChannelLayerPublisher
from temporal_worker.ports import Ports
from temporal_worker.telemetry import TelemetryInterceptor, tracing_on
from temporal_worker.tools.mcp.connections import mcp_pool_close
from temporal_worker.tools.mcp.refresher import McpCatalogRefresher
from temporal_worker.tools.registry import atool_registry, mcp_catalog_changed
from temporal_worker.workflows import ConversationWorkflow, RetentionWorkflow

WORKFLOWS = [ConversationWorkflow, RetentionWorkflow]


def product_ports() -> Ports:
    return Ports(
        transcript=DatabaseTranscript(),
        policies=PolicyTable(),
        audit=ApprovalAuditTable(),
        live=ChannelLayerPublisher(),
        channels=ApprovalNotifier(),
        usage=UsageTable(),
        retention=ExpiredConversations(),
    )


def llm_settings() -> llm_gateway.LlmSettings:
    return llm_gateway.LlmSettings(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=settings.AGENT_MODEL,
    )


def activities(ports: Ports) -> list[Any]:
    """Every activity the worker runs, bound to its dependencies."""
    return [
        LlmActivity(ports, tools=atool_registry, llm_settings=llm_settings).call_llm,
        NoticeActivity(ports).record_notice,
        ApprovalActivity(ports).notify_approval,
        ToolActivity(ports, tools=atool_registry).run_tool,
        RetentionActivity(ports).delete_expired,
    ]


class _DatabaseConnections(ActivityInboundInterceptor):
    """Django closes stale connections around each request; do the same around each
    activity, so a database restart costs one reconnect, not a string of failed attempts."""

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # With CONN_MAX_AGE = 0 the close after the last activity left nothing to check
        # (on PostgreSQL it went back to the pool, which checks it as it hands it out):
        # skip the trip to the database thread.
        if _persistent_connections():
            await sync_to_async(close_old_connections)()
        try:
            return await super().execute_activity(input)
        finally:
            await sync_to_async(close_old_connections)()


def _persistent_connections() -> bool:
    """A kept connection to a database server that may have restarted meanwhile. SQLite's
    are kept too (CONN_MAX_AGE None), but a file does not go away: checking it before each
    activity would only queue one more trip on the ORM thread the step itself waits for."""
    return any(
        db.get("CONN_MAX_AGE", 0) != 0 and db["ENGINE"] != "django.db.backends.sqlite3"
        for db in settings.DATABASES.values()
    )


class DatabaseConnectionsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _DatabaseConnections(next)


def mcp_refresher() -> McpCatalogRefresher:
    """Lists the admin's MCP servers when due (the chat app keeps the lists)."""
    return McpCatalogRefresher(
        McpServerTable(),
        poll_seconds=settings.MCP_REFRESH_POLL_SECONDS,
        on_change=mcp_catalog_changed,
    )


class ProductWorker(Worker):
    """The Temporal worker, with what runs beside it: the MCP servers' tool lists kept
    fresh while it runs, and its sessions to MCP servers (stdio servers are its child
    processes) closed when it stops."""

    async def run(self) -> None:
        refresher = asyncio.create_task(mcp_refresher().run_forever(), name="mcp-refresher")
        try:
            await super().run()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await mcp_pool_close()


def worker_tuner(*, activities: int, workflow_tasks: int) -> WorkerTuner:
    """How many tasks the worker runs at once.

    Activities by the machine's load (settings.WORKER_TARGET_CPU): a model call that waits
    on the network takes a slot at once, while work that keeps the CPU busy waits in
    Temporal's queue rather than slowing every running one. With a fixed 100 and a fast
    model, 200 users left 200 steps sharing the CPU: each ran for seconds, heartbeating
    every second, and Update acceptances queued behind them until sends were refused
    (bench/load.py: at N = 200, 6.2 turns/s and 66 refused sends; with the tuner 9.8 turns/s
    and none, at the CPU per turn of N = 10)."""
    target = settings.WORKER_TARGET_CPU
    if not target:
        return WorkerTuner.create_fixed(
            workflow_slots=workflow_tasks,
            activity_slots=activities,
            local_activity_slots=activities,
        )
    return WorkerTuner.create_composite(
        workflow_supplier=FixedSizeSlotSupplier(workflow_tasks),
        activity_supplier=ResourceBasedSlotSupplier(
            ResourceBasedSlotConfig(
                minimum_slots=min(settings.WORKER_MIN_ACTIVITIES, activities),
                maximum_slots=activities,
            ),
            ResourceBasedTunerConfig(
                target_memory_usage=settings.WORKER_TARGET_MEMORY, target_cpu_usage=target
            ),
        ),
        local_activity_supplier=FixedSizeSlotSupplier(activities),
        nexus_supplier=FixedSizeSlotSupplier(activities),
    )


def build_worker(
    client: Client,
    *,
    task_queue: str,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int = 100,
    graceful_shutdown_timeout: timedelta = timedelta(seconds=10),
    ports: Ports | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """The product's worker; tests may pass other ports or extra interceptors."""
    return ProductWorker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities(ports or product_ports()),
        interceptors=[
            DatabaseConnectionsInterceptor(),
            # Tool spans, the reviewer's wait, tool and approval metrics: only when on.
            *([TelemetryInterceptor()] if tracing_on() else []),
            *interceptors,
        ],
        tuner=worker_tuner(
            activities=max_concurrent_activities, workflow_tasks=max_concurrent_workflow_tasks
        ),
        # Heartbeats carry the streamed text and the Stop button's cancellation:
        # send them at least every second, not at 80% of the heartbeat timeout.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
        graceful_shutdown_timeout=graceful_shutdown_timeout,
    )

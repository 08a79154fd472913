"""The worker's traces and metrics, through the OpenTelemetry API only.

Nothing here installs a provider: `config.telemetry` does, when OTEL_EXPORTER_OTLP_ENDPOINT
is set. Without one the API hands out no-op tracers and instruments, and the worker is
not given `TelemetryInterceptor` at all, so tracing off costs nothing measurable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from opentelemetry import metrics, trace
from temporalio import activity
from temporalio.runtime import OpenTelemetryConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
)

from temporal_worker.contracts.approvals import NOTIFY_APPROVAL_ACTIVITY, ApprovalEvent
from temporal_worker.contracts.tools import TOOL_ACTIVITY_PREFIX
from temporal_worker.trace_context import UpdateTraceInterceptor

INSTRUMENTATION = "durable_agent_chat"


_runtime: Runtime | None = None


def otlp_endpoint(base: str, signal: str) -> str:
    """The OTLP/HTTP endpoint of one signal ("traces", "metrics") under the collector's."""
    return f"{base.rstrip('/')}/v1/{signal}"


def tracing_on() -> bool:
    """Whether a tracer provider is installed (config.telemetry.setup): only then do the
    Temporal client and worker get interceptors."""
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


def temporal_runtime() -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics (task latencies, slots, polls) to
    the collector, or None (the default runtime) when telemetry is off."""
    global _runtime
    if not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return None
    if _runtime is None:
        _runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=OpenTelemetryConfig(
                    url=otlp_endpoint(settings.OTEL_EXPORTER_OTLP_ENDPOINT, "metrics"),
                    http=True,
                    metric_periodicity=timedelta(milliseconds=settings.OTEL_METRIC_EXPORT_INTERVAL),
                )
            )
        )
    return _runtime


def current_trace_id() -> str:
    """The current trace's id as 32 hex digits, or "" when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else ""


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION)


@contextlib.contextmanager
def model_call_span(model: str, base_url: str) -> Iterator[trace.Span]:
    """The HTTP call to the model (the gateway's httpx fork is not instrumented)."""
    with tracer().start_as_current_span(
        "llm.chat_completions",
        kind=trace.SpanKind.CLIENT,
        attributes={"gen_ai.system": "openai", "gen_ai.request.model": model, "url.full": base_url},
    ) as span:
        yield span


class _Instruments:
    """The product's own metrics (the Temporal SDK's come from its runtime)."""

    def __init__(self) -> None:
        meter = metrics.get_meter(INSTRUMENTATION)
        self.turns = meter.create_counter("agent.turns", description="Turns begun (user messages)")
        self.model_latency = meter.create_histogram(
            "agent.model.duration", unit="ms", description="One model call, request to last chunk"
        )
        self.tokens = meter.create_counter(
            "agent.model.tokens", unit="{token}", description="Tokens the provider reported"
        )
        self.tool_calls = meter.create_counter("agent.tool.calls", description="Tool runs")
        self.tool_failures = meter.create_counter(
            "agent.tool.failures", description="Tool runs that raised (each attempt)"
        )
        self.approvals_pending = meter.create_up_down_counter(
            "agent.approvals.pending", description="Approvals asked for and not decided yet"
        )
        self.decision_latency = meter.create_histogram(
            "agent.approvals.decision_latency",
            unit="s",
            description="From the request to the reviewer's decision, by channel",
        )


_instruments: _Instruments | None = None


def instruments() -> _Instruments:
    """Created on first use, after the meter provider is set (a no-op one otherwise)."""
    global _instruments
    if _instruments is None:
        _instruments = _Instruments()
    return _instruments


def record_model_call(
    *, model: str, outcome: str, duration_ms: int, prompt: int, completion: int, cached: int
) -> None:
    meters = instruments()
    attributes = {"gen_ai.request.model": model, "outcome": outcome}
    meters.model_latency.record(duration_ms, attributes)
    for kind, count in (("input", prompt - cached), ("cached", cached), ("output", completion)):
        if count:
            meters.tokens.add(count, {"gen_ai.request.model": model, "gen_ai.token.type": kind})


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _reviewer_wait(event: ApprovalEvent) -> None:
    """The wait for a reviewer as a span of its own, from the request to the decision (the
    workflow's own times, from the history), and the decision latency by channel."""
    meters = instruments()
    if event.kind == "requested":
        meters.approvals_pending.add(1, {"tool": event.approval.tool})
        return
    if event.kind != "decided" or event.decision is None:
        return
    meters.approvals_pending.add(-1, {"tool": event.approval.tool})
    start = _parse_time(event.approval.requested_at)
    end = _parse_time(event.decision.decided_at)
    if start is None or end is None:
        return
    channel = event.decision.channel or ("deadline" if event.decision.by_system else "withdrawn")
    meters.decision_latency.record(
        max(0.0, (end - start).total_seconds()), {"channel": channel, "tool": event.approval.tool}
    )
    span = tracer().start_span(
        "approval.wait",
        start_time=int(start.timestamp() * 1e9),
        attributes={
            "approval.call_id": event.approval.call_id,
            "approval.tool": event.approval.tool,
            "approval.outcome": event.decision.outcome,
            "approval.channel": channel,
        },
    )
    span.end(end_time=int(end.timestamp() * 1e9))


class _TelemetryActivities(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        # Once per event: a retried notification is the same request or decision.
        if name == NOTIFY_APPROVAL_ACTIVITY and input.args and activity.info().attempt == 1:
            event = input.args[0]
            if isinstance(event, ApprovalEvent):
                _reviewer_wait(event)
        if not name.startswith(TOOL_ACTIVITY_PREFIX):
            return await super().execute_activity(input)
        tool = name.removeprefix(TOOL_ACTIVITY_PREFIX)
        meters = instruments()
        meters.tool_calls.add(1, {"tool": tool})
        started = time.monotonic()
        with tracer().start_as_current_span("tool.run", attributes={"tool.name": tool}) as span:
            try:
                return await super().execute_activity(input)
            except BaseException:
                meters.tool_failures.add(1, {"tool": tool})
                raise
            finally:
                span.set_attribute("tool.duration_ms", round((time.monotonic() - started) * 1000))


class TelemetryInterceptor(UpdateTraceInterceptor):
    """Given to the worker only when telemetry is on: each turn in the trace of the
    request that asked for it, tool spans and counts, the reviewer wait as a span,
    approvals pending and decision latency by channel."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TelemetryActivities(next)

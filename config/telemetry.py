"""Traces and metrics over OTLP, set up once per process (web, worker, `serve`).

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then no tracer or meter provider is
installed, the Temporal client and worker get no interceptor and the ASGI app is not
wrapped, so telemetry off costs nothing. On, one trace follows a turn from the browser's
POST (the ASGI middleware) through the Temporal client, the workflow and its activities
(temporalio's TracingInterceptor) to the model's HTTP call, tools and the reviewer's wait
(temporal_worker/telemetry.py). The Temporal SDK's own metrics go to the same collector
through its runtime. See docs/observability.md.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor

from temporal_worker.telemetry import otlp_endpoint

logger = logging.getLogger(__name__)


def enabled() -> bool:
    return bool(settings.OTEL_EXPORTER_OTLP_ENDPOINT)


def _endpoint(signal: str) -> str:
    return otlp_endpoint(settings.OTEL_EXPORTER_OTLP_ENDPOINT, signal)


def setup(
    *, span_processor: SpanProcessor | None = None, metric_reader: MetricReader | None = None
) -> bool:
    """Install the tracer and meter providers if telemetry is on (or a test hands in its
    own processor and reader). Idempotent: a process sets them once. True when on."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True
    if span_processor is None and metric_reader is None and not enabled():
        return False
    resource = Resource.create({"service.name": settings.OTEL_SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        span_processor or BatchSpanProcessor(_span_exporter(_endpoint("traces")))
    )
    trace.set_tracer_provider(tracer_provider)
    reader = metric_reader or PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=_endpoint("metrics")),
        export_interval_millis=settings.OTEL_METRIC_EXPORT_INTERVAL,
    )
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    logger.info("telemetry on: traces and metrics to %s", settings.OTEL_EXPORTER_OTLP_ENDPOINT)
    return True


def _span_exporter(endpoint: str) -> SpanExporter:
    return OTLPSpanExporter(endpoint=endpoint)


def asgi_app(app: Any) -> Any:
    """The web app, wrapped in the OpenTelemetry ASGI middleware when telemetry is on: each
    HTTP request (and websocket) is a server span that later spans descend from."""
    if not setup():
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)

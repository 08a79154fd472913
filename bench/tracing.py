"""(h) What tracing costs one agent step: the same step with telemetry off and on, measured
interleaved in one run.

Off is the product's default: no tracer or meter provider (the API's no-ops) and a worker
without interceptors. On is what OTEL_EXPORTER_OTLP_ENDPOINT turns on: the SDK's providers
with a batch span processor and a periodic metric reader exporting over OTLP/HTTP to a
collector (here a local receiver that accepts and counts every export), a Temporal client
and worker with temporalio's TracingInterceptor, and the product's TelemetryInterceptor.
The two worlds share one process, so the global providers are switched before each sample
(the API reads them on every span and instrument).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.harness import PRODUCT_QUEUE, Stack
from bench.scenarios import PLAIN_TEXT, TURNS_PER_CONVERSATION, Measure, ProductConversation

TRACED_QUEUE = PRODUCT_QUEUE + "-traced"


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that takes every export and answers success."""

    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).exports += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def otlp_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class TracingLab:
    off: Stack
    on: Stack
    tracer_provider: Any
    meter_provider: Any

    def switch(self, on: bool) -> Stack:
        """Install (or remove) the providers, as a process with (or without) telemetry."""
        from opentelemetry import metrics, trace

        from temporal_worker import telemetry

        trace._TRACER_PROVIDER = self.tracer_provider if on else None
        metrics._internal._METER_PROVIDER = self.meter_provider if on else None
        telemetry._instruments = None  # bound to the provider they came from
        stack = self.on if on else self.off
        stack.activate()
        return stack


@contextlib.asynccontextmanager
async def tracing_lab(stack: Stack) -> AsyncIterator[TracingLab]:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.client import Client
    from temporalio.contrib.opentelemetry import TracingInterceptor

    from temporal_worker.telemetry import TelemetryInterceptor, otlp_endpoint
    from temporal_worker.worker import build_worker

    with otlp_receiver() as collector:
        resource = Resource.create({"service.name": "bench"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint(collector, "traces")))
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=otlp_endpoint(collector, "metrics"))
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        lab = TracingLab(
            off=stack,
            on=stack,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        # The interceptor takes its tracer when it is built: with the provider installed.
        lab.switch(True)
        traced = Client(**{**stack.client.config(), "interceptors": [TracingInterceptor()]})
        lab.switch(False)
        lab.on = dataclasses.replace(stack, client=traced, product_queue=TRACED_QUEUE)
        worker = build_worker(
            traced, task_queue=TRACED_QUEUE, interceptors=[TelemetryInterceptor()]
        )
        try:
            async with worker:
                yield lab
        finally:
            lab.switch(False)
            tracer_provider.shutdown()
            meter_provider.shutdown()
            stack.extra["otlp_exports"] = _Receiver.exports


def traced_step(lab: TracingLab, *, on: bool) -> Measure:
    """One agent step (message → final `chat.message`), telemetry on or off."""
    state: dict[str, Any] = {"conversation": None, "n": 0}

    async def sample() -> dict[str, float]:
        stack = lab.switch(on)
        conv = state["conversation"]
        if conv is None or conv.turns >= TURNS_PER_CONVERSATION:
            if conv is not None:
                await conv.close()
            conv = state["conversation"] = await ProductConversation.create(stack)
        state["n"] += 1
        try:
            return await conv.turn(PLAIN_TEXT.format(n=state["n"]))
        finally:
            lab.switch(False)

    return Measure("step_trace_on" if on else "step_trace_off", sample)

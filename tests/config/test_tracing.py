"""One turn, one trace: the browser's POST (through the real ASGI app and its OpenTelemetry
middleware), the Temporal client, the workflow and its activities, the model's HTTP call,
the tool and the reviewer's wait, collected by the OpenTelemetry SDK's in-memory exporter;
and the metrics of that turn from its in-memory reader. Telemetry off installs nothing.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.test import AsyncClient
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from chatapp.usage_models import ModelCall
from config import telemetry as config_telemetry
from temporal_worker import client as temporal_client
from temporal_worker import telemetry
from temporal_worker.client.connection import connect_config
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.worker import build_worker
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import decision_for, order_create, reviewer_create
from tests.factories import auser_create
from tests.helpers import eventually
from tests.temporal_worker.test_llm_failures import turn_done

pytestmark = pytest.mark.django_db(transaction=True)


def _reset_globals() -> None:
    """The API sets its providers once per process; the tests put them back as they were."""
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    metrics._internal._METER_PROVIDER = None
    metrics._internal._METER_PROVIDER_SET_ONCE._done = False
    # The proxy kept the real provider for meters asked for later: forget it too.
    metrics._internal._PROXY_METER_PROVIDER._real_meter_provider = None
    telemetry._instruments = None


@pytest.fixture
def traced() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    assert config_telemetry.setup(
        span_processor=SimpleSpanProcessor(exporter), metric_reader=reader
    )
    try:
        yield exporter, reader
    finally:
        _reset_globals()


@pytest_asyncio.fixture
async def traced_worker(
    traced: Any, temporal: Client, temporal_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[Client]:
    """Django's client and the worker, with the tracing interceptor as connect_config gives
    it when telemetry is on."""
    assert any(isinstance(i, TracingInterceptor) for i in connect_config()["interceptors"])
    client = Client(**{**temporal_env.client.config(), "interceptors": [TracingInterceptor()]})
    temporal_client.set_client(client)
    async with build_worker(client, task_queue=task_queue):
        yield client


async def post(path: str, fields: dict[str, str], session: str) -> int:
    """A browser's htmx POST through the ASGI app the web server runs, traced."""
    app = config_telemetry.asgi_app(get_asgi_application())
    csrf = secrets.token_hex(16)
    payload = urlencode(fields).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(payload)).encode()),
            (b"hx-request", b"true"),
            (b"x-csrftoken", csrf.encode()),
            (
                b"cookie",
                f"{settings.SESSION_COOKIE_NAME}={session}; "
                f"{settings.CSRF_COOKIE_NAME}={csrf}".encode(),
            ),
        ],
    }
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": payload, "more_body": False})
    start = await communicator.receive_output(timeout=20)
    await communicator.wait(timeout=20)
    return int(start["status"])


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_names(spans: list[ReadableSpan], span: ReadableSpan) -> list[str]:
    """The names of `span`'s ancestors, nearest first."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        ancestor = by_id[parent.span_id]
        names.append(ancestor.name)
        parent = ancestor.parent
    return names


async def test_one_turn_with_a_tool_and_an_approval_is_one_connected_trace(
    traced: tuple[InMemorySpanExporter, InMemoryMetricReader],
    traced_worker: Client,
    demo_shop: None,
) -> None:
    exporter, reader = traced
    user = await auser_create()
    reviewer = await reviewer_create()
    web = AsyncClient()
    await web.aforce_login(user)
    session = web.cookies[settings.SESSION_COOKIE_NAME].value
    order = await order_create()
    cid = uuid.uuid4()
    status = await post(
        "/c/send/",
        {
            "conversation_id": str(cid),
            "message_id": str(uuid.uuid4()),
            "text": f"Please refund 120 on order {order.number}",
        },
        session,
    )
    assert status == 200
    handle = traced_worker.get_workflow_handle(conversation_workflow_id(str(cid)))

    async def pending() -> Any:
        result = await handle.query(ConversationWorkflow.pending_approvals)
        return result.items[0] if result.items else None

    approval = await eventually(pending)
    await temporal_client.approval_decide(
        conversation_id=str(cid), decision=decision_for(approval, reviewer)
    )
    await turn_done(cid)

    spans = list(exporter.get_finished_spans())
    (request,) = [s for s in spans if s.name == "POST /c/send/" and s.parent is None]
    turn = request.context.trace_id
    in_turn = [s for s in spans if s.context.trace_id == turn]
    names = {s.name for s in in_turn}
    for expected in (
        "StartUpdateWithStartWorkflow:ConversationWorkflow",
        "RunWorkflow:ConversationWorkflow",
        "StartActivity:call_llm",
        "RunActivity:call_llm",
        "llm.chat_completions",
        "StartActivity:notify_approval",
        "approval.wait",
        "RunActivity:tool.issue_refund",
        "tool.run",
    ):
        assert expected in names, f"{expected} is not in the turn's trace: {sorted(names)}"
    # The model was asked twice (the tool call, then the answer), each a child of its step.
    model_calls = by_name(in_turn, "llm.chat_completions")
    assert len(model_calls) == 2
    for span in model_calls:
        assert parent_names(in_turn, span)[0] == "RunActivity:call_llm"
        assert parent_names(in_turn, span)[-1] == request.name
        assert span.attributes is not None
        assert span.attributes["gen_ai.request.model"] == "scripted"
        assert int(str(span.attributes["gen_ai.usage.input_tokens"])) > 0
    (wait,) = by_name(in_turn, "approval.wait")
    assert wait.attributes is not None
    assert wait.attributes["approval.outcome"] == "approved"
    assert wait.attributes["approval.channel"] == "dashboard"
    assert wait.start_time is not None and wait.end_time is not None
    assert wait.end_time > wait.start_time
    (tool,) = by_name(in_turn, "tool.run")
    assert tool.attributes is not None and tool.attributes["tool.name"] == "issue_refund"
    # The calls are recorded with the turn's trace, which the admin links to.
    trace_ids = {c.trace_id async for c in ModelCall.objects.filter(conversation_id=cid)}
    assert trace_ids == {trace.format_trace_id(turn)}

    # Metrics of the same turn: tokens by model match the recorded calls.
    recorded = [c async for c in ModelCall.objects.filter(conversation_id=cid)]
    points = _points(reader)
    assert points[("agent.model.tokens", "output")] == sum(c.completion_tokens for c in recorded)
    assert points[("agent.tool.calls", "issue_refund")] == 1
    assert points[("agent.approvals.decision_latency", "dashboard")] == 1
    assert points[("agent.approvals.pending", "issue_refund")] == 0
    assert points[("agent.turns", "")] == 1


async def test_each_turn_of_a_conversation_is_the_trace_of_its_own_request(
    traced: tuple[InMemorySpanExporter, InMemoryMetricReader], traced_worker: Client
) -> None:
    """The workflow lives across turns; each turn's activities and model call belong to
    the POST that sent its message, not to the request that started the workflow."""
    exporter, _ = traced
    user = await auser_create()
    web = AsyncClient()
    await web.aforce_login(user)
    session = web.cookies[settings.SESSION_COOKIE_NAME].value
    cid = uuid.uuid4()
    for text in ("hello there", "and hello again"):
        fields = {"conversation_id": str(cid), "message_id": str(uuid.uuid4()), "text": text}
        assert await post("/c/send/", fields, session) == 200
        await turn_done(cid)

    spans = list(exporter.get_finished_spans())
    requests = [s for s in spans if s.name == "POST /c/send/" and s.parent is None]
    assert len(requests) == 2
    first, second = (r.context.trace_id for r in requests)
    assert first != second
    for turn in (first, second):
        in_turn = [s for s in spans if s.context.trace_id == turn]
        # One model call per turn, under its step's activity, under that turn's POST.
        (call,) = by_name(in_turn, "llm.chat_completions")
        assert parent_names(in_turn, call)[0] == "RunActivity:call_llm"
        assert parent_names(in_turn, call)[-1] == "POST /c/send/"
    # Every model call of the conversation is in one of the two turns' traces.
    model_calls = by_name(spans, "llm.chat_completions")
    assert sorted(s.context.trace_id for s in model_calls) == sorted([first, second])
    recorded = [c.trace_id async for c in ModelCall.objects.filter(conversation_id=cid)]
    assert sorted(recorded) == sorted(trace.format_trace_id(t) for t in (first, second))


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, str], float]:
    """Each metric's value (a histogram's count) keyed by its name and main attribute."""
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, str], float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    attributes = dict(point.attributes or {})
                    key = str(
                        attributes.get("gen_ai.token.type")
                        or attributes.get("channel")
                        or attributes.get("tool")
                        or ""
                    )
                    value = getattr(point, "value", None)
                    found[(metric.name, key)] = getattr(point, "count", value)
    return found


async def test_off_installs_no_provider_and_no_interceptor(
    temporal: Client, task_queue: str
) -> None:
    settings_endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    assert settings_endpoint == ""
    assert not config_telemetry.setup()
    assert not telemetry.tracing_on()
    assert "interceptors" not in connect_config()
    assert telemetry.temporal_runtime() is None
    app = get_asgi_application()
    assert config_telemetry.asgi_app(app) is app
    built = build_worker(temporal, task_queue=task_queue)
    assert [type(i).__name__ for i in built.config()["interceptors"]] == [
        "DatabaseConnectionsInterceptor"
    ]


def test_on_the_temporal_sdk_exports_its_own_metrics_to_the_collector(settings: Any) -> None:
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318"
    telemetry._runtime = None
    try:
        runtime = telemetry.temporal_runtime()
        assert runtime is not None
        # Every client (and so every worker built on one) runs on it.
        assert connect_config()["runtime"] is runtime
        assert telemetry.temporal_runtime() is runtime
    finally:
        telemetry._runtime = None

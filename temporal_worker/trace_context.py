"""One trace per turn inside a long-lived conversation workflow.

temporalio's TracingInterceptor runs every handler of a workflow under the context of
the request that *started* it, so every turn of a conversation would land in its first
turn's trace. `UpdateTraceInterceptor` (given to the worker only when tracing is on) runs
each Update handler under the context the Update itself carried (the web request that
sent the message); the workflow keeps that context with the queued message and runs the
turn under it (`turn`). The context lives in workflow memory only: no command, no
payload, nothing to replay differently. With tracing off nothing is captured and `turn`
attaches nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import opentelemetry.context
import opentelemetry.trace
from opentelemetry.propagate import extract
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

# The header temporalio's TracingInterceptor writes its carrier to (its default).
TRACE_HEADER = "_tracer-data"

TurnTrace = opentelemetry.context.Context


def current() -> TurnTrace | None:
    """The context to run a turn under, or None when nothing is traced."""
    if not opentelemetry.trace.get_current_span().get_span_context().is_valid:
        return None
    return opentelemetry.context.get_current()


@contextlib.contextmanager
def turn(context: TurnTrace | None) -> Iterator[None]:
    """Run the block (a turn, in the workflow's main coroutine) under `context`."""
    if context is None:
        yield
        return
    token = opentelemetry.context.attach(context)
    try:
        yield
    finally:
        opentelemetry.context.detach(token)


class _UpdateTrace(WorkflowInboundInterceptor):
    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        header = input.headers.get(TRACE_HEADER)
        if header is None:
            return await super().handle_update_handler(input)
        carrier = PayloadConverter.default.from_payloads([header])[0]
        token = opentelemetry.context.attach(extract(carrier))
        try:
            return await super().handle_update_handler(input)
        finally:
            opentelemetry.context.detach(token)


class UpdateTraceInterceptor(Interceptor):
    """Must come after TracingInterceptor (the worker puts client interceptors first), so
    the Update's own context is the innermost one its handler sees."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _UpdateTrace

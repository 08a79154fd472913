"""Tool activities: one per registered tool, named `tool.<name>`, so the history names each call.

Arguments are validated again here, because a reviewer may have edited them. A
refusal the model should hear about (bad arguments, a `ToolError`) is a failed
`ToolOutcome`, never retried; any other exception fails the attempt and Temporal
retries it, which the write tools' idempotency keys make safe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from temporalio import activity

from chatapp.services import tool_result_record
from temporal_worker.shared import ChatMessage, ToolOutcome, ToolRequest, tool_activity_name
from temporal_worker.tools import shop_tools
from temporal_worker.tools.registry import (
    TOOLS,
    ToolArgumentsError,
    ToolContext,
    ToolDefinition,
    ToolError,
)

# Importing a tool module is what declares its tools.
TOOL_MODULES = [shop_tools]

HEARTBEAT_EVERY_SECONDS = 1.0

ToolActivity = Callable[[ToolRequest], Awaitable[ToolOutcome]]


def _refused(req: ToolRequest, message: str) -> ToolOutcome:
    return ToolOutcome(
        call_id=req.call_id, content=json.dumps({"error": message}, ensure_ascii=False), ok=False
    )


async def tool_run(definition: ToolDefinition, req: ToolRequest) -> ToolOutcome:
    if req.tool != definition.name:
        return _refused(req, f"the {definition.name} activity cannot run {req.tool!r}")
    try:
        args = definition.validate(req.arguments)
    except ToolArgumentsError as err:
        return _refused(req, str(err))
    ctx = ToolContext(
        conversation_id=req.conversation_id,
        workflow_id=req.workflow_id,
        call_id=req.call_id,
        requester_id=req.requester_id,
        attempt=activity.info().attempt,
    )
    heartbeat = asyncio.create_task(_heartbeat_forever())
    try:
        result = await definition.implementation(args, ctx)
    except ToolError as err:
        return _refused(req, str(err))
    finally:
        heartbeat.cancel()
    content = json.dumps(result, default=str, ensure_ascii=False)
    limit = req.result_max_chars
    if limit and len(content) > limit:
        content = await _truncate_and_keep(req, content, limit)
    return ToolOutcome(call_id=req.call_id, content=content)


async def _truncate_and_keep(req: ToolRequest, content: str, limit: int) -> str:
    """Cut a large result for the model (and the history, far below Temporal's 2 MB
    payload limit); the transcript keeps the whole result."""
    shown = (
        f"{content[:limit]}\n[truncated: the result has {len(content):,} characters; "
        f"only the first {limit:,} are shown]"
    )
    if req.message_id:
        await tool_result_record(
            conversation_id=req.conversation_id,
            message=ChatMessage(
                id=req.message_id,
                seq=req.message_seq,
                role="tool",
                content=shown,
                tool_call_id=req.call_id,
                tool_name=req.tool,
            ),
            full_content=content,
        )
    return shown


async def _heartbeat_forever() -> None:
    # Lets Temporal notice a dead worker within the heartbeat timeout.
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)


def _tool_activity(definition: ToolDefinition) -> ToolActivity:
    async def run_tool(req: ToolRequest) -> ToolOutcome:
        return await tool_run(definition, req)

    run_tool.__name__ = run_tool.__qualname__ = f"tool_{definition.name}"
    run_tool.__doc__ = f"Run the {definition.name} tool once; safe to retry."
    return activity.defn(name=tool_activity_name(definition.name))(run_tool)


TOOL_ACTIVITIES: list[ToolActivity] = [_tool_activity(d) for d in TOOLS.values()]

"""The tool activity: every `tool.<name>` call, whatever the tool's source, runs here.

One dynamic activity serves every tool in the registry, so a tool added to the
registry (a module in AGENT_TOOL_MODULES, an MCP server's tool) needs no new worker
registration, and the history still names each call `tool.<name>`.

Arguments are validated again here, because a reviewer may have edited them. A
refusal the model should hear about (bad arguments, a `ToolError`, an unknown tool, an
MCP server's error answer) is a failed `ToolOutcome`, never retried; any other exception
(an MCP server that cannot be reached) fails the attempt and Temporal retries it, which
the write tools' idempotency keys make safe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence

from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from temporal_worker.contracts.events import ToolResultReady, conversation_group
from temporal_worker.contracts.tools import TOOL_ACTIVITY_PREFIX, ToolOutcome, ToolRequest
from temporal_worker.ports import Ports
from temporal_worker.tools.registry import ToolArgumentsError, ToolContext, ToolError, ToolRegistry

HEARTBEAT_EVERY_SECONDS = 1.0


class ToolActivity:
    def __init__(self, ports: Ports, *, tools: Callable[[], Awaitable[ToolRegistry]]) -> None:
        self.ports = ports
        self.tools = tools

    @activity.defn(dynamic=True)
    async def run_tool(self, args: Sequence[RawValue]) -> ToolOutcome:
        """Run one tool call once; safe to retry."""
        name = activity.info().activity_type
        if not name.startswith(TOOL_ACTIVITY_PREFIX) or len(args) != 1:
            raise ApplicationError(f"no activity is named {name!r}", non_retryable=True)
        req = activity.payload_converter().from_payload(args[0].payload, ToolRequest)
        return await self.run(req, tool_name=name.removeprefix(TOOL_ACTIVITY_PREFIX))

    async def run(self, req: ToolRequest, *, tool_name: str) -> ToolOutcome:
        # For the whole activity, not just the tool's run: under load the registry read
        # and the writes around the run wait for the ORM thread, and a heartbeat timeout
        # there would start a second attempt of a call that is not dead.
        heartbeat = asyncio.create_task(_heartbeat_forever())
        try:
            return await self._run(req, tool_name=tool_name)
        finally:
            heartbeat.cancel()

    async def _run(self, req: ToolRequest, *, tool_name: str) -> ToolOutcome:
        outcome = await self._outcome(req, tool_name=tool_name)
        if req.message_id:
            # The row is written when the next step begins; the page need not wait for it.
            await self.ports.live.publish(
                conversation_group(req.conversation_id),
                ToolResultReady(
                    message_id=req.message_id,
                    call_id=req.call_id,
                    tool_name=req.tool,
                    content=outcome.content,
                    ok=outcome.ok,
                ),
            )
        return outcome

    async def _outcome(self, req: ToolRequest, *, tool_name: str) -> ToolOutcome:
        if req.tool != tool_name:
            return _refused(req, f"the {tool_name} activity cannot run {req.tool!r}")
        definition = (await self.tools()).get(tool_name)
        if definition is None:
            return _refused(req, f"the tool {tool_name!r} is no longer available")
        try:
            arguments = definition.validate(req.arguments)
        except ToolArgumentsError as err:
            return _refused(req, str(err))
        ctx = ToolContext(
            conversation_id=req.conversation_id,
            workflow_id=req.workflow_id,
            call_id=req.call_id,
            requester_id=req.requester_id,
            attempt=activity.info().attempt,
        )
        try:
            result = await definition.run(arguments, ctx)
        except ToolError as err:
            return _refused(req, str(err))
        content = json.dumps(result, default=str, ensure_ascii=False)
        limit = req.result_max_chars
        if limit and len(content) > limit:
            content = await self._truncate_and_keep(req, content, limit)
        return ToolOutcome(call_id=req.call_id, content=content)

    async def _truncate_and_keep(self, req: ToolRequest, content: str, limit: int) -> str:
        """Cut a large result for the model (and the history, far below Temporal's 2 MB
        payload limit); the transcript keeps the whole result."""
        if req.message_id:
            await self.ports.transcript.keep_full_tool_result(
                conversation_id=req.conversation_id, message_id=req.message_id, content=content
            )
        return (
            f"{content[:limit]}\n[truncated: the result has {len(content):,} characters; "
            f"only the first {limit:,} are shown]"
        )


def _refused(req: ToolRequest, message: str) -> ToolOutcome:
    return ToolOutcome(
        call_id=req.call_id, content=json.dumps({"error": message}, ensure_ascii=False), ok=False
    )


async def _heartbeat_forever() -> None:
    # Lets Temporal notice a dead worker within the heartbeat timeout.
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

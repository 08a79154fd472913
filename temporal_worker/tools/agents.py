"""The tools one agent is offered: the registry's tools it may use, and a hand-off tool for
each agent it may hand the conversation to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from temporal_worker.contracts.tools import ToolKind, handoff_tool_name
from temporal_worker.ports import AgentProfile, HandoffTarget
from temporal_worker.tools.base import (
    Tool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ValidArguments,
    canonical_json,
)
from temporal_worker.tools.mcp.names import mcp_server_of
from temporal_worker.tools.registry import ToolRegistry

REASON_MAX_CHARS = 500


@dataclass(frozen=True, eq=False)
class HandoffTool(Tool):
    """`handoff_to_<agent>`: the model's way to hand the conversation over. The workflow
    answers it itself (no activity runs): the next step runs as the other agent."""

    name: str
    description: str
    target: HandoffTarget
    kind: ToolKind = "read"

    @classmethod
    def to(cls, target: HandoffTarget) -> HandoffTool:
        return cls(
            name=handoff_tool_name(target.slug),
            description=(
                f"Hand this conversation over to the {target.name} agent: {target.description} "
                "It answers from the next step on, with its own tools."
            ),
            target=target,
        )

    def parameters(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "maxLength": REASON_MAX_CHARS,
                    "description": "Why, in one sentence, for the next agent and the user.",
                }
            },
            "additionalProperties": False,
        }

    def validate(self, raw_arguments: str) -> ValidArguments:
        try:
            value = json.loads(raw_arguments or "{}")
        except ValueError as err:
            raise ToolArgumentsError(f"invalid arguments for {self.name}: not JSON") from err
        reason = value.get("reason", "") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or set(value) - {"reason"}
            or not isinstance(reason, str)
            or len(reason) > REASON_MAX_CHARS
        ):
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: expected at most a 'reason' of up to "
                f"{REASON_MAX_CHARS} characters"
            )
        arguments = {"reason": reason} if reason else {}
        return ValidArguments(value=arguments, canonical=canonical_json(arguments))

    def summarize(self, arguments: ValidArguments) -> str:
        return f"Hand over to {self.target.name}"

    async def run(self, arguments: ValidArguments, ctx: ToolContext) -> Any:
        raise ToolError("a hand-off is made by the conversation, not run as a tool")


def agent_tools(registry: ToolRegistry, profile: AgentProfile) -> ToolRegistry:
    """The tools `profile` may call: those it names, every tool of its MCP servers, and its
    hand-offs. An agent that names none (the built-in fallback) gets every built-in tool."""
    allowed = [tool for tool in registry if _allowed(tool, profile)]
    return ToolRegistry([*allowed, *(HandoffTool.to(target) for target in profile.handoffs)])


def _allowed(tool: Tool, profile: AgentProfile) -> bool:
    if profile.tools is None:
        return not tool.source
    return tool.name in profile.tools or mcp_server_of(tool.name) in profile.mcp_servers

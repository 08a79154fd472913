"""Tool calls: what the model asked for, how it was planned, and one call's run."""

from dataclasses import dataclass
from typing import Literal

from temporal_worker.contracts.approvals import ApprovalRule

# Every tool runs as the activity `tool.<name>`, so the history names each call.
TOOL_ACTIVITY_PREFIX = "tool."
# An MCP server's tool is offered as `<server>__<tool>`: no built-in tool name may contain
# the separator, and server names are unique, so no two sources can offer the same name.
MCP_NAME_SEPARATOR = "__"
# A hand-off is a tool call the workflow answers itself: `handoff_to_<agent>`.
HANDOFF_TOOL_PREFIX = "handoff_to_"
# The workflow applies a hand-off (the next step runs as the new agent); runs from
# before agents existed never saw one.
PATCH_AGENT_HANDOFF = "agent-handoff"

ToolKind = Literal["read", "write"]


def tool_activity_name(tool: str) -> str:
    return f"{TOOL_ACTIVITY_PREFIX}{tool}"


def handoff_tool_name(agent: str) -> str:
    return f"{HANDOFF_TOOL_PREFIX}{agent}"


def handoff_target(tool: str) -> str:
    """The agent a hand-off tool hands to; "" for any other tool."""
    return tool.removeprefix(HANDOFF_TOOL_PREFIX) if tool.startswith(HANDOFF_TOOL_PREFIX) else ""


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text exactly as the model produced it


@dataclass
class PlannedCall:
    """A tool call as the model asked for it, validated and classified by the LLM activity."""

    call: ToolCall
    kind: ToolKind = "read"
    # Canonical JSON of the validated arguments ("" when invalid).
    arguments: str = ""
    # Why the call cannot run (unknown tool, malformed arguments): the model is told.
    error: str = ""
    approval: ApprovalRule | None = None
    summary: str = ""
    # A hand-off: the agent (and its name) that answers from the next step on.
    handoff: str = ""
    handoff_name: str = ""
    # Where the tool comes from ("" for a built-in tool), what it says it does (both shown to
    # reviewers), and whether its server may safely see a call twice.
    source: str = ""
    description: str = ""
    idempotent: bool = True
    # The call's activity options; 0 keeps the workflow's defaults for built-in tools.
    start_to_close_seconds: int = 0
    max_attempts: int = 0


@dataclass
class ToolRequest:
    conversation_id: str
    workflow_id: str
    call_id: str
    tool: str
    arguments: str
    requester_id: int
    # The tool message this result becomes: a result longer than `result_max_chars`
    # reaches the model truncated, and the activity keeps the whole of it.
    message_id: str = ""
    message_seq: int = 0
    result_max_chars: int = 0


@dataclass
class ToolOutcome:
    call_id: str
    # JSON text handed to the model as the tool message.
    content: str
    ok: bool = True

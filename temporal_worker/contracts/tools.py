"""Tool calls: what the model asked for, how it was planned, and one call's run."""

from dataclasses import dataclass
from typing import Literal

from temporal_worker.contracts.approvals import ApprovalRule

# Every tool runs as the activity `tool.<name>`, so the history names each call.
TOOL_ACTIVITY_PREFIX = "tool."

ToolKind = Literal["read", "write"]


def tool_activity_name(tool: str) -> str:
    return f"{TOOL_ACTIVITY_PREFIX}{tool}"


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

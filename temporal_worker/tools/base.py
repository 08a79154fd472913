"""What every tool is, whatever its source: the `Tool` interface, the context a call runs
with, and the two errors a tool's caller tells apart."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from temporal_worker.contracts.tools import ToolKind


class ToolError(Exception):
    """A failure the model should hear about (order not found, refund too large...).

    Not retried: the tool answers with the error as its result.
    """


class ToolArgumentsError(ValueError):
    pass


@dataclass(frozen=True)
class ToolContext:
    conversation_id: str
    workflow_id: str
    call_id: str
    requester_id: int
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        # Unique per write: an activity retried after its write took effect finds it.
        return f"{self.workflow_id}:{self.call_id}"


@dataclass(frozen=True)
class ValidArguments:
    """Arguments that passed the tool's schema: the parsed value and its canonical JSON."""

    value: Any
    canonical: str


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Tool(ABC):
    name: str
    description: str
    kind: ToolKind
    # The argument an approval policy's threshold compares against (refunds: "amount").
    threshold_argument: str | None = None

    @property
    def source(self) -> str:
        """Where the tool comes from, for reviewers ("" for a built-in tool)."""
        return ""

    @property
    def idempotent(self) -> bool:
        """Whether a call may safely reach the tool twice (built-in writes carry the key)."""
        return True

    @property
    def start_to_close_seconds(self) -> int:
        """The call's activity timeout (0: the workflow's default for tools)."""
        return 0

    @property
    def max_attempts(self) -> int:
        """Attempts in all for a call that fails (0: the workflow's default for tools)."""
        return 0

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as the model is shown it."""

    @abstractmethod
    def validate(self, raw_arguments: str) -> ValidArguments:
        """Parse and check JSON arguments; raises ToolArgumentsError with what is wrong."""

    @abstractmethod
    def summarize(self, arguments: ValidArguments) -> str:
        """One line for reviewers and the chat ("Refund 30.00 EUR on order #1009")."""

    @abstractmethod
    async def run(self, arguments: ValidArguments, ctx: ToolContext) -> Any:
        """Do it; a ToolError is the answer the model hears, anything else is retried."""

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            },
        }

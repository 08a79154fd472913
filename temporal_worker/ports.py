"""What the worker's activities need from the rest of the product, as interfaces.

Activities live in temporal_worker and never import an app: the worker assembly
(temporal_worker.worker) hands them an implementation of each port. The chat app
keeps the transcript and the prompts, the reviews app the policies and the audit,
and the channel layer carries live events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from temporal_worker.contracts.approvals import ApprovalEvent, ApprovalRule
from temporal_worker.contracts.conversation import ChatMessage
from temporal_worker.contracts.events import LiveEvent
from temporal_worker.contracts.tools import ToolKind


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    text: str

    @property
    def version_id(self) -> str:
        return f"{self.name}@v{self.version}"


class Transcript(Protocol):
    """The conversation's mirror in the database. Its one writer is the worker."""

    async def step_begin(
        self, *, conversation_id: str, messages: Sequence[ChatMessage], run_id: str, prompt: str
    ) -> Prompt:
        """Record the messages a step starts with and read the active prompt, in one trip
        to the database: a new prompt version applies from the next call."""
        ...

    async def record(
        self, *, conversation_id: str, messages: Sequence[ChatMessage], run_id: str
    ) -> None:
        """Upsert messages by id (idempotent: activities run at least once)."""
        ...

    async def keep_full_tool_result(
        self, *, conversation_id: str, message_id: str, content: str
    ) -> None:
        """Keep a tool's whole result when the model (and the history) sees it truncated."""
        ...


class ApprovalPolicies(Protocol):
    async def rule_for(
        self, *, tool: str, kind: ToolKind, threshold_argument: str | None, arguments: Any
    ) -> ApprovalRule | None:
        """The rule for this call, or None when it runs without asking."""
        ...


class ApprovalAudit(Protocol):
    async def record(self, event: ApprovalEvent) -> int:
        """Mirror one approval event into the audit table (idempotent); the row's id."""
        ...


class LivePublisher(Protocol):
    async def publish(self, group: str, event: LiveEvent) -> None:
        """Push `event` to every socket in `group`; never fails the caller."""
        ...


@dataclass(frozen=True)
class Ports:
    transcript: Transcript
    policies: ApprovalPolicies
    audit: ApprovalAudit
    live: LivePublisher

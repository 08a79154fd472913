"""What the worker's activities need from the rest of the product, as interfaces.

Activities live in temporal_worker and never import an app: the worker assembly
(temporal_worker.worker) hands them an implementation of each port. The chat app
keeps the transcript and the prompts, the reviews app the policies and the audit,
and the channel layer carries live events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

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


@dataclass(frozen=True)
class LlmChoice:
    """The endpoint, key and model an agent's steps use (the key resolved from its secret's
    name; it never crosses Temporal). Empty fields keep the default endpoint's values."""

    base_url: str = ""
    api_key: str = ""
    model: str = ""
    # Why the agent cannot call its model (a secret that is not set): the turn fails with it.
    problem: str = ""


PolicyMode = Literal["never", "always", "above"]


@dataclass(frozen=True)
class PolicyOverride:
    """An agent's own approval policy for one tool: it wins over the policy table's row."""

    mode: PolicyMode
    deadline_seconds: int
    timeout_action: str
    remind_at_share: Decimal
    threshold: Decimal | None = None


@dataclass(frozen=True)
class HandoffTarget:
    slug: str
    name: str
    description: str


@dataclass(frozen=True)
class AgentProfile:
    """A conversation's agent as it is now: read inside the LLM activity on every step, so a
    change in the admin applies from the next model call and never touches a replay."""

    slug: str
    name: str
    prompt: Prompt
    # None: every built-in tool (the one agent there was before agents could be defined).
    tools: frozenset[str] | None = None
    # Every tool these MCP servers list is offered too (by server name).
    mcp_servers: frozenset[str] = frozenset()
    policy_overrides: Mapping[str, PolicyOverride] = field(default_factory=dict)
    handoffs: tuple[HandoffTarget, ...] = ()
    llm: LlmChoice = field(default_factory=LlmChoice)
    # Model calls per turn (0: the conversation's configured limit).
    max_steps_per_turn: int = 0


@dataclass(frozen=True)
class McpServerSpec:
    """An MCP server as the admin registered it, with the tools it listed last (kept while
    it is down). Secrets are names (settings.AGENT_SECRETS), resolved when connecting."""

    name: str
    title: str
    transport: Literal["stdio", "http"]
    command: str = ""
    args: tuple[str, ...] = ()
    # Environment variable (stdio) or header (http) -> the name of a secret.
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    # The server honours the idempotency key in `_meta` (or its calls are safe to repeat).
    idempotent: bool = False
    call_timeout_seconds: int = 30
    # tools/list entries as the server sent them (JSON objects).
    tools: tuple[Mapping[str, Any], ...] = ()
    # Changes whenever the row or its tools do: the registry rebuilds its tools then.
    version: str = ""

    @property
    def connection_key(self) -> tuple[Any, ...]:
        """What a session depends on: another value needs a new connection."""
        return (
            self.transport,
            self.command,
            self.args,
            tuple(sorted(self.env.items())),
            self.url,
            tuple(sorted(self.headers.items())),
        )


class McpCatalogStore(Protocol):
    """Where the admin's MCP servers and their listed tools are kept (the worker's refresher
    lists each server when it is due and records what it got)."""

    async def claim_due(self) -> list[McpServerSpec]:
        """Enabled servers whose list is due (scheduled, or asked for in the admin), each
        claimed so that another worker process does not list it at the same time."""
        ...

    async def record_listing(
        self,
        *,
        server: str,
        tools: Sequence[Mapping[str, Any]] | None,
        error: str = "",
        notes: str = "",
    ) -> None:
        """Keep a server's new list and what was left out of it (`notes`); None: listing
        failed with `error`, and the last good list stays."""
        ...


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

    async def step_begin_for_agent(
        self, *, conversation_id: str, messages: Sequence[ChatMessage], run_id: str, agent: str
    ) -> AgentProfile:
        """Record the messages a step starts with and read the agent it runs as (its prompt's
        active version, model, tools, policies, hand-offs), in one trip to the database.
        `agent` "" is the agent the conversation was started with."""
        ...


class ApprovalPolicies(Protocol):
    async def rule_for(
        self,
        *,
        tool: str,
        kind: ToolKind,
        threshold_argument: str | None,
        arguments: Any,
        override: PolicyOverride | None = None,
    ) -> ApprovalRule | None:
        """The rule for this call, or None when it runs without asking. An agent's
        `override` wins over the policy table."""
        ...


class ApprovalAudit(Protocol):
    async def record(self, event: ApprovalEvent) -> int:
        """Mirror one approval event into the audit table (idempotent); the row's id."""
        ...


@dataclass
class Deliveries:
    """What one approval event's deliveries came to: who was told where ("email:rita",
    "slack:#approvals"), and those that failed this attempt (sent ones are never resent)."""

    asked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class ApprovalChannels(Protocol):
    async def deliver(self, event: ApprovalEvent) -> Deliveries:
        """Reach reviewers where they are (email, Slack): ask on "requested", remind (and
        escalate) on "reminder", show the outcome on "decided". Idempotent per approval,
        recipient, kind and channel, so a retried activity never mails or posts twice."""
        ...


class NoApprovalChannels:
    """Reviewers see approvals on the dashboard only."""

    async def deliver(self, event: ApprovalEvent) -> Deliveries:
        return Deliveries()


@dataclass(frozen=True)
class ModelCallUsage:
    """One model call (one activity attempt) and what the provider reported it used.

    Tokens are the provider's own count (its usage report); a call that failed before
    the report arrived records zeros (`reported` False) but is still recorded."""

    conversation_id: str
    reply_id: str
    attempt: int
    agent: str
    # The model asked for (prices are set per this name) and the one the provider named.
    model: str
    started_at: datetime
    duration_ms: int
    # "complete", "stopped" (the user pressed Stop) or "failed".
    outcome: str
    reported: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reported_model: str = ""
    error: str = ""
    # The turn's trace (32 hex digits) when tracing is on.
    trace_id: str = ""


BudgetScope = Literal["user_day", "agent_month"]


@dataclass(frozen=True)
class BudgetRefusal:
    """Why a model call may not be made: whose limit, how much was spent of how much."""

    scope: BudgetScope
    limit: Decimal
    spent: Decimal


class UsageLedger(Protocol):
    """Where model calls and their usage are kept, and budgets checked against them."""

    async def record_call(self, call: ModelCallUsage) -> None:
        """Keep one call (idempotent per reply and attempt)."""
        ...

    async def check_budget(self, *, conversation_id: str, agent: str) -> BudgetRefusal | None:
        """None while the conversation's user and agent are within their budgets; otherwise
        the limit that is reached (and the hit is recorded for the admins)."""
        ...


class NoUsageLedger:
    """Usage is not kept and nothing is limited (tests that do not look at usage)."""

    async def record_call(self, call: ModelCallUsage) -> None:
        return None

    async def check_budget(self, *, conversation_id: str, agent: str) -> BudgetRefusal | None:
        return None


class LivePublisher(Protocol):
    async def publish(self, group: str, event: LiveEvent) -> None:
        """Push `event` to every socket in `group`; never fails the caller."""
        ...


class ConversationRetention(Protocol):
    async def expired_delete(self, *, older_than: datetime, batch: int) -> tuple[int, int]:
        """Delete (as their owners would) up to `batch` conversations last active before
        `older_than`; (deleted, failed). Idempotent: a retry deletes what is left."""
        ...


class NoConversationRetention:
    async def expired_delete(self, *, older_than: datetime, batch: int) -> tuple[int, int]:
        return 0, 0


@dataclass(frozen=True)
class Ports:
    transcript: Transcript
    policies: ApprovalPolicies
    audit: ApprovalAudit
    live: LivePublisher
    channels: ApprovalChannels = field(default_factory=NoApprovalChannels)
    usage: UsageLedger = field(default_factory=NoUsageLedger)
    retention: ConversationRetention = field(default_factory=NoConversationRetention)

"""Types and names shared by workflows, activities and the Django client.

Nothing here imports Django or does I/O: the workflow sandbox loads this module.
Every workflow, activity, update and query takes one dataclass and returns one.

No `from __future__ import annotations`: with real annotation objects, Temporal's
converter does not compile every field's type from a string on each conversion.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Literal

WORKFLOW_ID_PREFIX = "conversation-"
DEFAULT_TASK_QUEUE = "agent-chat"

# Activity names: the workflow refers to activities by name so that it never
# imports the activity modules (which import Django and the openai client).
LLM_ACTIVITY = "call_llm"
RECORD_NOTICE_ACTIVITY = "record_notice"

# ApplicationError types raised by the LLM activity.
CONTENT_POLICY_ERROR = "ContentPolicyError"
LLM_REQUEST_ERROR = "LlmRequestError"
RATE_LIMIT_ERROR = "RateLimitError"

Role = Literal["user", "assistant", "tool", "notice"]
MessageStatus = Literal["complete", "stopped", "error"]
ConversationStatus = Literal["idle", "thinking", "waiting_approval", "running_tools", "closed"]


def conversation_workflow_id(conversation_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{conversation_id}"


def arguments_hash(arguments: str) -> str:
    """Names the exact arguments a reviewer saw (canonical JSON in, short hex out)."""
    return hashlib.sha256(arguments.encode()).hexdigest()[:16]


def conversation_id_from_workflow_id(workflow_id: str) -> str:
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text exactly as the model produced it


@dataclass
class ChatMessage:
    """One entry of the transcript, as the workflow and the database both hold it."""

    id: str
    seq: int
    role: Role
    content: str = ""
    status: MessageStatus = "complete"
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    tool_name: str = ""
    prompt_version: str = ""
    # Set on notices: what went wrong ("content_policy", "llm_unavailable", ...).
    error_kind: str = ""
    # False for a user message the model refused: later calls leave it out.
    in_context: bool = True


@dataclass
class AgentConfig:
    max_message_chars: int = 8000
    max_steps_per_turn: int = 12
    # Belt and braces beside is_continue_as_new_suggested(): agent steps per run.
    steps_per_run: int = 200
    # The model sees at most this much of the conversation (the transcript keeps all).
    context_max_messages: int = 60
    context_max_tokens: int = 24_000
    # Longer tool results reach the model (and the history) truncated, with a note.
    tool_result_max_chars: int = 16_000
    # Mark pending approvals with custom search attributes (the dashboard lists them).
    # Off only where a server cannot register them (the time-skipping test server).
    approval_search_attributes: bool = True


@dataclass
class AgentState:
    """Everything a run hands to the next one on continue-as-new."""

    context: list[ChatMessage] = field(default_factory=list)
    inbox: list[ChatMessage] = field(default_factory=list)
    next_seq: int = 1
    # Message ids already accepted, so a retried send is answered, not re-queued,
    # even after continue-as-new (Temporal dedupes update ids within one run).
    seen_message_ids: list[str] = field(default_factory=list)
    closed: bool = False
    retry_requested: bool = False
    total_steps: int = 0
    runs: int = 1
    # A long turn can span runs: the next run resumes it instead of waiting.
    turn_in_progress: bool = False
    turn_steps: int = 0
    # Messages not yet mirrored to the database (the next activity does it).
    unrecorded: list[ChatMessage] = field(default_factory=list)


@dataclass
class ConversationInput:
    conversation_id: str
    owner_id: int
    config: AgentConfig = field(default_factory=AgentConfig)
    state: AgentState | None = None


@dataclass
class ConversationResult:
    conversation_id: str
    messages: int
    total_steps: int


# --- updates and queries -------------------------------------------------


@dataclass
class SendMessage:
    message_id: str
    text: str


@dataclass
class MessageAccepted:
    message_id: str
    seq: int
    # How many messages wait before this one is answered (0: answered next).
    queue_position: int
    duplicate: bool = False


@dataclass
class StopAnswer:
    pass


@dataclass
class StopResult:
    reply_id: str


@dataclass
class RetryTurn:
    notice_id: str


@dataclass
class RetryAccepted:
    notice_id: str


@dataclass
class CloseConversation:
    pass


@dataclass
class ConversationClosed:
    pending_messages: int


@dataclass
class ConversationSnapshot:
    status: ConversationStatus
    reply_id: str
    queued: int
    closed: bool
    total_steps: int
    run_steps: int
    runs: int


# --- activities ------------------------------------------------------------


@dataclass
class LlmRequest:
    conversation_id: str
    reply_id: str
    reply_seq: int
    context: list[ChatMessage]
    # Messages the workflow added since the last call: the activity mirrors them
    # into the database (idempotently) together with the reply.
    new_messages: list[ChatMessage] = field(default_factory=list)
    run_id: str = ""


@dataclass
class LlmResult:
    reply_id: str
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_version: str = ""
    model: str = ""
    finish_reason: str = ""
    stopped: bool = False
    # tool_calls validated and classified, in the same order.
    planned_calls: list["PlannedCall"] = field(default_factory=list)


@dataclass
class NoticeRequest:
    conversation_id: str
    notice: ChatMessage
    new_messages: list[ChatMessage] = field(default_factory=list)
    run_id: str = ""


@dataclass
class NoticeRecorded:
    notice_id: str


# --- tools and approvals ------------------------------------------------------

TOOL_ACTIVITY_PREFIX = "tool."
NOTIFY_APPROVAL_ACTIVITY = "notify_approval"

ToolKind = Literal["read", "write"]
DecisionAction = Literal["approve", "reject"]
# How an approval ended; "withdrawn" by the user, "expired" when the policy's
# default action applied at the deadline (decided by the system).
ApprovalOutcome = Literal["approved", "rejected", "withdrawn"]

# Custom search attributes the dashboard lists pending approvals with. The dev
# server registers them at start (see chatapp/stack.py); a cluster needs them too.
SA_APPROVAL_PENDING = "ApprovalPending"  # Bool
SA_APPROVAL_TOOLS = "ApprovalTools"  # KeywordList
SA_APPROVAL_REQUESTER = "ApprovalRequester"  # Keyword
SEARCH_ATTRIBUTES = {
    SA_APPROVAL_PENDING: "Bool",
    SA_APPROVAL_TOOLS: "KeywordList",
    SA_APPROVAL_REQUESTER: "Keyword",
}
# The pending approvals themselves ride in the workflow's memo, which visibility
# returns with each listed workflow: the dashboard lists without a Query per workflow.
MEMO_PENDING_APPROVALS = "pendingApprovals"
# `workflow.patched` id of that change: histories from before it replay without the memo.
PATCH_APPROVALS_MEMO = "approvals-memo"


def tool_activity_name(tool: str) -> str:
    return f"{TOOL_ACTIVITY_PREFIX}{tool}"


@dataclass
class ApprovalRule:
    """The policy that applied to one call, resolved when the model asked for it."""

    deadline_seconds: int = 24 * 3600
    timeout_action: DecisionAction = "reject"
    # Remind reviewers once this many seconds have passed (0: never).
    remind_after_seconds: int = 0
    description: str = ""


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
class PendingApproval:
    call_id: str
    conversation_id: str
    requester_id: int
    tool: str
    arguments: str
    arguments_hash: str
    summary: str
    # The model's own words for why it wants the action.
    reason: str
    requested_at: str  # ISO 8601, from workflow.now()
    deadline: str
    timeout_action: DecisionAction
    claimed_by_id: int = 0
    claimed_by: str = ""
    reminded: bool = False


@dataclass
class DecideApproval:
    call_id: str
    action: DecisionAction
    reviewer_id: int
    reviewer: str
    # Hash of the arguments the reviewer saw: a decision on changed arguments is refused.
    arguments_hash: str
    reason: str = ""
    # Canonical JSON of arguments the reviewer edited (validated by the caller).
    edited_arguments: str = ""


@dataclass
class ApprovalDecided:
    call_id: str
    outcome: ApprovalOutcome
    decided_by: str  # reviewer's name, "system" at the deadline, or the requester
    decided_by_id: int
    decided_at: str
    reason: str = ""
    arguments: str = ""
    edited: bool = False
    by_system: bool = False


@dataclass
class ClaimApproval:
    call_id: str
    reviewer_id: int
    reviewer: str


@dataclass
class ApprovalClaimed:
    call_id: str
    claimed_by: str


@dataclass
class WithdrawApproval:
    call_id: str


@dataclass
class PendingApprovals:
    conversation_id: str
    items: list[PendingApproval] = field(default_factory=list)


@dataclass
class ApprovalEvent:
    """Sent to the notify activity: mirrors the approval and pushes it to reviewers and user."""

    kind: Literal["requested", "claimed", "reminder", "decided"]
    approval: PendingApproval
    decision: ApprovalDecided | None = None


@dataclass
class ApprovalEventRecorded:
    call_id: str


@dataclass
class ToolRequest:
    conversation_id: str
    workflow_id: str
    call_id: str
    tool: str
    arguments: str
    requester_id: int
    # The tool message this result becomes: a result longer than `result_max_chars`
    # reaches the model truncated, and the activity stores the whole of it here.
    message_id: str = ""
    message_seq: int = 0
    result_max_chars: int = 0


@dataclass
class ToolOutcome:
    call_id: str
    # JSON text handed to the model as the tool message.
    content: str
    ok: bool = True

"""A conversation's workflow: its input and state, the messages it holds, its updates,
queries and the LLM and notice activities' requests and results."""

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from temporal_worker.contracts.tools import PlannedCall, ToolCall

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
# A user's daily or an agent's monthly spending limit is reached: the turn ends with a
# notice saying which, and nothing is retried (the activity raises them non-retryable).
USER_BUDGET_ERROR = "UserBudgetExceeded"
AGENT_BUDGET_ERROR = "AgentBudgetExceeded"

# A queued message is numbered when its turn starts, so it follows the turn before it.
PATCH_SEQ_AT_TURN_START = "seq-at-turn-start"
# Regenerate the last answer and edit-and-resend the last message (Workflow Updates).
PATCH_ANSWER_VERSIONS = "answer-versions"
# A conversation idle for AgentConfig.idle_close_seconds completes, carrying its state
# (the retention of its history then starts); the next message starts a run with it.
PATCH_IDLE_CLOSE = "idle-close"

Role = Literal["user", "assistant", "tool", "notice"]
MessageStatus = Literal["complete", "stopped", "error"]
ConversationStatus = Literal["idle", "thinking", "waiting_approval", "running_tools", "closed"]


def conversation_workflow_id(conversation_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{conversation_id}"


def conversation_id_from_workflow_id(workflow_id: str) -> str:
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


def text_fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    # Set on replies: why the model stopped ("stop", "tool_calls", or "length" and
    # "content_filter" for a reply cut short). Empty in payloads from before it existed.
    finish_reason: str = ""
    # Set on replies: the agent that wrote it (its slug; "" before agents existed).
    agent: str = ""


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
    # Idle this long (no message, no turn), the run completes carrying its state; the
    # next message starts a new run with it. 0: never (and runs from before it).
    idle_close_seconds: int = 0


@dataclass
class AgentState:
    """Everything a run hands to the next one on continue-as-new."""

    context: list[ChatMessage] = field(default_factory=list)
    inbox: list[ChatMessage] = field(default_factory=list)
    next_seq: int = 1
    # Message ids already accepted, so a retried send is answered, not re-queued,
    # even after continue-as-new (Temporal dedupes update ids within one run).
    seen_message_ids: list[str] = field(default_factory=list)
    # The text each of those ids was sent with (text_fingerprint), so the same id with
    # another text is refused rather than silently answered as a repeat.
    seen_text: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    retry_requested: bool = False
    total_steps: int = 0
    runs: int = 1
    # A long turn can span runs: the next run resumes it instead of waiting.
    turn_in_progress: bool = False
    turn_steps: int = 0
    # Messages not yet mirrored to the database (the next activity does it).
    unrecorded: list[ChatMessage] = field(default_factory=list)
    # The agent answering (its slug): "" until the first step says which one the
    # conversation started with; a hand-off changes it.
    agent: str = ""
    # That agent's model calls per turn, as its last step read it (0: config's limit).
    agent_max_steps: int = 0


@dataclass
class ConversationInput:
    conversation_id: str
    owner_id: int
    config: AgentConfig = field(default_factory=AgentConfig)
    state: AgentState | None = None
    # The owner's username: operators search ApprovalRequester = 'alice' in the
    # Temporal UI and CLI (conversations started before it was passed show the id).
    owner_name: str = ""


@dataclass
class ConversationResult:
    conversation_id: str
    messages: int
    total_steps: int
    # Completed for being idle (not archived): the next message's run starts from `state`.
    idle_closed: bool = False
    state: AgentState | None = None


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
    # text_fingerprint of the text accepted under this id. Temporal answers a repeated
    # update id with the first result, so a sender can tell a repeat from a clash.
    text_fingerprint: str = ""


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


# Notices that mark a new version of the last exchange (rendered as a divider, never
# sent to the model): the messages since the last user message ("regenerated"), or
# since and including it ("edited"), are an earlier version kept for browsing.
VERSION_NOTICE_KINDS = ("regenerated", "edited")


@dataclass
class RegenerateAnswer:
    """Answer the last message again; the earlier answer stays in the transcript."""

    request_id: str
    # The reply the user saw as the last one (a stale page is refused).
    reply_id: str


@dataclass
class EditMessage:
    """Replace the last user message with `text` and answer it anew."""

    # The new message's id: also the update id (applied once).
    message_id: str
    replaces_id: str
    text: str


@dataclass
class VersionAccepted:
    # The divider notice between the earlier version and the new one.
    notice_id: str
    message_id: str = ""
    seq: int = 0


@dataclass
class CloseConversation:
    pass


@dataclass
class ConversationClosed:
    pending_messages: int


@dataclass
class UnrecordedMessage:
    """A user message the workflow accepted that the database may not hold yet: queued
    behind the turn in progress, or taken by a step that is about to record it."""

    id: str
    text: str
    seq: int
    queued: bool
    # A version divider (VERSION_NOTICE_KINDS) not yet recorded: the page folds the
    # earlier version at once. "" for a user message.
    notice_kind: str = ""


@dataclass
class ConversationSnapshot:
    status: ConversationStatus
    reply_id: str
    queued: int
    closed: bool
    total_steps: int
    run_steps: int
    runs: int
    # Accepted user messages the database may not hold yet (pages show them at once).
    unrecorded: list[UnrecordedMessage] = field(default_factory=list)


# --- activities ------------------------------------------------------------


@dataclass
class LlmRequest:
    conversation_id: str
    reply_id: str
    reply_seq: int
    context: list[ChatMessage]
    # Messages the workflow added since the last call: the activity mirrors them
    # into the database (idempotently) before it calls the model.
    new_messages: list[ChatMessage] = field(default_factory=list)
    run_id: str = ""
    # User messages among them that waited behind a turn: pages show them as queued
    # until this step announces them.
    waited_message_ids: list[str] = field(default_factory=list)
    # The agent to answer as ("": the one the conversation was started with). Read by the
    # activity on every call, so an admin's change applies from the next call.
    agent: str = ""


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
    planned_calls: list[PlannedCall] = field(default_factory=list)
    # The agent that answered, and its model calls per turn (0: config's limit).
    agent: str = ""
    max_steps_per_turn: int = 0


@dataclass
class NoticeRequest:
    conversation_id: str
    notice: ChatMessage
    new_messages: list[ChatMessage] = field(default_factory=list)
    run_id: str = ""


@dataclass
class NoticeRecorded:
    notice_id: str

"""Live events: what the worker (and the web) push to open pages over the channel layer.

One small definition per event. Its `type` is the Channels message type, so a
consumer handles it in the method of the same name (`chat.phase` -> `chat_phase`).
`audiences` names the groups it is sent to, and so the consumers that must handle it;
`reliable` events are tried again when the layer does not take them (a page cannot
infer them from later ones), the others are best effort (snapshots heal a lost delta).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

Audience = Literal["conversation", "reviewers"]

REVIEWERS_GROUP = "reviewers"


def conversation_group(conversation_id: str) -> str:
    return f"conversation.{conversation_id}"


@dataclass(frozen=True)
class LiveEvent:
    type: ClassVar[str]
    audiences: ClassVar[tuple[Audience, ...]]
    reliable: ClassVar[bool] = False

    def to_message(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Self:
        return cls(**{f.name: message[f.name] for f in dataclasses.fields(cls)})


# --- a reply as it streams (conversation page) ------------------------------------


@dataclass(frozen=True)
class ReplyPhase(LiveEvent):
    """What the agent is doing ("Thinking…", "rate limited, retrying in 3 s"); it
    creates the live reply on the page, so it precedes every delta."""

    type = "chat.phase"
    audiences = ("conversation",)

    reply_id: str
    phase: str
    label: str


@dataclass(frozen=True)
class ReplyDelta(LiveEvent):
    type = "chat.delta"
    audiences = ("conversation",)

    reply_id: str
    offset: int
    delta: str


@dataclass(frozen=True)
class ReplySnapshot(LiveEvent):
    """The whole reply so far: a page that missed deltas converges without a reload."""

    type = "chat.snapshot"
    audiences = ("conversation",)

    reply_id: str
    text: str


@dataclass(frozen=True)
class MessageRecorded(LiveEvent):
    """A message is in the database: the page renders it from there."""

    type = "chat.message"
    audiences = ("conversation",)
    reliable = True

    message_id: str
    reply_id: str
    # False while the agent goes on (it asked for tools).
    final: bool


@dataclass(frozen=True)
class ToolResultReady(LiveEvent):
    """A tool call finished: the page shows its result at once. The row follows when
    the next step begins (one writer, the transcript), with the same id and text."""

    type = "chat.tool_result"
    audiences = ("conversation",)
    reliable = True

    message_id: str
    call_id: str
    tool_name: str
    # What the model reads (cut to the tool result limit); the page's reload shows
    # the whole result kept by the transcript.
    content: str
    ok: bool


# --- approvals (conversation page and reviewers' inbox) ---------------------------


@dataclass(frozen=True)
class ApprovalRequestedEvent(LiveEvent):
    type = "approval.requested"
    audiences = ("conversation", "reviewers")
    reliable = True

    conversation_id: str
    call_id: str
    approval_id: int


@dataclass(frozen=True)
class ApprovalClaimedEvent(LiveEvent):
    type = "approval.claimed"
    audiences = ("conversation", "reviewers")
    reliable = True

    conversation_id: str
    call_id: str
    approval_id: int
    claimed_by: str


@dataclass(frozen=True)
class ApprovalRemindedEvent(LiveEvent):
    type = "approval.reminded"
    audiences = ("conversation", "reviewers")
    reliable = True

    conversation_id: str
    call_id: str
    approval_id: int


@dataclass(frozen=True)
class ApprovalDecidedEvent(LiveEvent):
    type = "approval.decided"
    audiences = ("conversation", "reviewers")
    reliable = True

    conversation_id: str
    call_id: str
    approval_id: int
    outcome: str


EVENTS: tuple[type[LiveEvent], ...] = (
    ReplyPhase,
    ReplyDelta,
    ReplySnapshot,
    MessageRecorded,
    ToolResultReady,
    ApprovalRequestedEvent,
    ApprovalClaimedEvent,
    ApprovalRemindedEvent,
    ApprovalDecidedEvent,
)


def handler_name(event: type[LiveEvent]) -> str:
    """The consumer method Channels dispatches the event to."""
    return event.type.replace(".", "_")

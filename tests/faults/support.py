"""Helpers shared by the fault tests: users, messages, rows, live state, history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from chatapp import services
from chatapp.models import Message
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import LLM_ACTIVITY
from tests.factories import user_create
from tests.helpers import eventually, of_type

T = TypeVar("T")

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
FAILED = EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
TIMED_OUT = EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT


def unique(label: str) -> str:
    """Text no other test sends, so a scripted-model rule matches this test only."""
    return f"{label} #{uuid.uuid4().hex[:8]}"


async def new_user() -> Any:
    return await sync_to_async(user_create)()


async def send(user: Any, cid: uuid.UUID, text: str) -> services.SentMessage:
    return await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text=text
    )


async def rows(cid: uuid.UUID, **filters: Any) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation_id=cid, **filters).order_by("seq")]


async def live_state(cid: uuid.UUID) -> temporal_client.LiveState | None:
    return await temporal_client.conversation_live_state(conversation_id=str(cid))


async def turn_done(cid: uuid.UUID, replies: int) -> list[Message] | None:
    """The final replies (no tool calls) once there are `replies` of them and the agent
    is idle with nothing queued; else None."""
    final = [m for m in await rows(cid, role="assistant") if not m.tool_calls]
    if len(final) < replies:
        return None
    state = await live_state(cid)
    if state is None or state.status != "idle" or state.queued:
        return None
    return final


async def wait_turn_done(cid: uuid.UUID, replies: int, timeout: float = 60) -> list[Message]:
    return await eventually(lambda: turn_done(cid, replies), timeout=timeout, interval=0.1)


# Where each later event of an activity names the event that scheduled it.
_SCHEDULED_BY = {
    STARTED: "activity_task_started_event_attributes",
    COMPLETED: "activity_task_completed_event_attributes",
    FAILED: "activity_task_failed_event_attributes",
    TIMED_OUT: "activity_task_timed_out_event_attributes",
}


def activity_events(events: list[HistoryEvent], name: str) -> dict[int, list[HistoryEvent]]:
    """Scheduled, started, completed, failed and timed-out events of activity `name`."""
    scheduled = [
        e
        for e in of_type(events, SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_type.name == name
    ]
    scheduled_ids = {e.event_id for e in scheduled}
    found: dict[int, list[HistoryEvent]] = {SCHEDULED: scheduled}
    for kind, attributes in _SCHEDULED_BY.items():
        found[kind] = [
            e
            for e in of_type(events, kind)
            if getattr(e, attributes).scheduled_event_id in scheduled_ids
        ]
    return found


def llm_attempts(events: list[HistoryEvent]) -> list[int]:
    """The attempt that finished each call_llm (1 = it never had to be retried)."""
    return [
        e.activity_task_started_event_attributes.attempt
        for e in activity_events(events, LLM_ACTIVITY)[STARTED]
    ]


class GroupListener:
    """A member of a channel-layer group that keeps every event it receives."""

    def __init__(self, layer: Any, group: str) -> None:
        self.layer = layer
        self.group = group
        self.channel = ""
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> GroupListener:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self._task = asyncio.create_task(self._listen())
        return self

    async def _listen(self) -> None:
        while True:
            self.events.append(await self.layer.receive(self.channel))

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except BaseException:  # cancelled, or the layer was broken
            pass
        try:
            await asyncio.wait_for(self.layer.group_discard(self.group, self.channel), 2)
        except Exception:  # best effort, the layer may be gone
            pass

    def of(self, reply_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """The reply's events, of one type ("chat.delta") or all of them."""
        return [
            e
            for e in self.events
            if e.get("reply_id") == reply_id and (event_type is None or e["type"] == event_type)
        ]

    def final_message(self, reply_id: str) -> dict[str, Any] | None:
        return next(
            (
                e
                for e in self.events
                if e["type"] == "chat.message" and e.get("message_id") == reply_id
            ),
            None,
        )


def now(check: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A probe for `eventually` from a plain check of what is already in memory."""

    async def probe() -> T:
        return check()

    return probe

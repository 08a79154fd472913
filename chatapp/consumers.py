"""The conversation websocket: live progress for the conversation's owner only.

Channels dispatches each live event (temporal_worker.contracts.events) to the method
named after its type; each renders htmx out-of-band fragments.
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from chatapp import selectors
from chatapp.models import Message
from temporal_worker import client
from temporal_worker.contracts.errors import NotFound
from temporal_worker.contracts.events import (
    ApprovalClaimedEvent,
    ApprovalDecidedEvent,
    ApprovalRemindedEvent,
    ApprovalRequestedEvent,
    MessageRecorded,
    ReplyDelta,
    ReplyPhase,
    ReplySnapshot,
    ToolResultReady,
    conversation_group,
)

# Close codes sent before accept() become an HTTP 403 on the handshake; after
# accept() the browser sees them, so they mirror HTTP's meaning.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class ConversationConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The text of the reply streaming now, as this socket has seen it.
        self._streamed: dict[str, str] = {}

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        conversation_id: uuid.UUID = self.scope["url_route"]["kwargs"]["conversation_id"]
        try:
            conversation = await selectors.conversation_get_for_owner(
                user=user, conversation_id=conversation_id
            )
        except NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.conversation_id = str(conversation.id)
        self.group = conversation_group(self.conversation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._catch_up()
        # A request made between the page's render and joining the group was pushed to
        # nobody: send the pending cards again (the browser de-duplicates them by id).
        pending = await selectors.approval_list_for_conversation(
            conversation=conversation, pending_only=True
        )
        for approval in pending:
            await self._send_approval_card(approval.call_id)

    async def _catch_up(self) -> None:
        """The page was rendered a moment ago: send what changed before we joined."""
        live = await client.conversation_live_state(conversation_id=self.conversation_id)
        if live is not None and live.status == "thinking":
            # The reply may be written (and its final push gone) before the workflow
            # has taken in the result: then it is the answer to show.
            if live.reply_id and await selectors.message_get(message_id=uuid.UUID(live.reply_id)):
                await self._send_message(live.reply_id, final=True)
                return
            if live.phase_label or live.partial_text:
                # The phase (with the status line) and the text so far, as the live events
                # showed them: a reconnect during a rate-limit wait still says so.
                await self._send_reply(
                    live.reply_id, phase_label=live.phase_label, text=live.partial_text
                )
            return
        latest = await selectors.message_latest(conversation_id=self.conversation_id)
        if latest is not None and latest.role in ("assistant", "notice"):
            # A reply whose tools run (or wait for a reviewer) leaves the agent at work.
            working = live is not None and live.status in ("running_tools", "waiting_approval")
            await self._send_message(str(latest.id), final=not working)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The socket is server-to-client only; anything the browser sends is ignored.
        return

    # --- live events -----------------------------------------------------------------

    async def chat_phase(self, message: dict[str, Any]) -> None:
        event = ReplyPhase.from_message(message)
        await self._send_reply(event.reply_id, phase_label=event.label)

    async def chat_delta(self, message: dict[str, Any]) -> None:
        event = ReplyDelta.from_message(message)
        text = self._streamed.get(event.reply_id, "" if event.offset == 0 else None)
        if text is None or len(text) != event.offset:
            # A gap (a lost delta, or joined mid-reply): the next snapshot heals it.
            return
        self._streamed = {event.reply_id: text + event.delta}
        # The whole reply so far, rendered as it will be when recorded: Markdown is not
        # append-only (a closing ``` restyles what came before), so the body is replaced.
        await self.send(
            text_data=render_to_string(
                "chat/_stream_body.html",
                {
                    "reply_id": event.reply_id,
                    "partial_text": self._streamed[event.reply_id],
                    "oob": True,
                },
            )
        )

    async def chat_snapshot(self, message: dict[str, Any]) -> None:
        event = ReplySnapshot.from_message(message)
        await self._send_reply(event.reply_id, text=event.text)

    async def chat_message(self, message: dict[str, Any]) -> None:
        event = MessageRecorded.from_message(message)
        await self._send_message(event.message_id, final=event.final)

    async def chat_tool_result(self, message: dict[str, Any]) -> None:
        event = ToolResultReady.from_message(message)
        # Rendered from the event as the transcript will record it (same id and text);
        # a repeat of the id is de-duplicated in the browser (chat.js).
        result = Message(
            id=uuid.UUID(event.message_id),
            conversation_id=uuid.UUID(self.conversation_id),
            seq=0,
            role=Message.Role.TOOL,
            content=event.content,
            status=Message.Status.COMPLETE if event.ok else Message.Status.ERROR,
            tool_call_id=event.call_id,
            tool_name=event.tool_name,
        )
        await self.send(
            text_data=format_html(
                '<div hx-swap-oob="beforeend:#transcript">{}</div>',
                render_to_string("chat/_message.html", {"message": result}),
            )
        )

    async def approval_requested(self, message: dict[str, Any]) -> None:
        await self._send_approval_card(ApprovalRequestedEvent.from_message(message).call_id)

    async def approval_claimed(self, message: dict[str, Any]) -> None:
        await self._send_approval_card(ApprovalClaimedEvent.from_message(message).call_id)

    async def approval_reminded(self, message: dict[str, Any]) -> None:
        await self._send_approval_card(ApprovalRemindedEvent.from_message(message).call_id)

    async def approval_decided(self, message: dict[str, Any]) -> None:
        event = ApprovalDecidedEvent.from_message(message)
        approval = await selectors.approval_for_conversation(
            conversation_id=self.conversation_id, call_id=event.call_id
        )
        if approval is None:
            return
        await self.send(
            text_data=format_html(
                '<div id="approval-{}" hx-swap-oob="delete"></div>'
                '<div hx-swap-oob="beforeend:#transcript">{}</div>',
                approval.call_id,
                render_to_string("chat/_approval_outcome.html", {"approval": approval}),
            )
        )

    # --- fragments -------------------------------------------------------------------

    async def _send_reply(
        self, reply_id: str, *, phase_label: str = "", text: str | None = None
    ) -> None:
        if text is not None:
            self._streamed = {reply_id: text}
        context = {
            "reply_id": reply_id,
            "phase_label": phase_label,
            "partial_text": text,
            "oob": True,
        }
        parts = [render_to_string("chat/_live_reply.html", context)]
        if phase_label:
            parts.append(
                render_to_string(
                    "chat/_status.html",
                    {
                        "status": "thinking",
                        "label": phase_label,
                        "oob": True,
                        "conversation_id": self.conversation_id,
                    },
                )
            )
        await self.send(text_data="".join(parts))

    async def _send_message(self, message_id: str, *, final: bool) -> None:
        message = await selectors.message_get(message_id=uuid.UUID(message_id))
        if message is None or str(message.conversation_id) != self.conversation_id:
            return
        context: dict[str, Any] = {"message": message, "conversation_id": self.conversation_id}
        if final and message.role == Message.Role.ASSISTANT:
            # The answer that ends a turn may be regenerated (refused if no longer last).
            context |= {"last_reply_id": message.id, "regenerate_request_id": uuid.uuid4()}
        transcript = format_html(
            '<div hx-swap-oob="beforeend:#transcript">{}</div>',
            render_to_string("chat/_message.html", context),
        )
        if message.role == "user" or (message.role == "tool" and not message.handoff_to):
            # Recorded when its turn (or the step after it) starts: the reply in progress
            # stays as it is; a tool result the page showed live is de-duplicated by id.
            await self.send(text_data=transcript)
            return
        if message.handoff_to:
            # The new agent is about to answer: the header names it from now on.
            agent = await selectors.agent_get(slug=message.handoff_to)
            badge = render_to_string("chat/_agent_badge.html", {"agent": agent, "oob": True})
            await self.send(text_data=transcript + badge)
            return
        status = (
            {"status": "idle"}
            if final
            else {"status": "working", "label": "Running the agent's tools…"}
        )
        await self.send(
            text_data="".join(
                [
                    transcript,
                    '<div id="live-reply" hx-swap-oob="true"></div>',
                    render_to_string(
                        "chat/_status.html",
                        {**status, "oob": True, "conversation_id": self.conversation_id},
                    ),
                ]
            )
        )

    async def _send_approval_card(self, call_id: str) -> None:
        approval = await selectors.approval_for_conversation(
            conversation_id=self.conversation_id, call_id=call_id
        )
        if approval is None or approval.status != "pending":
            return
        card = render_to_string("chat/_approval_card.html", {"approval": approval})
        # Appended, then de-duplicated by id in the browser (chat.js): an upsert.
        await self.send(
            text_data=format_html('<div hx-swap-oob="beforeend:#approvals">{}</div>', card)
        )

"""The conversation websocket: live progress for the conversation's owner only."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from chatapp import selectors, temporal_client
from chatapp.progress import conversation_group
from chatapp.selectors import ConversationNotFound

logger = logging.getLogger(__name__)

# Close codes sent before accept() become an HTTP 403 on the handshake; after
# accept() the browser sees them, so they mirror HTTP's meaning.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class ConversationConsumer(AsyncWebsocketConsumer):
    group: str | None = None

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
        except ConversationNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.conversation_id = str(conversation.id)
        self.group = conversation_group(self.conversation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._catch_up()

    async def _catch_up(self) -> None:
        """The page was rendered a moment ago: send what changed before we joined."""
        live = await temporal_client.conversation_live_state(conversation_id=self.conversation_id)
        if live is not None and live.status == "thinking":
            # The reply may be written (and its final push gone) before the workflow
            # has taken in the result: then it is the answer to show.
            if live.reply_id and await selectors.message_get(message_id=uuid.UUID(live.reply_id)):
                await self.chat_progress(
                    {"kind": "message", "message_id": live.reply_id, "final": True}
                )
                return
            if live.partial_text:
                await self.chat_progress(
                    {"kind": "snapshot", "reply_id": live.reply_id, "text": live.partial_text}
                )
            return
        latest = await selectors.message_latest(conversation_id=self.conversation_id)
        if latest is not None and latest.role in ("assistant", "notice"):
            await self.chat_progress(
                {"kind": "message", "message_id": str(latest.id), "final": True}
            )

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The socket is server-to-client only; anything the browser sends is ignored.
        return

    async def chat_progress(self, event: dict[str, Any]) -> None:
        html = await self._render(event)
        if html:
            await self.send(text_data=html)

    async def _render(self, event: dict[str, Any]) -> str:
        kind = event.get("kind")
        if kind == "delta":
            return format_html(
                '<span hx-swap-oob="beforeend:#stream-{}">{}</span>',
                event["reply_id"],
                event["delta"],
            )
        if kind in ("phase", "snapshot"):
            context = {
                "reply_id": event["reply_id"],
                "phase_label": event.get("label", ""),
                "partial_text": event.get("text"),
                "oob": True,
            }
            parts = [render_to_string("chat/_live_reply.html", context)]
            if kind == "phase":
                parts.append(
                    render_to_string(
                        "chat/_status.html",
                        {
                            "status": "thinking",
                            "label": event.get("label", ""),
                            "oob": True,
                            "conversation_id": self.conversation_id,
                        },
                    )
                )
            return "".join(parts)
        if kind == "message":
            message = await selectors.message_get(message_id=uuid.UUID(event["message_id"]))
            if message is None or str(message.conversation_id) != self.conversation_id:
                return ""
            context = {"message": message, "conversation_id": self.conversation_id}
            parts = [
                format_html(
                    '<div hx-swap-oob="beforeend:#transcript">{}</div>',
                    render_to_string("chat/_message.html", context),
                ),
                '<div id="live-reply" hx-swap-oob="true"></div>',
            ]
            status = (
                {"status": "idle"}
                if event.get("final")
                else {"status": "working", "label": "Running the agent's tools…"}
            )
            parts.append(
                render_to_string(
                    "chat/_status.html",
                    {**status, "oob": True, "conversation_id": self.conversation_id},
                )
            )
            return "".join(parts)
        if kind in ("approval_requested", "approval_claimed", "approval_reminder"):
            approval = await selectors.approval_for_conversation(
                conversation_id=self.conversation_id, call_id=event["call_id"]
            )
            if approval is None or approval.status != "pending":
                return ""
            card = render_to_string("chat/_approval_card.html", {"approval": approval})
            # Appended, then de-duplicated by id in the browser (chat.js): an upsert.
            return format_html('<div hx-swap-oob="beforeend:#approvals">{}</div>', card)
        if kind == "approval_decided":
            approval = await selectors.approval_for_conversation(
                conversation_id=self.conversation_id, call_id=event["call_id"]
            )
            if approval is None:
                return ""
            return format_html(
                '<div id="approval-{}" hx-swap-oob="delete"></div>'
                '<div hx-swap-oob="beforeend:#transcript">{}</div>',
                approval.call_id,
                render_to_string("chat/_approval_outcome.html", {"approval": approval}),
            )
        logger.debug("ignoring progress event of kind %s", kind)
        return ""

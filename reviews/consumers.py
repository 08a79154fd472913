"""The reviewers' websocket: the dashboard's rows, kept live as approvals come and go.

Channels dispatches each approval event (temporal_worker.contracts.events) to the
method named after its type.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from reviews import selectors
from reviews.selectors import ApprovalRow
from temporal_worker import client
from temporal_worker.contracts.errors import UserError
from temporal_worker.contracts.events import (
    REVIEWERS_GROUP,
    ApprovalClaimedEvent,
    ApprovalDecidedEvent,
    ApprovalRemindedEvent,
    ApprovalRequestedEvent,
)

logger = logging.getLogger(__name__)

REVIEW_PERMISSION = "reviews.review_approvals"
# Close codes sent before accept() become an HTTP 403 on the handshake.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ReviewersConsumer(AsyncWebsocketConsumer):
    joined = False

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(user.has_perm)(REVIEW_PERMISSION):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.viewer = {"viewer_id": user.pk, "viewer_is_staff": user.is_staff}
        await self.channel_layer.group_add(REVIEWERS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(REVIEWERS_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Server-to-client only: decisions go through the POST endpoints.
        return

    # --- live events -----------------------------------------------------------------
    # Rows are marked (and hidden), never replaced or deleted: a reviewer's request in
    # flight from a row's form needs its element in the page to show the answer.

    async def approval_requested(self, message: dict[str, Any]) -> None:
        event = ApprovalRequestedEvent.from_message(message)
        row = await self._row(event.conversation_id, event.call_id)
        if row is None:
            return  # decided (or gone) before we asked
        inserted = render_to_string(
            "reviews/_approval_row.html", {"row": row, **self.viewer, "fresh": True}
        )
        # The HTML parser keeps a <tr> only inside a table element; a copy the page
        # loaded meanwhile is dropped by reviews.js (the newest stays).
        await self.send(
            text_data=format_html(
                '<tbody hx-swap-oob="beforeend:#approval-rows">{}</tbody>', inserted
            )
        )

    async def approval_claimed(self, message: dict[str, Any]) -> None:
        event = ApprovalClaimedEvent.from_message(message)
        await self._refresh(event.conversation_id, event.call_id, "reviews/_claim_state.html")

    async def approval_reminded(self, message: dict[str, Any]) -> None:
        event = ApprovalRemindedEvent.from_message(message)
        await self._refresh(event.conversation_id, event.call_id, "reviews/_deadline.html")

    async def approval_decided(self, message: dict[str, Any]) -> None:
        event = ApprovalDecidedEvent.from_message(message)
        await self.send(text_data=self._decided(event.conversation_id, event.call_id))

    async def _refresh(self, conversation_id: str, call_id: str, template: str) -> None:
        row = await self._row(conversation_id, call_id)
        if row is None:
            await self.send(text_data=self._decided(conversation_id, call_id))
            return
        await self.send(
            text_data=render_to_string(template, {"row": row, **self.viewer, "oob": True})
        )

    @staticmethod
    def _decided(conversation_id: str, call_id: str) -> str:
        dom_id = selectors.approval_dom_id(conversation_id=conversation_id, call_id=call_id)
        return render_to_string(
            "reviews/_row_state.html", {"dom_id": dom_id, "decided": True, "oob": True}
        )

    async def _row(self, conversation_id: str, call_id: str) -> ApprovalRow | None:
        try:
            pending = await client.approval_get(conversation_id=conversation_id, call_id=call_id)
        except UserError as err:
            logger.info("approval %s/%s not readable: %s", conversation_id, call_id, err)
            return None
        if pending is None:
            return None
        return (await selectors.approval_rows(items=[pending]))[0]

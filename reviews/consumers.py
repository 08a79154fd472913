"""The reviewers' websocket: the dashboard's rows, kept live as approvals come and go."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from chatapp import temporal_client
from chatapp.temporal_client import ChatRejected, TemporalUnavailable
from reviews import selectors
from reviews.live import REVIEWERS_GROUP
from reviews.selectors import ApprovalRow
from temporal_worker.shared import conversation_id_from_workflow_id

logger = logging.getLogger(__name__)

REVIEW_PERMISSION = "reviews.review_approvals"
# Close codes sent before accept() become an HTTP 403 on the handshake.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# The part of a row each event refreshes.
LIVE_KINDS = {
    "requested": "reviews/_approval_row.html",
    "claimed": "reviews/_claim_state.html",
    "reminder": "reviews/_deadline.html",
}


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

    async def review_event(self, event: dict[str, Any]) -> None:
        html = await self._render(event)
        if html:
            await self.send(text_data=html)

    async def _render(self, event: dict[str, Any]) -> str:
        kind = event.get("kind")
        conversation_id = conversation_id_from_workflow_id(str(event.get("workflow_id", "")))
        call_id = str(event.get("call_id", ""))
        dom_id = selectors.approval_dom_id(conversation_id=conversation_id, call_id=call_id)
        # Rows are marked (and hidden), never replaced or deleted: a reviewer's request in
        # flight from a row's form needs its element in the page to show the answer.
        decided = render_to_string(
            "reviews/_row_state.html", {"dom_id": dom_id, "decided": True, "oob": True}
        )
        if kind == "decided":
            return decided
        if kind not in LIVE_KINDS:
            logger.debug("ignoring review event of kind %s", kind)
            return ""
        row = await self._row(conversation_id, call_id)
        if row is None:
            # Decided (or gone) before we asked.
            return "" if kind == "requested" else decided
        context = {"row": row, **self.viewer}
        if kind == "requested":
            inserted = render_to_string("reviews/_approval_row.html", {**context, "fresh": True})
            # The HTML parser keeps a <tr> only inside a table element; a copy the page
            # loaded meanwhile is dropped by reviews.js (the newest stays).
            return format_html('<tbody hx-swap-oob="beforeend:#approval-rows">{}</tbody>', inserted)
        return render_to_string(LIVE_KINDS[kind], {**context, "oob": True})

    async def _row(self, conversation_id: str, call_id: str) -> ApprovalRow | None:
        try:
            pending = await temporal_client.approval_get(
                conversation_id=conversation_id, call_id=call_id
            )
        except (ChatRejected, TemporalUnavailable) as err:
            logger.info("approval %s/%s not readable: %s", conversation_id, call_id, err)
            return None
        if pending is None:
            return None
        return (await selectors.approval_rows(items=[pending]))[0]

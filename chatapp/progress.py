"""Live progress: the one place that pushes events to websocket groups.

Progress is best effort. The transcript and decisions are durable elsewhere
(workflow history and the database), so a slow or absent channel layer must never
fail a turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 1.0


def conversation_group(conversation_id: str) -> str:
    return f"conversation.{conversation_id}"


async def group_push(group: str, message: dict[str, Any]) -> None:
    """Send a channel-layer message (with its "type") to every socket in `group`."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await asyncio.wait_for(layer.group_send(group, message), timeout=PUSH_TIMEOUT_SECONDS)
    except Exception as err:
        logger.warning("push to %s failed: %s", group, type(err).__name__)


async def progress_push(conversation_id: str, event: dict[str, Any]) -> None:
    """Send `event` (a dict with a "kind") to every socket watching the conversation."""
    await group_push(conversation_group(conversation_id), {"type": "chat.progress", **event})

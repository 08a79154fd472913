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
# Events a page cannot infer from later ones (a recorded message, an approval's
# outcome) are tried again, each time waiting twice as long, before giving up.
DURABLE_EVENT_ATTEMPTS = 3
_DURABLE_KINDS = frozenset(
    {"message", "approval_requested", "approval_claimed", "approval_reminder", "approval_decided"}
)


def conversation_group(conversation_id: str) -> str:
    return f"conversation.{conversation_id}"


async def group_push(group: str, message: dict[str, Any], *, attempts: int = 1) -> None:
    """Send a channel-layer message (with its "type") to every socket in `group`."""
    layer = get_channel_layer()
    if layer is None:
        return
    timeout = PUSH_TIMEOUT_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            await asyncio.wait_for(layer.group_send(group, message), timeout=timeout)
            return
        except Exception as err:
            logger.warning(
                "push to %s failed (attempt %d of %d): %s",
                group,
                attempt,
                attempts,
                type(err).__name__,
            )
        timeout *= 2


async def progress_push(conversation_id: str, event: dict[str, Any]) -> None:
    """Send `event` (a dict with a "kind") to every socket watching the conversation.

    A repeated event is harmless: pages render messages and approvals by id."""
    durable = event.get("kind") in _DURABLE_KINDS
    await group_push(
        conversation_group(conversation_id),
        {"type": "chat.progress", **event},
        attempts=DURABLE_EVENT_ATTEMPTS if durable else 1,
    )

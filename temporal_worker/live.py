"""Live events onto the channel layer: the one place that sends to websocket groups.

Progress is best effort. The transcript and decisions are durable elsewhere
(workflow history and the database), so a slow or absent channel layer must never
fail a turn.
"""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer

from temporal_worker.contracts.events import LiveEvent

logger = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 1.0
# Reliable events (a recorded message, an approval's change) are tried again, each
# time waiting twice as long, before giving up: a page cannot infer them from later ones.
RELIABLE_EVENT_ATTEMPTS = 3


class ChannelLayerPublisher:
    """Publishes through Channels' layer (in-memory in embedded mode, Redis otherwise)."""

    async def publish(self, group: str, event: LiveEvent) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        message = event.to_message()
        attempts = RELIABLE_EVENT_ATTEMPTS if event.reliable else 1
        timeout = PUSH_TIMEOUT_SECONDS
        for attempt in range(1, attempts + 1):
            try:
                await asyncio.wait_for(layer.group_send(group, message), timeout=timeout)
                return
            except Exception as err:
                logger.warning(
                    "push of %s to %s failed (attempt %d of %d): %s",
                    event.type,
                    group,
                    attempt,
                    attempts,
                    type(err).__name__,
                )
            timeout *= 2

"""Live events onto the channel layer: a reliable event (a recorded message) is tried
again when the layer stalls; a token delta is not (snapshots make up for it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from temporal_worker import live
from temporal_worker.contracts.events import MessageRecorded, ReplyDelta, conversation_group


class StallingOnceLayer(InMemoryChannelLayer):
    """The real in-memory layer, except that its first group_send hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not self.stalled:
            self.stalled = True
            await asyncio.sleep(3600)
        await super().group_send(group, message)


@pytest.fixture
def layer(monkeypatch: pytest.MonkeyPatch) -> StallingOnceLayer:
    layer = StallingOnceLayer()
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(live, "PUSH_TIMEOUT_SECONDS", 0.05)
    return layer


async def _subscribed(layer: StallingOnceLayer, conversation_id: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(conversation_group(conversation_id), channel)
    return channel


async def test_a_recorded_message_is_pushed_again_after_a_stall(layer: StallingOnceLayer) -> None:
    channel = await _subscribed(layer, "c1")

    await live.ChannelLayerPublisher().publish(
        conversation_group("c1"), MessageRecorded(message_id="m1", reply_id="m1", final=True)
    )

    received = await asyncio.wait_for(layer.receive(channel), timeout=1)
    assert (received["type"], received["message_id"]) == ("chat.message", "m1")
    with pytest.raises(TimeoutError):  # once, not twice
        await asyncio.wait_for(layer.receive(channel), timeout=0.2)


async def test_a_token_delta_is_tried_once(layer: StallingOnceLayer) -> None:
    channel = await _subscribed(layer, "c2")

    await live.ChannelLayerPublisher().publish(
        conversation_group("c2"), ReplyDelta(reply_id="r", offset=0, delta="hi")
    )

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), timeout=0.2)

"""Pushes to the channel layer: a recorded message is tried again when the layer stalls;
a token delta is not (snapshots make up for it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from chatapp import progress


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
    monkeypatch.setattr(progress, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(progress, "PUSH_TIMEOUT_SECONDS", 0.05)
    return layer


async def _subscribed(layer: StallingOnceLayer, conversation_id: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(progress.conversation_group(conversation_id), channel)
    return channel


async def test_a_recorded_message_is_pushed_again_after_a_stall(layer: StallingOnceLayer) -> None:
    channel = await _subscribed(layer, "c1")

    await progress.progress_push("c1", {"kind": "message", "message_id": "m1"})

    received = await asyncio.wait_for(layer.receive(channel), timeout=1)
    assert (received["kind"], received["message_id"]) == ("message", "m1")
    with pytest.raises(TimeoutError):  # once, not twice
        await asyncio.wait_for(layer.receive(channel), timeout=0.2)


async def test_a_token_delta_is_tried_once(layer: StallingOnceLayer) -> None:
    channel = await _subscribed(layer, "c2")

    await progress.progress_push("c2", {"kind": "delta", "delta": "hi", "offset": 0})

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), timeout=0.2)

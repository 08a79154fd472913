"""The embedded mode's channel layer scans for expired messages once a second, not on
every receive and group_send, and still expires them."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer

from config import channel_layer
from config.channel_layer import ThrottledInMemoryChannelLayer


def test_the_embedded_mode_uses_it() -> None:
    assert isinstance(get_channel_layer(), ThrottledInMemoryChannelLayer)


async def test_many_pushes_within_a_second_cost_one_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    scans = 0
    original = InMemoryChannelLayer._clean_expired

    def counted(self: InMemoryChannelLayer) -> None:
        nonlocal scans
        scans += 1
        original(self)

    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", counted)
    layer = ThrottledInMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    for index in range(50):
        await layer.group_send("g", {"type": "x", "i": index})
        assert (await layer.receive(channel))["i"] == index
    assert scans == 1


async def test_an_expired_message_and_its_membership_still_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(channel_layer, "EXPIRY_SCAN_EVERY_SECONDS", 0.05)
    layer = ThrottledInMemoryChannelLayer(expiry=0.01)
    stale, fresh = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", stale)
    await layer.send(stale, {"type": "old"})
    await asyncio.sleep(0.1)
    await layer.send(fresh, {"type": "new"})
    assert (await layer.receive(fresh))["type"] == "new"
    assert stale not in layer.channels
    assert stale not in layer.groups.get("g", {})

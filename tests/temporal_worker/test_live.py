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


# --- the stream's pushes follow the process's load ----------------------------------------


class _Captured:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def publish(self, group: str, event: object) -> None:
        self.events.append(event)


def test_the_loop_lag_rises_at_once_and_falls_slowly() -> None:
    from temporal_worker.activities.llm import DELTA_COALESCE_SECONDS, _LoopLag

    lag = _LoopLag()
    assert lag.coalesce_seconds() == DELTA_COALESCE_SECONDS
    lag.observe(0.1)
    assert lag.coalesce_seconds() == pytest.approx(0.4)
    lag.observe(0.0)
    assert 0.05 < lag.seconds < 0.1
    for _ in range(30):
        lag.observe(0.0)
    assert lag.coalesce_seconds() == DELTA_COALESCE_SECONDS


async def test_a_busy_process_sends_a_stream_in_fewer_pushes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from temporal_worker.activities import llm
    from temporal_worker.contracts.events import ReplyDelta

    async def stream_of(lag_seconds: float) -> list[str]:
        lag = llm._LoopLag()
        lag.observe(lag_seconds)
        monkeypatch.setattr(llm, "loop_lag", lag)
        live = _Captured()
        stream = llm._Stream(live=live, conversation_id="c", reply_id="r")  # type: ignore[arg-type]
        for word in ["one ", "two ", "three ", "four ", "five"]:
            await stream.add(word)
            await asyncio.sleep(0.03)  # a chunk every 30 ms
        await stream.close()
        deltas = [e.delta for e in live.events if isinstance(e, ReplyDelta)]
        assert "".join(deltas) == "one two three four five"
        return deltas

    idle = await stream_of(0.0)
    busy = await stream_of(0.4)
    assert len(idle) == 5  # 30 ms apart, over the 20 ms pause: each chunk goes out
    assert busy == ["one ", "two three four five"]

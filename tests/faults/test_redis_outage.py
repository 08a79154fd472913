"""Redis (the channel layer of a multi-process deployment) stops mid-answer.

Progress is best effort: the answer must still be recorded (the page shows it on
reload), the LLM activity must not fail because of the layer (no retry), and once
Redis is back the live progress resumes for sockets that were listening all along.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from channels.layers import channel_layers, get_channel_layer
from django.test import AsyncClient
from django.urls import reverse
from redis import asyncio as aioredis

from temporal_worker.contracts.events import conversation_group
from tests.faults.support import (
    FAILED,
    GroupListener,
    llm_attempts,
    new_user,
    now,
    rows,
    send,
    unique,
    wait_turn_done,
)
from tests.helpers import (
    eventually,
    history,
    html_element,
    html_text,
    of_type,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest_asyncio.fixture
async def redis_layer(settings, redis_server) -> AsyncIterator[object]:
    """The product's Redis channel layer (as with REDIS_URL) on the test's own Redis."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_server.url]},
        }
    }
    channel_layers.backends = {}
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisPubSubChannelLayer"
    try:
        yield layer
    finally:
        try:
            await asyncio.wait_for(layer.flush(), timeout=5)
        finally:
            channel_layers.backends = {}


async def subscribers(redis_url: str, channel: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    except Exception:  # Redis is still starting
        return 0
    finally:
        await client.aclose()


async def test_redis_stopping_mid_answer_loses_nothing_and_progress_resumes_after(
    temporal, worker, scripted_model, redis_server, redis_layer, fault_timings
):
    user = await new_user()
    cid = uuid.uuid4()
    group = conversation_group(str(cid))
    before, during, after = (
        unique("Before Redis stops"),
        unique("While Redis stops"),
        unique("After Redis is back"),
    )
    during_reply = "Redis stopped while I was answering and this answer still arrived in full."
    # One word every 300 ms: about 4 s of streaming, most of it with Redis gone.
    await scripted_model.add_rules(
        {"match": during, "chunk_delay_ms": 300, "reply": during_reply},
        {"match": after, "chunk_delay_ms": 20},
    )

    async with GroupListener(redis_layer, group) as listener:
        # Redis up: the progress reaches the group.
        await send(user, cid, before)
        [first] = await wait_turn_done(cid, 1)
        await eventually(now(lambda: listener.final_message(str(first.id))))
        streamed = "".join(e["delta"] for e in listener.of(str(first.id), "chat.delta"))
        assert streamed == first.content

        # Redis goes away once the second answer has started streaming.
        await send(user, cid, during)
        delta = await eventually(
            now(
                lambda: next(
                    (
                        e
                        for e in listener.events
                        if e["type"] == "chat.delta" and e["reply_id"] != str(first.id)
                    ),
                    None,
                )
            )
        )
        stopped_at = time.monotonic()
        await asyncio.to_thread(redis_server.stop)
        second_id = delta["reply_id"]

        [_, second] = await wait_turn_done(cid, 2, timeout=60)
        fault_timings("Redis stopped mid-answer -> answer recorded", time.monotonic() - stopped_at)
        assert str(second.id) == second_id
        assert (second.content, second.status) == (during_reply, "complete")
        # The outage really covered the end of the stream: the final event never arrived.
        assert listener.final_message(second_id) is None
        streamed_live = "".join(e["delta"] for e in listener.of(second_id, "chat.delta"))
        assert during_reply.startswith(streamed_live) and streamed_live != during_reply
        # Nothing raised out of the activity: no call_llm was retried or failed.
        events = await history(temporal, cid)
        assert llm_attempts(events) == [1, 1]
        assert not of_type(events, FAILED)
        # The page shows the final answer on reload (Redis still down).
        browser = AsyncClient()
        await browser.aforce_login(user)
        page = await browser.get(reverse("chat:conversation", args=[cid]))
        assert page.status_code == 200
        article = html_element(page.content.decode(), f"msg-{second.id}")
        assert article is not None and during_reply in " ".join(html_text(article).split())

        # Redis back on the same port: the listener (subscribed all along) resubscribes...
        await asyncio.to_thread(redis_server.start)
        restarted_at = time.monotonic()
        group_channel = redis_layer._get_layer()._get_group_channel_name(group)
        await eventually(lambda: subscribers(redis_server.url, group_channel), timeout=30)
        fault_timings("Redis restarted -> group resubscribed", time.monotonic() - restarted_at)
        # ...and the next turn's progress reaches it again.
        await send(user, cid, after)
        [*_, third] = await wait_turn_done(cid, 3)
        await eventually(now(lambda: listener.final_message(str(third.id))))
        deltas = listener.of(str(third.id), "chat.delta")
        assert len(deltas) > 1
        assert "".join(e["delta"] for e in deltas) == third.content

    assert llm_attempts(await history(temporal, cid)) == [1, 1, 1]
    transcript = await rows(cid)
    assert [(m.role, m.content) for m in transcript if m.role == "user"] == [
        ("user", before),
        ("user", during),
        ("user", after),
    ]
    assert [m.role for m in transcript] == ["user", "assistant"] * 3

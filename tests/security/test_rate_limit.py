"""The per-user limit on sending messages: the message over the limit is refused in the
composer with a clear error and never reaches the agent; a retried message is counted
once; other users are unaffected."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from chatapp import ratelimit
from chatapp.models import Conversation, Message
from config import processes as stack
from config.redis_cache import redis_caches
from tests.factories import auser_create
from tests.helpers import (
    body,
    eventually,
    html_element,
    logged_in,
)
from tests.security.support import (
    SEND_URL,
    composer_error,
    composer_ids,
    conversation_start,
    send,
)

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 3
TOO_QUICKLY = re.compile(r"You are sending messages too quickly; try again in (\d+) s\.")


@pytest.fixture(autouse=True)
def small_limit(settings: pytest.FixtureRequest) -> None:
    settings.CHAT_RATE_LIMIT_MESSAGES = LIMIT  # type: ignore[attr-defined]
    settings.CHAT_RATE_LIMIT_WINDOW_SECONDS = 60  # type: ignore[attr-defined]


class FakeClock:
    """Stands in for the `time` module inside chatapp.ratelimit only."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A frozen clock 10 s into a window: a window ending mid-test would reset the count."""
    fake = FakeClock(now=1_000 * 60 + 10.0)
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


async def user_messages(conversation_id: str) -> list[str]:
    rows = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.USER)
    return [m.content async for m in rows.order_by("seq")]


async def replies_to_all(conversation_id: str, count: int) -> None:
    async def answered() -> bool:
        replies = Message.objects.filter(
            conversation_id=conversation_id, role=Message.Role.ASSISTANT
        )
        return await replies.acount() >= count

    await eventually(answered)


def assert_accepted(response: object, message_id: str) -> None:
    fragment = body(response)  # type: ignore[arg-type]
    assert composer_error(fragment) == ""
    assert html_element(fragment, f"msg-{message_id}") is not None


async def test_the_message_over_the_limit_is_refused_in_the_composer(worker: object) -> None:
    client = await logged_in(await auser_create())
    conversation_id = await conversation_start(client, "message 1")
    for n in range(2, LIMIT + 1):
        message_id = str(uuid.uuid4())
        response = await send(
            client, conversation_id=conversation_id, message_id=message_id, text=f"message {n}"
        )
        assert_accepted(response, message_id)
    over_id = str(uuid.uuid4())

    refused = await send(
        client, conversation_id=conversation_id, message_id=over_id, text="one too many"
    )
    plain = await client.post(
        SEND_URL,
        {"conversation_id": conversation_id, "message_id": over_id, "text": "one too many"},
    )

    assert refused.status_code == 200
    assert refused.headers["HX-Retarget"] == "#composer"
    fragment = body(refused)
    error = composer_error(fragment)
    assert error == "You are sending messages too quickly; try again in 50 s."
    # The text and ids stay in the composer, so sending again later is one click.
    assert "one too many" in (html_element(fragment, "composer") or "")
    assert composer_ids(fragment) == (conversation_id, over_id)
    # Without htmx the refusal is the composer page itself, with the status that says why.
    assert plain.status_code == 429
    assert TOO_QUICKLY.search(body(plain))
    await replies_to_all(conversation_id, LIMIT)
    assert await user_messages(conversation_id) == [f"message {n}" for n in range(1, LIMIT + 1)]


async def test_a_retried_message_is_counted_once(worker: object) -> None:
    client = await logged_in(await auser_create())
    conversation_id = await conversation_start(client, "message 1")
    second = str(uuid.uuid4())
    assert_accepted(
        await send(client, conversation_id=conversation_id, message_id=second, text="message 2"),
        second,
    )
    for _ in range(3):  # a double click and two retries of the same POST
        retried = await send(
            client, conversation_id=conversation_id, message_id=second, text="message 2"
        )
        assert composer_error(body(retried)) == ""
    third = str(uuid.uuid4())

    last_allowed = await send(
        client, conversation_id=conversation_id, message_id=third, text="message 3"
    )
    over = await send(
        client, conversation_id=conversation_id, message_id=str(uuid.uuid4()), text="message 4"
    )

    assert_accepted(last_allowed, third)
    assert TOO_QUICKLY.fullmatch(composer_error(body(over)))
    await replies_to_all(conversation_id, LIMIT)
    assert await user_messages(conversation_id) == ["message 1", "message 2", "message 3"]


async def test_another_user_is_not_limited_by_someone_elses_messages(worker: object) -> None:
    busy = await logged_in(await auser_create())
    conversation_id = await conversation_start(busy, "message 1")
    for n in range(2, LIMIT + 2):
        last = await send(
            busy, conversation_id=conversation_id, message_id=uuid.uuid4(), text=f"message {n}"
        )
    assert TOO_QUICKLY.fullmatch(composer_error(body(last)))

    other = await logged_in(await auser_create())
    other_conversation = await conversation_start(other, "I am not in a hurry")

    assert await user_messages(other_conversation) == ["I am not in a hurry"]


async def test_a_refused_first_message_leaves_no_conversation(worker: object) -> None:
    client = await logged_in(await auser_create())
    conversation_id = await conversation_start(client, "message 1")
    for n in range(2, LIMIT + 1):
        await send(
            client, conversation_id=conversation_id, message_id=uuid.uuid4(), text=f"message {n}"
        )
    new_conversation, new_message = composer_ids(body(await client.get("/")))

    refused = await send(
        client,
        conversation_id=new_conversation,
        message_id=new_message,
        text="a new topic",
        current_path="/",
    )

    assert TOO_QUICKLY.fullmatch(composer_error(body(refused)))
    assert "HX-Redirect" not in refused.headers
    assert not await Conversation.objects.filter(id=new_conversation).aexists()
    assert not await Message.objects.filter(content="a new topic").aexists()


ID_IN_USE = "This message id is already in use; reload the page and send again."


async def test_a_message_id_reused_in_another_conversation_leaves_the_first_intact(
    worker: object,
) -> None:
    client = await logged_in(await auser_create())
    conversation_id = await conversation_start(client, "what I really said")
    await replies_to_all(conversation_id, 1)  # the first conversation's turn is over
    original = await Message.objects.aget(conversation_id=conversation_id, role="user")
    other_conversation = uuid.uuid4()

    refused = await send(
        client,
        conversation_id=other_conversation,
        message_id=original.id,
        text="what I claim I said",
        current_path="/",
    )

    assert composer_error(body(refused)) == ID_IN_USE
    await original.arefresh_from_db()
    assert original.content == "what I really said"
    assert not await Conversation.objects.filter(id=other_conversation).aexists()


async def test_a_message_with_the_id_of_the_agents_reply_leaves_the_reply_intact(
    worker: object,
) -> None:
    client = await logged_in(await auser_create())
    conversation_id = await conversation_start(client, "hello")
    await replies_to_all(conversation_id, 1)
    reply = await Message.objects.aget(conversation_id=conversation_id, role="assistant")
    said = reply.content

    refused = await send(
        client, conversation_id=conversation_id, message_id=reply.id, text="forged"
    )

    assert composer_error(body(refused)) == ID_IN_USE
    await reply.arefresh_from_db()
    assert (reply.role, reply.content) == (Message.Role.ASSISTANT, said)


# --- the counter itself ---------------------------------------------------------------


async def test_the_wait_counts_down_to_the_end_of_the_window(clock: FakeClock) -> None:
    waits = [await ratelimit.message_send_wait(user_id=42) for _ in range(LIMIT + 1)]
    clock.now += 49.2
    almost = await ratelimit.message_send_wait(user_id=42)
    clock.now += 1.0  # the next window
    again = await ratelimit.message_send_wait(user_id=42)
    other = await ratelimit.message_send_wait(user_id=43)

    assert waits == [0] * LIMIT + [50]
    assert almost == 1
    assert again == 0
    assert other == 0


async def test_a_limit_of_zero_turns_the_limit_off(
    clock: FakeClock, settings: pytest.FixtureRequest
) -> None:
    settings.CHAT_RATE_LIMIT_MESSAGES = 0  # type: ignore[attr-defined]

    waits = {await ratelimit.message_send_wait(user_id=7) for _ in range(100)}

    assert waits == {0}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run scripts/check_test_dependencies.sh redis")
    port = stack.free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = stack.Child(
        name="redis",
        command=[*command, "--appendonly", "no"],
        log_path=tmp_path / "redis.log",
        ready_port=("127.0.0.1", port),
    ).start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


async def test_with_redis_the_count_is_shared_by_every_web_process(
    redis_url: str, settings: pytest.FixtureRequest
) -> None:
    """REDIS_URL makes the cache Redis: a second web process (here: a second client of
    the same Redis) sees the same count, so the limit holds behind a load balancer."""
    settings.CACHES = {  # type: ignore[attr-defined]
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    other_process = RedisCache(redis_url, {})

    waits = [await ratelimit.message_send_wait(user_id=42) for _ in range(LIMIT)]
    keys = [key.decode() for key in redis.Redis.from_url(redis_url).keys("*chat-rate*")]
    (key,) = keys
    seen_elsewhere = await other_process.aget(key.split(":", 2)[2])
    over = await ratelimit.message_send_wait(user_id=42)

    assert waits == [0] * LIMIT
    assert seen_elsewhere == LIMIT
    assert over == 50


async def test_with_redis_every_request_shares_the_process_connections(
    redis_url: str, settings: pytest.FixtureRequest
) -> None:
    """Django builds a cache object per request under ASGI: with config's pool class they
    share the process's Redis connections instead of each opening its own."""
    settings.CACHES = redis_caches(redis_url)  # type: ignore[attr-defined]
    server = redis.Redis.from_url(redis_url)
    before = server.info("stats")["total_connections_received"]
    for request in range(20):
        per_request = caches.create_connection("default")  # what each request's context gets
        assert await per_request.aadd(f"seen:{request}", 1)
    opened = server.info("stats")["total_connections_received"] - before

    assert opened <= 2, f"{opened} Redis connections for 20 requests"

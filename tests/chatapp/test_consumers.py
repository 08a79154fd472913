"""The conversation websocket, through the real ASGI stack (origin check, session auth)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser
from temporalio.client import Client as TemporalClient

from chatapp import services
from chatapp.models import Conversation, Message
from config.asgi import application
from temporal_worker import client as temporal_client
from temporal_worker.contracts.events import ReplyDelta, conversation_group
from temporal_worker.live import ChannelLayerPublisher
from temporal_worker.scripted_model import ScriptedModelServer
from tests.approvals import refund_requested
from tests.factories import auser_create
from tests.helpers import body, eventually, html_element, html_text, logged_in, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_ORIGIN = b"http://127.0.0.1:8000"
RECEIVE_TIMEOUT = 10.0
# Each delta re-renders the reply so far (sanitised Markdown) in place.
STREAM_TARGET = re.compile(
    r'<div id="stream-([0-9a-f-]{36})" class="body stream markdown" hx-swap-oob="true">'
)


def communicator(
    conversation_id: uuid.UUID | str, *, cookie: str | None, origin: bytes = GOOD_ORIGIN
) -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/c/{conversation_id}/", headers=headers)


@pytest_asyncio.fixture
async def owner() -> AbstractBaseUser:
    return await auser_create()


@pytest_asyncio.fixture
async def conversation(owner: AbstractBaseUser) -> Conversation:
    return await Conversation.objects.acreate(owner=owner, title="Socket test")


@pytest_asyncio.fixture
async def owner_socket(
    owner: AbstractBaseUser, conversation: Conversation
) -> AsyncIterator[WebsocketCommunicator]:
    socket = communicator(conversation.id, cookie=await session_cookie(owner))
    connected, _ = await socket.connect()
    assert connected
    try:
        yield socket
    finally:
        await socket.disconnect()


async def test_owner_receives_token_deltas_before_the_final_message(
    worker: object,
    owner: AbstractBaseUser,
    conversation: Conversation,
    owner_socket: WebsocketCommunicator,
) -> None:
    await services.message_send(
        user=owner,
        conversation_id=conversation.id,
        message_id=uuid.uuid4(),
        text="Stream <img src=x onerror=alert(1)> to me",
    )

    frames: list[str] = []
    while not any('class="agent-status idle"' in frame for frame in frames):
        frames.append(await owner_socket.receive_from(timeout=RECEIVE_TIMEOUT))

    reply = await Message.objects.aget(conversation=conversation, role="assistant")
    final_index = next(i for i, f in enumerate(frames) if f'id="msg-{reply.id}"' in f)
    deltas = [
        (i, match.group(1))
        for i, frame in enumerate(frames)
        if (match := STREAM_TARGET.search(frame))
    ]
    assert deltas, f"no token deltas among {len(frames)} frames"
    assert {reply_id for _, reply_id in deltas} == {str(reply.id)}
    assert max(i for i, _ in deltas) < final_index
    streamed = frames[max(i for i, _ in deltas)]
    assert "Scripted demo model" in streamed
    assert "<img" not in "".join(frames)  # deltas and snapshots are escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in streamed
    final = frames[final_index]
    assert 'hx-swap-oob="beforeend:#transcript"' in final
    assert '<div id="live-reply" hx-swap-oob="true"></div>' in final
    assert 'class="agent-status idle"' in final


async def test_anonymous_socket_is_refused(conversation: Conversation) -> None:
    socket = communicator(conversation.id, cookie=None)

    connected, _ = await socket.connect()

    assert not connected


async def test_another_users_socket_is_refused(conversation: Conversation) -> None:
    intruder = await auser_create()
    socket = communicator(conversation.id, cookie=await session_cookie(intruder))

    connected, _ = await socket.connect()

    assert not connected


async def test_unknown_conversation_is_refused(owner: AbstractBaseUser) -> None:
    socket = communicator(uuid.uuid4(), cookie=await session_cookie(owner))

    connected, _ = await socket.connect()

    assert not connected


async def test_foreign_origin_is_refused(
    owner: AbstractBaseUser, conversation: Conversation
) -> None:
    cookie = await session_cookie(owner)
    socket = communicator(conversation.id, cookie=cookie, origin=b"http://evil.example")
    allowed = communicator(conversation.id, cookie=cookie)

    connected, _ = await socket.connect()
    control, _ = await allowed.connect()

    assert not connected
    assert control  # the same user and cookie with the right origin gets in
    await allowed.disconnect()


async def test_client_messages_are_ignored_and_the_socket_stays_open(
    conversation: Conversation, owner_socket: WebsocketCommunicator
) -> None:
    reply_id = str(uuid.uuid4())

    await owner_socket.send_to(text_data='{"text": "hello?"}')
    await owner_socket.send_to(bytes_data=b"\x00\x01")
    await ChannelLayerPublisher().publish(
        conversation_group(str(conversation.id)),
        ReplyDelta(reply_id=reply_id, offset=0, delta="ok"),
    )

    frame = await owner_socket.receive_from(timeout=RECEIVE_TIMEOUT)
    assert frame == (
        f'<div id="stream-{reply_id}" class="body stream markdown" hx-swap-oob="true">'
        "<p>ok</p>\n</div>\n"
    )


async def test_a_socket_that_joins_during_a_rate_limit_wait_is_told_the_phase(
    worker: object,
    scripted_model: ScriptedModelServer,
    owner: AbstractBaseUser,
    conversation: Conversation,
) -> None:
    text = "hi while the model is busy"
    await scripted_model.add_rules({"match": text, "faults": [{"status": 429, "retry_after": 5}]})
    label = "The model is rate limited; trying again in 5 s…"
    await services.message_send(
        user=owner, conversation_id=conversation.id, message_id=uuid.uuid4(), text=text
    )

    async def waiting() -> temporal_client.LiveState | None:
        live = await temporal_client.conversation_live_state(conversation_id=str(conversation.id))
        return live if live is not None and live.phase == "waiting" else None

    live = await eventually(waiting)
    # A reload, or a reconnect after the network came back: the catch-up says what the
    # missed phase event said, in the live reply and in the status line.
    socket = communicator(conversation.id, cookie=await session_cookie(owner))
    connected, _ = await socket.connect()
    assert connected
    try:
        frame = await socket.receive_from(timeout=RECEIVE_TIMEOUT)
    finally:
        await socket.disconnect()

    live_reply, status = html_element(frame, "live-reply"), html_element(frame, "agent-status")
    assert live_reply is not None and status is not None
    assert f'data-reply="{live.reply_id}"' in live_reply
    assert " ".join(html_text(live_reply).split()) == label
    assert 'hx-swap-oob="true"' in status
    assert label in html_text(status)


async def test_a_reload_or_reconnect_while_a_reviewer_decides_shows_the_agent_at_work(
    temporal: TemporalClient, worker: object, owner: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, owner)
    cid = approval.conversation_id

    page = body(await (await logged_in(owner)).get(f"/c/{cid}/"))
    socket = communicator(cid, cookie=await session_cookie(owner))
    connected, _ = await socket.connect()
    assert connected
    try:
        frame = await socket.receive_from(timeout=RECEIVE_TIMEOUT)
    finally:
        await socket.disconnect()

    for shown in (page, frame):
        status = html_element(shown, "agent-status")
        assert status is not None
        assert 'class="agent-status working"' in status
        assert "Running the agent's tools…" in html_text(status)


async def test_a_request_made_before_the_socket_joined_is_sent_on_connect(
    temporal: TemporalClient, worker: object, owner: AbstractBaseUser
) -> None:
    """The page was rendered before the request and its push went to nobody: the socket
    sends the pending card when it joins (the browser de-duplicates cards by id)."""
    approval = await refund_requested(temporal, owner)
    socket = communicator(approval.conversation_id, cookie=await session_cookie(owner))
    connected, _ = await socket.connect()
    assert connected
    frames: list[str] = []
    try:
        while not any(f'id="approval-{approval.call_id}"' in frame for frame in frames):
            frames.append(await socket.receive_from(timeout=RECEIVE_TIMEOUT))
    finally:
        await socket.disconnect()
    card = next(frame for frame in frames if f'id="approval-{approval.call_id}"' in frame)
    assert 'hx-swap-oob="beforeend:#approvals"' in card
    assert "Waiting for a reviewer" in html_text(card)

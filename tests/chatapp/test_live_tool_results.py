"""Tool results reach the open page as each call finishes, not only after a reload."""

from __future__ import annotations

import re
import uuid

import pytest
from channels.testing import WebsocketCommunicator

from chatapp import services
from chatapp.models import Conversation, Message
from config.asgi import application
from tests.factories import auser_create
from tests.helpers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVE_TIMEOUT = 10.0


async def test_a_tool_result_shows_live_with_the_id_the_transcript_records(
    worker: object, demo_shop: None
) -> None:
    owner = await auser_create()
    conversation = await Conversation.objects.acreate(owner=owner, title="Live tools")
    socket = WebsocketCommunicator(
        application,
        f"/ws/c/{conversation.id}/",
        headers=[
            (b"origin", b"http://127.0.0.1:8000"),
            (b"host", b"127.0.0.1:8000"),
            (b"cookie", f"sessionid={await session_cookie(owner)}".encode()),
        ],
    )
    connected, _ = await socket.connect()
    assert connected
    try:
        await services.message_send(
            user=owner,
            conversation_id=conversation.id,
            message_id=uuid.uuid4(),
            text="status of order 1001",
        )
        frames: list[str] = []
        while not any('class="agent-status idle"' in frame for frame in frames):
            frames.append(await socket.receive_from(timeout=RECEIVE_TIMEOUT))
    finally:
        await socket.disconnect()

    shown = [i for i, f in enumerate(frames) if "Result of get_order" in f]
    # Live as the call finishes, and announced again once the next step recorded it (for
    # a page whose socket joined after the first push): one article id, so one copy.
    assert 1 <= len(shown) <= 2, frames
    tool_row = await Message.objects.aget(conversation=conversation, role="tool")
    assert all(f'id="msg-{tool_row.id}"' in frames[i] for i in shown)
    answer = await Message.objects.filter(conversation=conversation, role="assistant").alast()
    assert answer is not None
    frame = frames[shown[0]]
    # The same article the reload renders: the browser keeps one copy per id.
    assert f'id="msg-{tool_row.id}"' in frame
    assert 'hx-swap-oob="beforeend:#transcript"' in frame
    assert "1001" in re.sub(r"<[^>]+>", "", frame)
    # Before the model's answer to it is shown.
    final = next(i for i, f in enumerate(frames) if f'id="msg-{answer.id}"' in f)
    assert shown[0] < final

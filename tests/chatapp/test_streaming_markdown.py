"""A reply streams as sanitised, highlighted Markdown: never raw Markdown, never raw HTML."""

from __future__ import annotations

import re
import uuid

import pytest
from channels.testing import WebsocketCommunicator

from chatapp import services
from chatapp.models import Conversation, Message
from chatapp.rendering import close_open_marks, markdown_to_html
from config.asgi import application
from temporal_worker.scripted_model import ScriptedModelServer
from tests.factories import auser_create
from tests.helpers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVE_TIMEOUT = 10.0
REPLY = (
    "Here is **the fix**:\n\n```python\ndef total(items):\n    return sum(items)\n```\n\n"
    "<img src=x onerror=alert(1)> done."
)
STREAM_BODY = re.compile(r'<div id="stream-[0-9a-f-]{36}" class="body stream markdown"')


async def test_the_reply_streams_as_rendered_markdown(
    worker: object, scripted_model: ScriptedModelServer
) -> None:
    await scripted_model.add_rules(
        {"match": "markdown-stream-test", "chunk_delay_ms": 40, "reply": REPLY}
    )
    owner = await auser_create()
    conversation = await Conversation.objects.acreate(owner=owner, title="Markdown")
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
            text="markdown-stream-test",
        )
        frames: list[str] = []
        while not any('class="agent-status idle"' in frame for frame in frames):
            frames.append(await socket.receive_from(timeout=RECEIVE_TIMEOUT))
    finally:
        await socket.disconnect()

    reply = await Message.objects.aget(conversation=conversation, role="assistant")
    final = next(i for i, f in enumerate(frames) if f'id="msg-{reply.id}"' in f)
    streamed = [f for f in frames[:final] if STREAM_BODY.search(f)]
    assert len(streamed) >= 3, frames  # several partial renders, not one jump at the end
    # Bold is bold from the moment it closes; the raw marks never reach the page.
    assert any("<strong>the fix</strong>" in f for f in streamed)
    assert not any("**" in f for f in streamed)
    # The code block is highlighted with classes (a stylesheet colours them), while open.
    assert any('<pre class="highlight"><code class="language-python">' in f for f in streamed)
    assert any('<span class="k">def</span>' in f for f in streamed)
    assert not any("style=" in f for f in streamed)
    # HTML the model writes is text.
    assert "<img" not in "".join(frames)
    # The last render is what the recorded reply shows: nothing jumps when it lands.
    assert markdown_to_html(REPLY) in streamed[-1]


def test_highlighting_names_unknown_languages_without_failing() -> None:
    html = markdown_to_html("```nosuchlanguage\na < b\n```")
    assert html == '<pre><code class="language-nosuchlanguage">a &lt; b\n</code></pre>\n'


@pytest.mark.parametrize(
    ("partial", "shown"),
    [
        ("Here is **the f", "Here is **the f**"),
        ("Here is **", "Here is "),
        ("x **b ~~c", "x **b ~~c~~**"),
        ("a `code **x", "a `code **x`"),
        ("ok **done** and", "ok **done** and"),
        ("```py\nx = **", "```py\nx = **"),
        ("p1 **a\n\nq", "p1 **a\n\nq"),
    ],
)
def test_a_partial_reply_closes_its_open_marks(partial: str, shown: str) -> None:
    assert close_open_marks(partial) == shown

"""The inbox's side pane shows the conversation before a request: its last user and
assistant messages, oldest first, each cut to a readable length."""

from __future__ import annotations

import uuid

import pytest

from chatapp.models import Conversation, Message
from reviews import selectors
from tests.factories import auser_create

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_excerpt_is_the_latest_exchange_without_tool_results() -> None:
    alice = await auser_create()
    talk = await Conversation.objects.acreate(owner=alice, title="Refund talk")
    lines = [
        ("user", "hello"),
        ("assistant", "Hi, how can I help?"),
        ("user", "my order 1013 arrived broken"),
        ("tool", '{"order": 1013}'),
        ("assistant", ""),
        ("assistant", "Sorry about that. " + "x" * 500),
        ("user", "refund 60 on order 1013"),
    ]
    for seq, (role, content) in enumerate(lines):
        await Message.objects.acreate(
            id=uuid.uuid4(), conversation=talk, seq=seq, role=role, content=content
        )

    excerpt = await selectors.conversation_excerpt(conversation_id=str(talk.id), limit=4)

    assert [(line.role, line.text[:20]) for line in excerpt] == [
        ("assistant", "Hi, how can I help?"),
        ("user", "my order 1013 arrive"),
        ("assistant", "Sorry about that. xx"),
        ("user", "refund 60 on order 1"),
    ]
    assert [line.truncated for line in excerpt] == [False, False, True, False]
    assert len(excerpt[2].text) == selectors.EXCERPT_CHARS


async def test_no_excerpt_for_an_unknown_or_malformed_conversation() -> None:
    assert await selectors.conversation_excerpt(conversation_id=str(uuid.uuid4())) == []
    assert await selectors.conversation_excerpt(conversation_id="not-a-uuid") == []

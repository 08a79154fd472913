"""Conversation search on PostgreSQL: the full-text index the migration creates there,
through a web process, for what a worker process recorded."""

from __future__ import annotations

import re
import uuid

import pytest

from scripts.chat_client import ChatClient
from scripts.prod_stack import ProductionStack

pytestmark = pytest.mark.production


async def test_search_finds_a_recorded_reply_with_the_words_marked(
    prod: ProductionStack, alice: ChatClient, user_sessions: list[str]
) -> None:
    web_a, web_b = prod.web_urls
    word = f"quince{uuid.uuid4().hex[:8]}"
    conversation_id, socket = await alice.first_turn(web_a, web_b, f"Tell me about {word}")
    await socket.close()

    # Searched through the other web process: the index lives in the shared database.
    async with alice.session.get(f"{web_b}/search/", params={"q": word[:-2]}) as response:
        page = await response.text()
    assert response.status == 200, page

    links = set(re.findall(rf'href="/c/{conversation_id}/#msg-([0-9a-f-]{{36}})"', page))
    assert len(links) == 2, page  # the question and the reply that quotes it
    assert f"<mark>{word}</mark>" in page  # a prefix matches the whole word

    # Someone else finds nothing of alice's.
    other = ChatClient(prod.web_urls, behind_proxy=True, session_key=user_sessions[0])
    try:
        async with other.session.get(f"{web_a}/search/", params={"q": word}) as response:
            page = await response.text()
        assert response.status == 200, page
        assert conversation_id not in page
    finally:
        await other.close()

"""Conversation search: titles and message text, matches marked, links to the message;
the owner's conversations only, whatever is typed (SQLite FTS5 here; PostgreSQL in
tests/production/test_search_production.py)."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import AbstractBaseUser

from chatapp import services
from chatapp.models import Conversation, Message
from tests.factories import auser_create
from tests.helpers import body, eventually, html_element, html_text, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


async def _conversation(owner: AbstractBaseUser, title: str, *texts: str) -> Conversation:
    conversation = await Conversation.objects.acreate(owner=owner, title=title)
    for seq, text in enumerate(texts, start=1):
        await Message.objects.acreate(
            id=uuid.uuid4(),
            conversation=conversation,
            seq=seq,
            role="user" if seq % 2 else "assistant",
            content=text,
        )
    return conversation


async def _results(owner: AbstractBaseUser, query: str) -> str:
    page = body(await (await logged_in(owner)).get("/search/", {"q": query}))
    return html_element(page, "search-results") or ""


async def test_a_match_in_a_message_links_to_it_with_the_words_marked() -> None:
    owner = await auser_create()
    conversation = await _conversation(
        owner, "Shipping", "Where is my parcel?", "Your parcel left the depot on Monday."
    )
    answer = await Message.objects.aget(conversation=conversation, seq=2)

    results = await _results(owner, "depot monday")

    assert f'href="/c/{conversation.id}/#msg-{answer.id}"' in results
    assert "<mark>depot</mark>" in results and "<mark>Monday</mark>" in results
    assert "Where is my parcel" not in results  # the question does not mention the depot


async def test_titles_match_and_a_prefix_finds_the_word_being_typed() -> None:
    owner = await auser_create()
    conversation = await _conversation(owner, "Returns policy", "hello")

    results = await _results(owner, "retur")

    assert f'href="/c/{conversation.id}/"' in results
    assert "<mark>Retur</mark>ns policy" in results


async def test_edits_and_deletions_reach_the_index() -> None:
    owner = await auser_create()
    conversation = await _conversation(owner, "Index", "the word is aubergine")
    message = await Message.objects.aget(conversation=conversation)

    message.content = "the word is courgette"
    await message.asave(update_fields=["content"])
    assert await _results(owner, "aubergine") == ""
    assert "courgette" in await _results(owner, "courgette")

    await message.adelete()
    assert await _results(owner, "courgette") == ""


async def test_messages_the_worker_records_are_found(worker: object) -> None:
    owner = await auser_create()
    cid = uuid.uuid4()
    await services.message_send(
        user=owner, conversation_id=cid, message_id=uuid.uuid4(), text="kumquat inventory"
    )

    async def reply_found() -> str:
        results = await _results(owner, "kumquat")
        return results if "Agent:" in results else ""

    # The reply quotes the message: both rows went in through the transcript's upsert.
    results = await eventually(reply_found, timeout=30)
    assert "You:" in results
    assert f"/c/{cid}/#msg-" in results


async def test_only_the_owners_conversations_are_searched() -> None:
    owner, other = await auser_create(), await auser_create()
    await _conversation(other, "Secret plans", "the secret password is swordfish")

    assert await _results(owner, "swordfish") == ""
    assert await _results(owner, "secret") == ""
    assert "swordfish" in await _results(other, "swordfish")


@pytest.mark.parametrize(
    "query", ['"unbalanced', "NEAR(a b)", "content:x", "-minus", "a*", "())", "ünïcödé"]
)
async def test_query_syntax_is_taken_as_words(query: str) -> None:
    owner = await auser_create()
    await _conversation(owner, "Words", "near content minus ünïcödé unbalanced")

    response = await (await logged_in(owner)).get("/search/", {"q": query})

    assert response.status_code == 200


async def test_message_text_stays_text_in_results() -> None:
    owner = await auser_create()
    await _conversation(owner, "<b>x</b>", "try <img src=x onerror=alert(1)> zucchini")

    results = await _results(owner, "zucchini")

    assert "<img" not in results and "<b>" not in results
    # The snippet is cut around the match (by word on PostgreSQL), always escaped.
    assert "onerror=alert(1)&gt; <mark>zucchini</mark>" in results


async def test_an_empty_or_too_long_query_is_explained() -> None:
    owner = await auser_create()
    client = await logged_in(owner)

    empty = body(await client.get("/search/", {"q": "   "}))
    too_long = body(await client.get("/search/", {"q": "x" * 201}))

    assert html_element(empty, "search-results") is None
    assert "Search for at most 200 characters." in html_text(too_long)

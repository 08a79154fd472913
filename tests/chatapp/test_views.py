"""The chat pages and htmx endpoints, against a real Temporal server, worker and scripted model."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from django.test import AsyncClient
from django.utils.html import escape

from chatapp.models import Conversation, Message
from temporal_worker import client as temporal_client
from temporal_worker.scripted_model import ScriptedModelServer
from tests.factories import auser_create
from tests.helpers import body, eventually, html_element, html_text, input_values, logged_in

pytestmark = pytest.mark.django_db(transaction=True)

SEND_URL = "/c/send/"
SLOW = "slowly"  # messages containing this word stream at 100 ms per chunk


def conversation_url(conversation_id: uuid.UUID | str) -> str:
    return f"/c/{conversation_id}/"


def htmx(current_path: str) -> dict[str, str]:
    return {"HX-Request": "true", "HX-Current-URL": f"http://testserver{current_path}"}


def composer_ids(page: str) -> tuple[str, str]:
    composer = html_element(page, "composer")
    assert composer is not None, "no composer on the page"
    values = input_values(composer)
    return values["conversation_id"], values["message_id"]


@dataclass
class Started:
    conversation_id: str
    message_id: str
    url: str


async def start_conversation(client: AsyncClient, text: str) -> Started:
    """Send the first message from the home page's composer, as the browser does."""
    home = await client.get("/")
    conversation_id, message_id = composer_ids(body(home))
    response = await client.post(
        SEND_URL,
        {"conversation_id": conversation_id, "message_id": message_id, "text": text},
        headers=htmx("/"),
    )
    url = conversation_url(conversation_id)
    assert response.status_code == 200, body(response)
    assert response.headers.get("HX-Redirect") == url
    return Started(conversation_id=conversation_id, message_id=message_id, url=url)


async def replies(conversation_id: str) -> list[Message]:
    return [
        m
        async for m in Message.objects.filter(
            conversation_id=conversation_id, role=Message.Role.ASSISTANT
        ).order_by("seq")
    ]


async def wait_for_replies(conversation_id: str, count: int = 1) -> list[Message]:
    async def enough() -> list[Message] | None:
        found = await replies(conversation_id)
        return found if len(found) >= count else None

    return await eventually(enough)


async def wait_for_streamed_text(conversation_id: str) -> temporal_client.LiveState:
    async def streaming() -> temporal_client.LiveState | None:
        live = await temporal_client.conversation_live_state(conversation_id=conversation_id)
        return live if live and live.status == "thinking" and live.partial_text else None

    return await eventually(streaming)


async def wait_until_idle(conversation_id: str) -> None:
    async def idle() -> bool:
        live = await temporal_client.conversation_live_state(conversation_id=conversation_id)
        return live is not None and live.status == "idle" and live.queued == 0

    await eventually(idle)


async def slow_stream(scripted_model: ScriptedModelServer) -> None:
    await scripted_model.add_rules({"match": SLOW, "chunk_delay_ms": 100})


# --- pages -----------------------------------------------------------------------


async def test_anonymous_visitor_is_sent_to_login() -> None:
    client = AsyncClient()

    page = await client.get("/")
    send = await client.post(
        SEND_URL, {"conversation_id": uuid.uuid4(), "message_id": uuid.uuid4(), "text": "hi"}
    )

    assert page.status_code == 302
    assert page.headers["Location"] == "/accounts/login/?next=/"
    assert send.status_code == 302
    assert send.headers["Location"].startswith("/accounts/login/")
    assert await Conversation.objects.acount() == 0


async def test_home_renders_the_composer_with_fresh_hidden_ids() -> None:
    client = await logged_in(await auser_create())

    first = await client.get("/")
    second = await client.get("/")

    assert first.status_code == 200
    composer = html_element(body(first), "composer")
    assert composer is not None
    assert 'hx-post="/c/send/"' in composer
    assert '<textarea name="text"' in composer
    assert 'type="hidden" name="conversation_id"' in composer
    assert 'type="hidden" name="message_id"' in composer
    conversation_id, message_id = composer_ids(body(first))
    uuid.UUID(conversation_id)
    uuid.UUID(message_id)
    assert conversation_id != message_id
    assert composer_ids(body(second)) != (conversation_id, message_id)
    # htmx refuses to send a form whose hx-target is missing from the page.
    assert 'hx-target="#transcript"' in composer
    assert html_element(body(first), "transcript") is not None


# --- sending ---------------------------------------------------------------------


async def test_first_message_redirects_to_the_conversation_which_shows_the_reply(
    worker: object,
) -> None:
    client = await logged_in(await auser_create())

    started = await start_conversation(client, "Hello agent, what can you do?")

    async def page_with_reply() -> str | None:
        page = body(await client.get(started.url))
        transcript = html_element(page, "transcript") or ""
        return page if "Scripted demo model" in html_text(transcript) else None

    page = await eventually(page_with_reply)
    transcript = html_element(page, "transcript") or ""
    user_message = html_element(transcript, f"msg-{started.message_id}")
    assert user_message is not None
    assert "Hello agent, what can you do?" in html_text(user_message)
    (reply,) = await replies(started.conversation_id)
    assert html_element(transcript, f"msg-{reply.id}") is not None
    assert transcript.index(f"msg-{started.message_id}") < transcript.index(f"msg-{reply.id}")
    sidebar = html_element(page, "sidebar") or ""
    assert "Hello agent, what can you do?" in html_text(sidebar)


async def test_later_message_returns_the_message_and_a_fresh_composer(worker: object) -> None:
    client = await logged_in(await auser_create())
    started = await start_conversation(client, "First question")
    await wait_for_replies(started.conversation_id)
    page = body(await client.get(started.url))
    conversation_id, message_id = composer_ids(page)
    assert conversation_id == started.conversation_id
    assert message_id != started.message_id

    response = await client.post(
        SEND_URL,
        {"conversation_id": conversation_id, "message_id": message_id, "text": "Second question"},
        headers=htmx(started.url),
    )

    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers
    fragment = body(response)
    message = html_element(fragment, f"msg-{message_id}")
    assert message is not None
    assert "Second question" in html_text(message)
    assert 'class="msg user' in message
    composer = html_element(fragment, "composer")
    assert composer is not None
    assert 'hx-swap-oob="true"' in composer
    fresh_conversation_id, fresh_message_id = composer_ids(fragment)
    assert fresh_conversation_id == conversation_id
    assert fresh_message_id not in (message_id, started.message_id)
    uuid.UUID(fresh_message_id)
    second_reply = (await wait_for_replies(conversation_id, 2))[1]
    assert "Second question" in second_reply.content


async def test_the_same_message_id_twice_is_shown_and_stored_once(worker: object) -> None:
    client = await logged_in(await auser_create())
    started = await start_conversation(client, "Opening message")
    await wait_for_replies(started.conversation_id)
    message_id = str(uuid.uuid4())
    form = {
        "conversation_id": started.conversation_id,
        "message_id": message_id,
        "text": "Sent twice by a double click",
    }

    first = await client.post(SEND_URL, form, headers=htmx(started.url))
    second = await client.post(SEND_URL, form, headers=htmx(started.url))
    # The first message of a conversation, submitted again from the home page.
    again = await client.post(
        SEND_URL,
        {
            "conversation_id": started.conversation_id,
            "message_id": started.message_id,
            "text": "Opening message",
        },
        headers=htmx("/"),
    )

    assert first.status_code == second.status_code == again.status_code == 200
    assert html_element(body(first), f"msg-{message_id}") is not None
    assert again.headers.get("HX-Redirect") == started.url
    await wait_for_replies(started.conversation_id, 2)
    await wait_until_idle(started.conversation_id)
    page = body(await client.get(started.url))
    assert page.count(f'id="msg-{message_id}"') == 1
    assert page.count(f'id="msg-{started.message_id}"') == 1
    users = Message.objects.filter(conversation_id=started.conversation_id, role="user")
    assert [m.content async for m in users.order_by("seq")] == [
        "Opening message",
        "Sent twice by a double click",
    ]
    assert len(await replies(started.conversation_id)) == 2


async def test_the_repeated_post_of_a_message_does_not_render_it_again(worker: object) -> None:
    client = await logged_in(await auser_create())
    started = await start_conversation(client, "Opening message")
    await wait_for_replies(started.conversation_id)
    form = {
        "conversation_id": started.conversation_id,
        "message_id": str(uuid.uuid4()),
        "text": "Sent twice by a double click",
    }

    await client.post(SEND_URL, form, headers=htmx(started.url))
    second = await client.post(SEND_URL, form, headers=htmx(started.url))

    assert html_element(body(second), f"msg-{form['message_id']}") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "A message cannot be empty."),
        ("   \n  ", "A message cannot be empty."),
        ("x" * 8001, "A message can be at most 8,000 characters (this one has 8,001)."),
    ],
    ids=["empty", "blank", "oversized"],
)
async def test_invalid_text_rerenders_the_composer_with_the_error(text: str, error: str) -> None:
    client = await logged_in(await auser_create())
    conversation_id, message_id = composer_ids(body(await client.get("/")))
    form = {"conversation_id": conversation_id, "message_id": message_id, "text": text}

    response = await client.post(SEND_URL, form, headers=htmx("/"))
    plain = await client.post(SEND_URL, form)

    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#composer"
    assert response.headers["HX-Reswap"] == "outerHTML"
    fragment = body(response)
    composer = html_element(fragment, "composer")
    assert composer is not None
    assert error in html_text(html_element(composer, "composer-error") or "")
    textarea = composer[composer.index("<textarea") :]
    assert html_text(textarea[: textarea.index("</textarea>")]).endswith(text)
    assert composer_ids(fragment) == (conversation_id, message_id)
    assert plain.status_code == 422
    assert error in body(plain)
    assert not await Conversation.objects.filter(id=conversation_id).aexists()


# --- someone else's conversation ---------------------------------------------------


async def test_another_users_conversation_is_not_found(worker: object) -> None:
    owner_client = await logged_in(await auser_create())
    started = await start_conversation(owner_client, "Private matter")
    await wait_for_replies(started.conversation_id)
    intruder = await logged_in(await auser_create())
    url = started.url

    responses = {
        "page": await intruder.get(url),
        "stop": await intruder.post(f"{url}stop/", headers=htmx(url)),
        "retry": await intruder.post(f"{url}retry/{uuid.uuid4()}/", headers=htmx(url)),
        "rename": await intruder.post(f"{url}rename/", {"title": "Mine now"}, headers=htmx(url)),
        "archive": await intruder.post(f"{url}archive/", headers=htmx(url)),
        "send": await intruder.post(
            SEND_URL,
            {
                "conversation_id": started.conversation_id,
                "message_id": str(uuid.uuid4()),
                "text": "Let me in",
            },
            headers=htmx(url),
        ),
    }

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(responses, 404)
    conversation = await Conversation.objects.aget(id=started.conversation_id)
    assert conversation.title == "Private matter"
    assert not conversation.is_archived
    assert not await Message.objects.filter(content="Let me in").aexists()
    live = await temporal_client.conversation_live_state(conversation_id=started.conversation_id)
    assert live is not None and live.status == "idle" and live.queued == 0


# --- live answers ------------------------------------------------------------------


async def test_page_loaded_mid_answer_shows_the_partial_reply(
    worker: object, scripted_model: ScriptedModelServer
) -> None:
    await slow_stream(scripted_model)
    client = await logged_in(await auser_create())
    started = await start_conversation(client, f"Answer {SLOW} please")
    live = await wait_for_streamed_text(started.conversation_id)

    page = body(await client.get(started.url))

    stream = html_element(page, f"stream-{live.reply_id}")
    assert stream is not None, "the page has no live reply element"
    # The text so far as formatted Markdown, as the live page shows it: no raw marks.
    assert "<strong>Scripted demo model.</strong>" in stream
    assert "**" not in stream
    status = html_element(page, "agent-status") or ""
    assert "thinking" in status and "Stop" in html_text(status)
    assert not await replies(started.conversation_id)  # still streaming: not yet recorded

    await client.post(f"{started.url}stop/", headers=htmx(started.url))
    await wait_until_idle(started.conversation_id)


async def test_stop_keeps_the_partial_text(
    worker: object, scripted_model: ScriptedModelServer
) -> None:
    await slow_stream(scripted_model)
    client = await logged_in(await auser_create())
    started = await start_conversation(client, f"Answer {SLOW} and at length")
    live = await wait_for_streamed_text(started.conversation_id)

    response = await client.post(f"{started.url}stop/", headers=htmx(started.url))

    assert response.status_code == 200
    assert "Stopping" in body(response)
    (reply,) = await wait_for_replies(started.conversation_id)
    assert reply.id == uuid.UUID(live.reply_id)
    assert reply.status == Message.Status.STOPPED
    await wait_until_idle(started.conversation_id)
    page = body(await client.get(started.url))
    message = html_element(page, f"msg-{reply.id}")
    assert message is not None
    assert 'class="msg assistant stopped"' in message
    assert "Stopped" in html_text(message)
    assert "Scripted demo model" in html_text(message)
    assert reply.content.startswith(live.partial_text)
    assert "to see tool calls" not in reply.content  # the end of the full scripted reply
    assert html_element(page, f"stream-{reply.id}") is None


# --- rename, archive -------------------------------------------------------------


async def test_rename_updates_the_title_and_the_sidebar(worker: object) -> None:
    client = await logged_in(await auser_create())
    started = await start_conversation(client, "Something about orders")
    await wait_for_replies(started.conversation_id)
    new_title = "Refunds & <returns>"

    response = await client.post(
        f"{started.url}rename/", {"title": f"  {new_title} "}, headers=htmx(started.url)
    )

    assert response.status_code == 200
    fragment = body(response)
    assert html_text(html_element(fragment, "conversation-title") or "").count(new_title) == 1
    sidebar = html_element(fragment, "sidebar")
    assert sidebar is not None and 'hx-swap-oob="true"' in sidebar
    assert new_title in html_text(sidebar)
    assert "<returns>" not in fragment  # escaped, never markup
    page = body(await client.get(started.url))
    heading = html_element(page, "conversation-title") or ""
    assert f"<h1>{escape(new_title)}</h1>" in heading
    assert new_title in html_text(html_element(page, "sidebar") or "")
    assert "Something about orders" not in html_text(html_element(page, "sidebar") or "")
    assert (await Conversation.objects.aget(id=started.conversation_id)).title == new_title


async def test_archived_conversation_is_read_only(worker: object) -> None:
    client = await logged_in(await auser_create())
    started = await start_conversation(client, "Wrap this up")
    await wait_for_replies(started.conversation_id)

    archived = await client.post(f"{started.url}archive/", headers=htmx(started.url))

    assert archived.status_code == 200
    assert archived.headers.get("HX-Redirect") == "/"
    page = body(await client.get(started.url))
    assert html_element(page, "composer") is None
    assert "This conversation is archived and read-only." in html_text(page)
    assert "Wrap this up" in html_text(html_element(page, "transcript") or "")
    home = body(await client.get("/"))
    assert "Wrap this up" not in html_text(html_element(home, "sidebar") or "")

    refused = await client.post(
        SEND_URL,
        {
            "conversation_id": started.conversation_id,
            "message_id": str(uuid.uuid4()),
            "text": "One more thing",
        },
        headers=htmx(started.url),
    )

    assert refused.status_code == 200
    assert refused.headers["HX-Retarget"] == "#composer"
    composer = html_element(body(refused), "composer") or ""
    error = html_text(html_element(composer, "composer-error") or "")
    assert "This conversation is archived; start a new one." in error
    assert "One more thing" in composer
    assert not await Message.objects.filter(content="One more thing").aexists()


# --- rendering -------------------------------------------------------------------


async def test_markdown_is_rendered_and_sanitised(worker: object) -> None:
    client = await logged_in(await auser_create())
    hostile = (
        "Look <script>alert(1)</script> at [x](javascript:alert(1)) "
        "and [docs](https://example.com/docs)"
    )
    started = await start_conversation(client, hostile)
    (reply,) = await wait_for_replies(started.conversation_id)

    page = body(await client.get(started.url))

    user_message = html_element(page, f"msg-{started.message_id}")
    assert user_message is not None
    assert "<script" not in user_message
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in user_message
    assert "<a " not in user_message
    reply_html = html_element(page, f"msg-{reply.id}")
    assert reply_html is not None
    assert "<strong>Scripted demo model.</strong>" in reply_html  # markdown rendered
    assert "<ul>" in reply_html
    assert "<script" not in reply_html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in reply_html  # shown, inert
    assert 'href="javascript' not in reply_html.lower()
    assert (
        '<a href="https://example.com/docs" rel="noopener noreferrer nofollow">docs</a>'
        in reply_html
    )


async def test_the_same_message_id_with_other_text_is_refused_clearly(worker: object) -> None:
    client = await logged_in(await auser_create())
    started = await start_conversation(client, "Opening message")
    await wait_for_replies(started.conversation_id)
    message_id = str(uuid.uuid4())
    form = {"conversation_id": started.conversation_id, "message_id": message_id}

    sent = await client.post(SEND_URL, {**form, "text": "First text"}, headers=htmx(started.url))
    changed = await client.post(SEND_URL, {**form, "text": "Other text"}, headers=htmx(started.url))

    assert html_element(body(sent), f"msg-{message_id}") is not None
    assert changed.headers["HX-Retarget"] == "#composer"
    error = html_text(html_element(body(changed), "composer-error") or "")
    assert "already sent with different text" in error
    await wait_for_replies(started.conversation_id, 2)
    await wait_until_idle(started.conversation_id)
    users = Message.objects.filter(conversation_id=started.conversation_id, role="user")
    assert [m.content async for m in users.order_by("seq")] == ["Opening message", "First text"]


async def test_a_message_sent_during_a_turn_waits_at_the_end_marked_queued(
    worker: object, scripted_model: ScriptedModelServer
) -> None:
    await slow_stream(scripted_model)
    client = await logged_in(await auser_create())
    # A turn of several steps (the model calls a tool four times, slowly).
    started = await start_conversation(client, f"[[loop 4]] {SLOW}")

    async def a_step_done() -> bool:
        return await Message.objects.filter(
            conversation_id=started.conversation_id, role="tool"
        ).aexists()

    await eventually(a_step_done)
    queued_id = str(uuid.uuid4())
    sent = await client.post(
        SEND_URL,
        {"conversation_id": started.conversation_id, "message_id": queued_id, "text": "And then?"},
        headers=htmx(started.url),
    )
    reloaded = body(await client.get(started.url))

    assert "Queued" in html_text(html_element(body(sent), f"msg-{queued_id}") or "")
    transcript = html_element(reloaded, "transcript") or ""
    queued = html_element(transcript, f"msg-{queued_id}") or ""
    assert "Queued: answered after the current reply." in html_text(queued)
    # The last message of the conversation, not among the steps of the turn in progress.
    assert re.findall(r'<article id="msg-([0-9a-f-]+)"', transcript)[-1] == queued_id
    await wait_for_replies(started.conversation_id, 2)
    await wait_until_idle(started.conversation_id)
    rows = Message.objects.filter(conversation_id=started.conversation_id).order_by("seq")
    roles = [(m.role, str(m.id) if m.role == "user" else "") async for m in rows]
    # The whole first turn (four tool steps and the answer), then the queued question.
    assert roles[0] == ("user", started.message_id)
    asked_at = roles.index(("user", queued_id))
    assert [role for role, _ in roles[1:asked_at]] == ["assistant", "tool"] * 4 + ["assistant"]
    assert [role for role, _ in roles[asked_at + 1 :]] == ["assistant"]
    done = html_element(body(await client.get(started.url)), f"msg-{queued_id}") or ""
    assert "Queued" not in html_text(done)

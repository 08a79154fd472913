"""Hostile text renders inert everywhere it is shown: a user's message, the assistant's
Markdown, a tool's arguments and result, and a reviewer's reason, in the chat page, its
websocket, the reviewer dashboard (page, detail, history, socket) and the admin.

Real rendered pages from a real worker and the scripted model. Each check asserts both
that the payload reached the page (as text) and that nothing in the page would run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser
from django.test import AsyncClient
from temporalio.client import Client as TemporalClient

from chatapp.models import Message
from chatapp.rendering import markdown_to_html
from reviews.models import Approval
from shop.models import Refund
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.scripted_model import ScriptedModelServer
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import (
    order_create,
    refund_requested,
    reviewer_create,
    row_id,
)
from tests.factories import auser_create
from tests.helpers import (
    body,
    eventually,
    html_element,
    html_text,
    logged_in,
    session_cookie,
)
from tests.security.support import (
    admin_create,
    conversation_start,
    executable_markup,
    htmx,
    send,
    websocket,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_leftover_approvals"),
]

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
JS_LINK = '<a href="javascript:alert(1)">link</a>'
MD_LINK = "[md link](javascript:alert(1))"
SVG = '"><svg onload=alert(1)>'
PAYLOAD = " ".join([SCRIPT, IMG, JS_LINK, MD_LINK, SVG])
# What must be visible, as text, where the payload is shown in full.
SHOWN = [SCRIPT, IMG]
HOSTILE_MARKDOWN = f"""Here you go:

{SCRIPT}

<div onclick="alert(1)">raw block</div>

{IMG} {JS_LINK} {SVG}

[a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) [c](java&#09;script:alert(1))
![d](javascript:alert(1)) <javascript:alert(1)> [e](data:text/html,<script>alert(1)</script>)

[f]: javascript:alert(1)
[g][f]

<iframe srcdoc="{SCRIPT}"></iframe><style>body{{display:none}}</style>
"""
RECEIVE_TIMEOUT = 15.0


def assert_inert(html: str, where: str, *, shows: list[str] | None = None) -> None:
    assert executable_markup(html) == [], where
    text = html_text(html)
    for piece in shows or []:
        assert piece in text, f"{where}: {piece!r} is not shown as text"


async def frames_until(socket: WebsocketCommunicator, done: Callable[[str], bool]) -> list[str]:
    frames: list[str] = []
    while not frames or not done(frames[-1]):
        frames.append(await socket.receive_from(timeout=RECEIVE_TIMEOUT))
    return frames


async def messages_of(conversation_id: str) -> list[Message]:
    rows = Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    return [m async for m in rows]


async def answered(conversation_id: str, count: int) -> list[Message]:
    """The transcript once `count` assistant messages with text are recorded."""

    async def probe() -> list[Message] | None:
        messages = await messages_of(conversation_id)
        answers = [m for m in messages if m.role == Message.Role.ASSISTANT and m.content]
        return messages if len(answers) >= count else None

    return await eventually(probe)


async def admin_pages(urls: list[str]) -> dict[str, str]:
    client = await logged_in(await admin_create())
    pages = {}
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        pages[url] = body(response)
    return pages


@pytest.mark.parametrize(
    "markdown",
    [
        PAYLOAD,
        HOSTILE_MARKDOWN,
        "<a href='jav&#x09;ascript:alert(1)'>x</a>",
        "[x](&#106;avascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        '<img src="x" onerror="alert(1)">',
        "<svg><script>alert(1)</script></svg>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        '<form action="javascript:alert(1)"><button>x</button></form>',
        "`<script>alert(1)</script>`\n\n```html\n<script>alert(1)</script>\n```",
        "<details open ontoggle=alert(1)>",
        '<a href="#" hx-get="/c/send/" hx-trigger="load">x</a>',
        '<div hx-on:click="alert(1)">x</div>',
    ],
)
def test_markdown_rendering_leaves_nothing_executable(markdown: str) -> None:
    html = markdown_to_html(markdown)

    assert executable_markup(html) == []
    # htmx attributes would make the browser fetch or post on the reader's behalf.
    assert not re.search(r"<[^>]*\shx-", html)


async def test_a_users_message_and_the_assistants_markdown_render_inert(
    worker: object, scripted_model: ScriptedModelServer
) -> None:
    await scripted_model.add_rules({"match": "markdown please", "reply": HOSTILE_MARKDOWN})
    user = await auser_create()
    client = await logged_in(user)
    conversation_id = await conversation_start(client, PAYLOAD)
    await answered(conversation_id, 1)
    socket = websocket(f"/ws/c/{conversation_id}/", cookie=await session_cookie(user))
    assert (await socket.connect())[0]
    try:
        message_id = str(uuid.uuid4())
        sent = await send(
            client, conversation_id=conversation_id, message_id=message_id, text="markdown please"
        )
        frames = await frames_until(
            socket, lambda f: "beforeend:#transcript" in f and "Here you go" in f
        )
    finally:
        await socket.disconnect()
    messages = await answered(conversation_id, 2)
    first, echo, _second, hostile = messages

    assert_inert(body(sent), "the send response")
    assert_inert("".join(frames), "the conversation socket", shows=["<div onclick"])
    page = body(await client.get(f"/c/{conversation_id}/"))
    assert_inert(page, "the chat page", shows=SHOWN)
    user_html = html_element(page, f"msg-{first.id}") or ""
    assert_inert(user_html, "the user's message", shows=[PAYLOAD])
    echo_html = html_element(page, f"msg-{echo.id}") or ""
    assert_inert(echo_html, "the assistant's echo", shows=[SCRIPT, IMG, MD_LINK])
    hostile_html = html_element(page, f"msg-{hostile.id}") or ""
    assert_inert(hostile_html, "the assistant's raw-HTML Markdown", shows=[SCRIPT, "raw block"])
    assert "<iframe" not in hostile_html and "<style" not in hostile_html
    sidebar = html_element(page, "sidebar") or ""
    assert_inert(sidebar, "the sidebar's title", shows=[SCRIPT])

    pages = await admin_pages(
        [
            f"/admin/chatapp/conversation/{conversation_id}/change/",
            "/admin/chatapp/conversation/",
            f"/admin/chatapp/message/{first.id}/change/",
            f"/admin/chatapp/message/{hostile.id}/change/",
            "/admin/chatapp/message/",
        ]
    )
    for url, html in pages.items():
        assert_inert(html, url)
    assert_inert(pages[f"/admin/chatapp/message/{first.id}/change/"], "admin", shows=[PAYLOAD])
    assert_inert(pages[f"/admin/chatapp/conversation/{conversation_id}/change/"], "", shows=SHOWN)


async def test_a_tool_argument_renders_inert_on_the_dashboard_the_chat_and_the_admin(
    temporal: TemporalClient, worker: object
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    reviewer = await logged_in(rita)
    reviewers_socket = websocket("/ws/reviews/", cookie=await session_cookie(rita))
    assert (await reviewers_socket.connect())[0]
    client = await logged_in(customer)
    order = await order_create()
    try:
        conversation_id = await conversation_start(
            client, f"refund 120 on order {order.number} {PAYLOAD}"
        )
        inserted = await frames_until(reviewers_socket, lambda f: "#approval-rows" in f)
    finally:
        await reviewers_socket.disconnect()
    handle = temporal.get_workflow_handle(conversation_workflow_id(conversation_id))
    (approval,) = (await handle.query(ConversationWorkflow.pending_approvals)).items
    assert SCRIPT in approval.arguments  # the reason argument carries the payload
    await eventually(lambda: Approval.objects.filter(call_id=approval.call_id).aexists())

    assert_inert(inserted[-1], "the reviewers' socket", shows=SHOWN)
    dashboard = body(await reviewer.get("/reviews/"))
    assert_inert(dashboard, "the dashboard", shows=SHOWN)
    assert_inert(html_element(dashboard, row_id(approval)) or "", "the row", shows=SHOWN)
    detail_url = f"/reviews/{conversation_id}/{approval.call_id}/"
    assert_inert(body(await reviewer.get(detail_url)), "the detail page", shows=SHOWN)
    chat = body(await client.get(f"/c/{conversation_id}/"))
    assert_inert(chat, "the chat page", shows=SHOWN)
    card = html_element(chat, f"approval-{approval.call_id}")
    assert card is not None, "the approval card is on the chat page"
    assert_inert(card, "the approval card")

    decided = await reviewer.post(
        f"{detail_url}decide/",
        {"action": "approve", "arguments_hash": approval.arguments_hash},
        headers=htmx("/reviews/", target=f"{row_id(approval)}-result"),
    )
    assert "Approved" in html_text(body(decided))
    assert_inert(body(decided), "the decision's answer")
    await answered(conversation_id, 2)
    refund = await Refund.objects.aget(conversation_id=conversation_id)
    assert SCRIPT in refund.reason
    await eventually(
        lambda: Approval.objects.filter(call_id=approval.call_id, status="approved").aexists()
    )
    mirror = await Approval.objects.aget(call_id=approval.call_id)

    history = body(await reviewer.get("/reviews/history/"))
    assert_inert(history, "the history page", shows=SHOWN)
    assert_inert(body(await client.get(f"/c/{conversation_id}/")), "the chat page after")
    pages = await admin_pages(
        [
            "/admin/shop/refund/",
            f"/admin/shop/refund/{refund.pk}/change/",
            f"/admin/shop/order/{order.pk}/change/",
            "/admin/reviews/approval/",
            f"/admin/reviews/approval/{mirror.pk}/change/",
        ]
    )
    for url, html in pages.items():
        assert_inert(html, url)
    assert_inert(pages[f"/admin/shop/refund/{refund.pk}/change/"], "admin refund", shows=SHOWN)
    assert_inert(pages[f"/admin/reviews/approval/{mirror.pk}/change/"], "admin", shows=SHOWN)


async def test_a_tool_result_renders_inert_in_the_chat_its_socket_and_the_admin(
    worker: object,
) -> None:
    user = await auser_create()
    client = await logged_in(user)
    conversation_id = await conversation_start(client, "Hello")
    await answered(conversation_id, 1)
    socket = websocket(f"/ws/c/{conversation_id}/", cookie=await session_cookie(user))
    assert (await socket.connect())[0]
    try:
        await send(
            client,
            conversation_id=conversation_id,
            message_id=uuid.uuid4(),
            text=f"help with {PAYLOAD}",
        )
        frames = await frames_until(
            socket, lambda f: "beforeend:#transcript" in f and "Results from" in f
        )
    finally:
        await socket.disconnect()
    messages = await answered(conversation_id, 3)
    tool = next(m for m in messages if m.role == Message.Role.TOOL)
    assert tool.tool_name == "search_help"
    assert SCRIPT in tool.content  # the search's result echoes the query

    assert_inert("".join(frames), "the conversation socket", shows=SHOWN)
    page = body(await client.get(f"/c/{conversation_id}/"))
    assert_inert(page, "the chat page", shows=SHOWN)
    assert_inert(html_element(page, f"msg-{tool.id}") or "", "the tool result", shows=SHOWN)
    pages = await admin_pages([f"/admin/chatapp/message/{tool.id}/change/"])
    for url, html in pages.items():
        assert_inert(html, url, shows=SHOWN)


async def test_a_reviewers_reason_renders_inert_in_the_chat_the_history_and_the_admin(
    temporal: TemporalClient, worker: object
) -> None:
    customer = await auser_create()
    client = await logged_in(customer)
    reviewer: AbstractBaseUser = await reviewer_create()
    approval = await refund_requested(temporal, customer)
    socket = websocket(f"/ws/c/{approval.conversation_id}/", cookie=await session_cookie(customer))
    assert (await socket.connect())[0]
    try:
        rejected = await (await logged_in(reviewer)).post(
            f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/",
            {"action": "reject", "reason": PAYLOAD, "arguments_hash": approval.arguments_hash},
            headers=htmx("/reviews/", target=f"{row_id(approval)}-result"),
        )
        frames = await frames_until(socket, lambda f: "approval-outcome-" in f)
    finally:
        await socket.disconnect()
    assert "Rejected" in html_text(body(rejected))
    await answered(approval.conversation_id, 2)
    await eventually(
        lambda: Approval.objects.filter(call_id=approval.call_id, status="rejected").aexists()
    )
    mirror = await Approval.objects.aget(call_id=approval.call_id)
    assert mirror.decision_reason == PAYLOAD
    reviewer_client: AsyncClient = await logged_in(reviewer)

    assert_inert(body(rejected), "the decision's answer")
    assert_inert(frames[-1], "the outcome on the conversation socket", shows=[PAYLOAD])
    page = body(await client.get(f"/c/{approval.conversation_id}/"))
    assert_inert(page, "the chat page", shows=[PAYLOAD])
    history = body(await reviewer_client.get("/reviews/history/?status=rejected"))
    assert_inert(history, "the history page", shows=[PAYLOAD])
    detail = body(
        await reviewer_client.get(f"/reviews/{approval.conversation_id}/{approval.call_id}/")
    )
    assert_inert(detail, "the detail page", shows=[PAYLOAD])
    pages = await admin_pages(
        ["/admin/reviews/approval/", f"/admin/reviews/approval/{mirror.pk}/change/"]
    )
    for url, html in pages.items():
        assert_inert(html, url)
    assert_inert(pages[f"/admin/reviews/approval/{mirror.pk}/change/"], "admin", shows=[PAYLOAD])

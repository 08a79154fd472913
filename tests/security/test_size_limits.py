"""Every input has a size limit: an oversized value is refused with a clear error and
nothing is stored; a value at the limit is accepted (so each limit is where it says).

Also the limits below the forms: Django's request body and field-count limits, and
daphne's websocket message limit (through a real daphne process).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from django.conf import settings as django_settings
from temporalio.client import Client as TemporalClient

from chatapp.models import Conversation, Message
from config import processes
from reviews.models import Approval, ApprovalPolicy
from tests.approvals import (
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
    SEND_URL,
    admin_create,
    composer_error,
    composer_ids,
    conversation_start,
    htmx,
    send,
    still_pending,
)

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]


# --- chat ---------------------------------------------------------------------------


async def test_an_oversized_message_is_refused_and_nothing_is_stored(worker: object) -> None:
    client = await logged_in(await auser_create())
    conversation_id, message_id = composer_ids(body(await client.get("/")))

    refused = await send(
        client,
        conversation_id=conversation_id,
        message_id=message_id,
        text="x" * 8001,
        current_path="/",
    )

    assert composer_error(body(refused)) == (
        "A message can be at most 8,000 characters (this one has 8,001)."
    )
    assert not await Conversation.objects.filter(id=conversation_id).aexists()
    assert not await Message.objects.aexists()
    at_limit = await conversation_start(client, "y" * 8000)
    # The worker's first step records the message; the send only shows it.
    recorded = await eventually(
        lambda: Message.objects.filter(conversation_id=at_limit, role="user").afirst()
    )
    assert recorded.content == "y" * 8000


async def test_an_oversized_title_is_refused() -> None:
    owner = await auser_create()
    client = await logged_in(owner)
    conversation = await Conversation.objects.acreate(owner=owner, title="Before")
    url = f"/c/{conversation.id}/rename/"

    refused = await client.post(url, {"title": "t" * 121}, headers=htmx(f"/c/{conversation.id}/"))

    assert refused.headers["HX-Retarget"] == "#flash"
    assert html_text(body(refused)).strip() == "A title needs 1 to 120 characters."
    await conversation.arefresh_from_db()
    assert conversation.title == "Before"
    await client.post(url, {"title": "t" * 120}, headers=htmx(f"/c/{conversation.id}/"))
    await conversation.arefresh_from_db()
    assert conversation.title == "t" * 120


async def test_a_body_over_djangos_limits_is_refused_and_nothing_is_stored() -> None:
    client = await logged_in(await auser_create())
    conversation_id, message_id = composer_ids(body(await client.get("/")))
    too_big = "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    response = await client.post(
        SEND_URL,
        {"conversation_id": conversation_id, "message_id": message_id, "text": too_big},
        headers=htmx("/"),
    )
    reviewer = await logged_in(await reviewer_create())
    fields = [
        f"{uuid.uuid4()}:call_1:abc" for _ in range(django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
    ]
    too_many = await reviewer.post(
        "/reviews/bulk/", {"item": fields, "action": "approve"}, headers=htmx("/reviews/")
    )

    assert response.status_code == 400
    assert too_many.status_code == 400
    assert not await Conversation.objects.aexists()


async def test_an_oversized_login_is_refused() -> None:
    client = await logged_in(None)

    response = await client.post(
        "/accounts/login/", {"username": "u" * 151, "password": "p" * 5000}
    )

    assert response.status_code == 200
    assert "Please enter a correct username and password." in html_text(body(response))
    assert (await client.get("/")).status_code == 302  # still logged out


# --- reviews --------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_approvals")
async def test_oversized_decision_inputs_are_refused(
    temporal: TemporalClient, worker: object
) -> None:
    approval = await refund_requested(temporal, await auser_create())
    client = await logged_in(await reviewer_create())
    url = f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/"
    headers = htmx("/reviews/", target=f"{row_id(approval)}-result")
    valid = {"arguments_hash": approval.arguments_hash}
    cases = {
        "reason": (
            {**valid, "action": "reject", "reason": "r" * 1001},
            "Ensure this value has at most 1000 characters (it has 1001).",
        ),
        "edited arguments": (
            {**valid, "action": "approve", "edited_arguments": "{" + " " * 19999 + "}"},
            "Ensure this value has at most 20000 characters (it has 20001).",
        ),
        "arguments hash": (
            {"arguments_hash": "h" * 65, "action": "approve"},
            "Ensure this value has at most 64 characters (it has 65).",
        ),
    }

    shown = {
        name: html_text(body(await client.post(url, data, headers=headers))).strip()
        for name, (data, _error) in cases.items()
    }

    assert shown == {name: error for name, (_data, error) in cases.items()}
    assert await still_pending(temporal, approval)
    mirror = await Approval.objects.aget(call_id=approval.call_id)
    assert (mirror.status, mirror.decision_reason) == ("pending", "")
    at_limit = await client.post(
        url, {**valid, "action": "reject", "reason": "r" * 1000}, headers=headers
    )
    assert "Rejected" in html_text(body(at_limit))
    await eventually(
        lambda: Approval.objects.filter(call_id=approval.call_id, status="rejected").aexists()
    )


async def test_oversized_bulk_decisions_are_refused(temporal: TemporalClient) -> None:
    client = await logged_in(await reviewer_create())
    headers = htmx("/reviews/", target="bulk-result")

    def items(count: int) -> list[str]:
        return [f"{uuid.uuid4()}:call_1:{'0' * 16}" for _ in range(count)]

    too_many = await client.post(
        "/reviews/bulk/", {"item": items(101), "action": "approve"}, headers=headers
    )
    long_reason = await client.post(
        "/reviews/bulk/",
        {"item": items(1), "action": "reject", "reason": "r" * 1001},
        headers=headers,
    )
    long_ids = {
        part: await client.post(
            "/reviews/bulk/",
            {"item": f"{uuid.uuid4()}:{call_id}:{arguments_hash}", "action": "approve"},
            headers=headers,
        )
        for part, call_id, arguments_hash in [
            ("call id", "c" * 101, "0" * 16),
            ("arguments hash", "call_1", "0" * 65),
        ]
    }
    at_limit = await client.post(
        "/reviews/bulk/",
        {"item": [*items(99), f"{uuid.uuid4()}:{'c' * 100}:{'0' * 64}"], "action": "approve"},
        headers=headers,
    )

    assert html_text(body(too_many)).strip() == "Select at most 100 requests at once."
    assert html_text(body(long_reason)).strip() == (
        "Ensure this value has at most 1000 characters (it has 1001)."
    )
    assert {part: html_text(body(r)).strip() for part, r in long_ids.items()} == dict.fromkeys(
        long_ids, "A selected item is malformed; reload."
    )
    # Within the limits the form passes and each (unknown) request gets its own answer.
    assert "0 of 100 approved" in html_text(body(at_limit))


async def test_oversized_history_filters_are_refused() -> None:
    client = await logged_in(await reviewer_create())

    page = body(await client.get("/reviews/history/", {"reviewer": "r" * 151}))

    errors = html_text(html_element(page, "history-results") or "")
    assert "Ensure this value has at most 150 characters (it has 151)." in errors


async def test_the_admin_refuses_an_oversized_policy() -> None:
    client = await logged_in(await admin_create())
    policy = {
        "tool_name": "t" * 65,
        "mode": "always",
        "deadline_seconds": "3600",
        "timeout_action": "reject",
        "remind_at_share": "0.50",
    }

    response = await client.post("/admin/reviews/approvalpolicy/add/", policy)

    assert response.status_code == 200
    assert "Ensure this value has at most 64 characters (it has 65)." in html_text(body(response))
    assert not await ApprovalPolicy.objects.aexists()


# --- websockets, through a real daphne ----------------------------------------------------


@pytest_asyncio.fixture
async def daphne_url(tmp_path: Path) -> AsyncIterator[str]:
    """`daphne config.asgi:application` (as the README deploys it) on the test database."""
    port = processes.free_port()
    database = django_settings.DATABASES["default"]["NAME"]
    daphne = processes.Child(
        name="daphne",
        command=[
            processes.venv_bin("daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        log_path=tmp_path / "daphne.log",
        cwd=BASE_DIR,
        env={"DATABASE_URL": f"sqlite:///{database}", "LOG_LEVEL": "WARNING"},
        ready_url=f"http://127.0.0.1:{port}/healthz",
    )
    # Launched from the event loop's thread (a child dies with the thread that started
    # it); only the wait goes to a worker thread.
    daphne.launch()
    try:
        await asyncio.to_thread(daphne.wait_ready)
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(daphne.stop)


async def test_a_websocket_message_over_daphnes_limit_closes_the_socket(daphne_url: str) -> None:
    """The consumers ignore what browsers send, but daphne reads it first: its 1 MiB
    message limit is what bounds it."""
    cookie = await session_cookie(await reviewer_create())
    headers = {"Origin": daphne_url, "Cookie": f"sessionid={cookie}"}
    limit = 1024 * 1024

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{daphne_url}/ws/reviews/", headers=headers, autoping=False) as ws,
    ):
        await ws.send_str("x" * limit)  # at the limit: read and ignored
        await ws.ping(b"still there?")
        pong = await ws.receive(timeout=10)
        await ws.send_str("x" * (limit + 1))
        dropped = await ws.receive(timeout=10)

    assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"still there?")
    assert dropped.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    # autobahn fails the connection by dropping it (1006), or says "message too big" (1009).
    assert ws.close_code in (1006, 1009)

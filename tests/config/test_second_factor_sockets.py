"""The reviewers' websocket and the second factor: a session that owes it opens no
socket (else the inbox's live rows would reach a password alone). The application is
config/asgi.py's own, so a stack without `SecondFactorSocketMiddleware` fails here."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from pytest_django.fixtures import Settings

from config.asgi import application
from tests.approvals import reviewer_create
from tests.config.test_second_factor import app_code, app_enrol, password_login, verify
from tests.helpers import logged_in, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def inbox_socket_opens(sessionid: str) -> bool:
    socket = WebsocketCommunicator(
        application,
        "/ws/reviews/",
        headers=[
            (b"host", b"127.0.0.1:8000"),
            (b"origin", b"http://127.0.0.1:8000"),
            (b"cookie", f"sessionid={sessionid}".encode()),
        ],
    )
    connected, _ = await socket.connect()
    if connected:
        await socket.disconnect()
    return connected


async def test_a_reviewer_who_must_enrol_opens_no_socket_until_it_is_not_required(
    settings: Settings,
) -> None:
    cookie = await session_cookie(await reviewer_create())

    settings.REQUIRE_SECOND_FACTOR = True
    required = await inbox_socket_opens(cookie)
    settings.REQUIRE_SECOND_FACTOR = False
    optional = await inbox_socket_opens(cookie)

    assert not required
    assert optional


async def test_a_password_alone_opens_no_socket_and_the_second_factor_does() -> None:
    rita = await reviewer_create()
    secret = await app_enrol(await logged_in(rita))
    client = await password_login(rita)

    before = await inbox_socket_opens(client.cookies["sessionid"].value)
    passed = await verify(client, app_code(secret, steps_ahead=1))
    after = await inbox_socket_opens(client.cookies["sessionid"].value)

    assert not before
    assert passed.status_code == 302
    assert after

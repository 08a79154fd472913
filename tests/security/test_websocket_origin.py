"""Both websockets refuse a handshake whose Origin is missing or not one of ALLOWED_HOSTS,
even with a valid session cookie (cross-site websocket hijacking)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import pytest_asyncio
from django.contrib.auth.models import AbstractBaseUser

from chatapp.models import Conversation
from tests.approvals import (
    reviewer_create,
)
from tests.factories import auser_create
from tests.helpers import (
    session_cookie,
)
from tests.security.support import (
    socket_accepted,
)

pytestmark = pytest.mark.django_db(transaction=True)

BAD_ORIGINS = {
    "missing": None,
    "foreign": b"http://evil.example",
    "null": b"null",
    "lookalike suffix": b"http://127.0.0.1.evil.example",
    "lookalike prefix": b"http://evil-localhost",
    "subdomain of localhost": b"http://evil.localhost.example",
    "credentials trick": b"http://127.0.0.1@evil.example",
    "not a url": b"127.0.0.1",
}
GOOD_ORIGINS = {
    "same host and port": b"http://127.0.0.1:8000",
    "localhost over https": b"https://localhost",
}


@pytest_asyncio.fixture
async def owner() -> AbstractBaseUser:
    return await auser_create()


@pytest_asyncio.fixture
async def conversation_path(owner: AbstractBaseUser) -> str:
    conversation = await Conversation.objects.acreate(owner=owner, title="Origin test")
    return f"/ws/c/{conversation.id}/"


SocketFactory = Callable[[bytes | None], Awaitable[bool]]


@pytest_asyncio.fixture(params=["conversation", "reviews"])
async def connect(
    request: pytest.FixtureRequest, owner: AbstractBaseUser, conversation_path: str
) -> SocketFactory:
    """Opens one of the two sockets as a user allowed to use it, from the given origin."""
    if request.param == "conversation":
        cookie, path = await session_cookie(owner), conversation_path
    else:
        cookie, path = await session_cookie(await reviewer_create()), "/ws/reviews/"

    async def open_from(origin: bytes | None) -> bool:
        return await socket_accepted(path, cookie=cookie, origin=origin)

    return open_from


@pytest.mark.parametrize("origin", BAD_ORIGINS.values(), ids=BAD_ORIGINS.keys())
async def test_a_bad_or_missing_origin_is_refused(
    connect: SocketFactory, origin: bytes | None, temporal: object
) -> None:
    assert not await connect(origin)
    # The same user, cookie and socket from the site's own origin gets in.
    assert await connect(GOOD_ORIGINS["same host and port"])


@pytest.mark.parametrize("origin", GOOD_ORIGINS.values(), ids=GOOD_ORIGINS.keys())
async def test_the_sites_own_origins_are_accepted(
    connect: SocketFactory, origin: bytes, temporal: object
) -> None:
    assert await connect(origin)

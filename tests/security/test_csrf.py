"""CSRF is enforced on every state-changing POST: without a valid token (or from a foreign
origin) the answer is 403 and nothing changes; with the token htmx sends, the same POST
goes through (so the 403 is the CSRF check's, not a permission's)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import AsyncClient
from django.urls import reverse

from chatapp.models import Conversation, DisplayPreference, Message
from reviews.models import Approval, ApprovalPolicy
from tests.approvals import (
    approval_mirror_create,
    reviewer_create,
)
from tests.factories import PASSWORD, auser_create
from tests.security.support import (
    admin_create,
    htmx,
)
from tests.security.test_authorisation_matrix import CHAT_ROWS, REVIEW_ROWS, ROOT_ROWS

pytestmark = pytest.mark.django_db(transaction=True)

CALL_ID = "call_csrf"
NEW_PASSWORD = "An0ther-long-passphrase"


@dataclass
class World:
    users: dict[str, AbstractBaseUser | None]
    conversation: Conversation


@dataclass(frozen=True)
class Post:
    name: str
    actor: str
    page: str
    kwargs: Callable[[World], dict[str, Any]] = lambda _w: {}
    data: Callable[[World], dict[str, Any]] = lambda _w: {}


def _conversation(world: World) -> dict[str, Any]:
    return {"conversation_id": world.conversation.id}


def _approval(world: World) -> dict[str, Any]:
    return {"conversation_id": world.conversation.id, "call_id": CALL_ID}


POSTS = [
    Post(
        "chat:send",
        "owner",
        "/",
        data=lambda w: {
            "conversation_id": uuid.uuid4(),
            "message_id": uuid.uuid4(),
            "text": "Forged message",
        },
    ),
    Post("chat:stop", "owner", "/", _conversation),
    Post(
        "chat:retry",
        "owner",
        "/",
        lambda w: {"conversation_id": w.conversation.id, "notice_id": uuid.uuid4()},
    ),
    Post("chat:withdraw", "owner", "/", _approval),
    Post("chat:rename", "owner", "/", _conversation, lambda _w: {"title": "Forged title"}),
    Post("chat:archive", "owner", "/", _conversation),
    Post("chat:unarchive", "owner", "/", _conversation),
    Post("chat:delete", "owner", "/", _conversation, lambda _w: {"confirm": "delete"}),
    Post(
        "chat:regenerate",
        "owner",
        "/",
        _conversation,
        lambda _w: {"request_id": uuid.uuid4(), "reply_id": uuid.uuid4()},
    ),
    Post(
        "chat:edit",
        "owner",
        "/",
        _conversation,
        lambda _w: {"message_id": uuid.uuid4(), "replaces_id": uuid.uuid4(), "text": "Forged"},
    ),
    Post("theme-update", "owner", "/", data=lambda _w: {"theme": "dark"}),
    Post(
        "reviews:decide",
        "reviewer",
        "/reviews/history/",
        _approval,
        lambda _w: {"action": "approve", "arguments_hash": "0" * 16},
    ),
    Post("reviews:claim", "reviewer", "/reviews/history/", _approval),
    Post(
        "reviews:bulk",
        "reviewer",
        "/reviews/history/",
        data=lambda w: {"item": f"{w.conversation.id}:{CALL_ID}:{'0' * 16}", "action": "approve"},
    ),
    Post(
        "login",
        "anonymous",
        "/accounts/login/",
        data=lambda _w: {"username": "owner", "password": PASSWORD},
    ),
    Post("logout", "owner", "/"),
    Post("admin:logout", "admin", "/admin/"),
    Post(
        "admin:reviews_approvalpolicy_add",
        "admin",
        "/admin/reviews/approvalpolicy/add/",
        data=lambda _w: {
            "tool_name": "send_email",
            "mode": "always",
            "deadline_seconds": "3600",
            "timeout_action": "reject",
            "remind_at_share": "0.50",
        },
    ),
    Post(
        "admin:password_change",
        "admin",
        "/admin/password_change/",
        data=lambda _w: {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    ),
]


@pytest_asyncio.fixture
async def world() -> World:
    owner = await auser_create(username="owner")
    conversation = await Conversation.objects.acreate(owner=owner, title="Original title")
    await approval_mirror_create(conversation, call_id=CALL_ID)
    return World(
        users={
            "anonymous": None,
            "owner": owner,
            "reviewer": await reviewer_create("reviewer"),
            "admin": await admin_create("boss"),
        },
        conversation=conversation,
    )


async def browser(world: World, post: Post) -> AsyncClient:
    """The actor's browser, with the csrftoken cookie a page of the site has set."""
    client = AsyncClient(enforce_csrf_checks=True)
    user = world.users[post.actor]
    if user is not None:
        await client.aforce_login(user)
    page = await client.get(post.page)
    assert page.status_code == 200, (post.page, page.status_code)
    assert client.cookies["csrftoken"].value
    return client


async def state(world: World, client: AsyncClient) -> dict[str, Any]:
    # None once deleted (the genuine delete goes through).
    conversation = await Conversation.objects.filter(id=world.conversation.id).afirst()
    approval = await Approval.objects.aget(call_id=CALL_ID)
    return {
        "conversation": conversation and (conversation.title, conversation.archived_at),
        "conversations": await Conversation.objects.acount(),
        "messages": await Message.objects.acount(),
        "approval": (approval.status, approval.claimed_by_id),
        "policies": await ApprovalPolicy.objects.acount(),
        "themes": await DisplayPreference.objects.acount(),
        "passwords": [u.password async for u in get_user_model().objects.order_by("pk")],
        # Logged in (200) or not (302 to the login page): a forged login/logout changes it.
        "session": (await client.get("/")).status_code,
    }


def url_of(post: Post, world: World) -> str:
    return reverse(post.name, kwargs=post.kwargs(world))


def test_every_state_changing_post_is_listed() -> None:
    posts = {row.name for row in [*CHAT_ROWS, *REVIEW_ROWS, *ROOT_ROWS] if row.method == "POST"}

    assert posts <= {post.name for post in POSTS}


@pytest.mark.parametrize("post", POSTS, ids=[p.name for p in POSTS])
@pytest.mark.parametrize(
    "forgery",
    ["no token", "wrong token", "foreign origin"],
)
async def test_a_forged_post_is_refused_and_changes_nothing(
    post: Post, forgery: str, world: World
) -> None:
    client = await browser(world, post)
    before = await state(world, client)
    token = client.cookies["csrftoken"].value
    headers = {
        "no token": {},
        "wrong token": {"X-CSRFToken": "x" * 32},
        "foreign origin": {"X-CSRFToken": token, "Origin": "http://evil.example"},
    }[forgery]

    response = await client.post(
        url_of(post, world), post.data(world), headers={**htmx(post.page), **headers}
    )

    assert response.status_code == 403
    assert "CSRF verification failed" in response.content.decode()
    assert await state(world, client) == before


@pytest.mark.parametrize("post", POSTS, ids=[p.name for p in POSTS])
async def test_the_same_post_with_the_token_goes_through(
    post: Post, world: World, worker: object
) -> None:
    client = await browser(world, post)
    before = await state(world, client)
    token = client.cookies["csrftoken"].value

    response = await client.post(
        url_of(post, world),
        post.data(world),
        headers={**htmx(post.page), "X-CSRFToken": token, "Origin": "http://testserver"},
    )

    assert response.status_code != 403, response.content.decode()[:500]
    after = await state(world, client)
    changed = {key for key in before if before[key] != after[key]}
    expected_change = {
        "chat:send": {"conversations", "messages"},
        "chat:rename": {"conversation"},
        "chat:archive": {"conversation"},
        "login": {"session"},
        "logout": {"session"},
        "admin:logout": {"session"},
        "admin:reviews_approvalpolicy_add": {"policies"},
        "admin:password_change": {"passwords"},
    }.get(post.name, set())
    assert expected_change <= changed

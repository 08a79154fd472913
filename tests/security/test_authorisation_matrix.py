"""Who may reach what: one table of (endpoint, method, actor) → expected answer, over every
named URL (a new endpoint without a row fails `test_the_table_covers_every_named_url`)
and both websockets, against a real Temporal server and worker.

Actors: anonymous, the conversation's owner, another user, a reviewer (holds
`reviews.review_approvals`, owns nothing here) and an admin (superuser).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from chatapp.models import Agent, Conversation, LlmProvider, McpServer, Message, Prompt
from chatapp.usage_models import AgentBudget, BudgetHit, ModelCall, ModelPrice, UserBudget
from reviews.models import Approval, ApprovalPolicy, ReviewerProfile
from shop.models import OrderStatusChange, OutboxEmail, Refund
from tests.approvals import (
    approval_mirror_create,
    order_create,
    reviewer_create,
)
from tests.config.accounts_support import account_admin_objects
from tests.factories import auser_create
from tests.helpers import (
    logged_in,
    session_cookie,
)
from tests.security.support import (
    admin_create,
    socket_accepted,
)

pytestmark = pytest.mark.django_db(transaction=True)

ANONYMOUS, OWNER, OTHER, REVIEWER, ADMIN = "anonymous", "owner", "other", "reviewer", "admin"
ACTORS = (ANONYMOUS, OWNER, OTHER, REVIEWER, ADMIN)
CALL_ID = "call_matrix"


@dataclass(frozen=True)
class Redirect:
    """A 302 whose Location starts with `to` (login pages carry ?next=)."""

    to: str

    def __str__(self) -> str:
        return f"302 → {self.to}"


Expect = int | Redirect
LOGIN = Redirect("/accounts/login/?next=")
ADMIN_LOGIN = Redirect("/admin/login/?next=")


def each(anonymous: Expect, owner: Expect, other: Expect, reviewer: Expect, admin_: Expect):
    return dict(zip(ACTORS, (anonymous, owner, other, reviewer, admin_), strict=True))


@dataclass
class World:
    users: dict[str, AbstractBaseUser]
    conversation: Conversation
    notice_id: uuid.UUID
    conversation_type_id: int
    objects: dict[type[models.Model], models.Model] = field(default_factory=dict)

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.conversation.id


Kwargs = Callable[[World], dict[str, Any]]
Data = Callable[[World, str], dict[str, Any]]


def _none(_world: World) -> dict[str, Any]:
    return {}


def _conversation(world: World) -> dict[str, Any]:
    return {"conversation_id": world.conversation_id}


def _approval(world: World) -> dict[str, Any]:
    return {"conversation_id": world.conversation_id, "call_id": CALL_ID}


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    expect: dict[str, Expect]
    kwargs: Kwargs = _none
    data: Data = lambda _world, _actor: {}
    htmx: bool = True


def _send(world: World, actor: str) -> dict[str, Any]:
    return {
        "conversation_id": world.conversation_id,
        "message_id": uuid.uuid4(),
        "text": f"A message from {actor}",
    }


def _more_rows(world: World, _actor: str) -> dict[str, Any]:
    return {
        "after": "2026-12-01T10:00:00+00:00",
        "conversation": world.conversation_id,
        "call": "c",
    }


def _decision(_world: World, _actor: str) -> dict[str, Any]:
    return {"action": "approve", "arguments_hash": "0" * 16}


def _bulk(world: World, _actor: str) -> dict[str, Any]:
    return {"item": [f"{world.conversation_id}:{CALL_ID}:{'0' * 16}"], "action": "approve"}


# Chat endpoints: someone else's conversation is "not found", never "forbidden", so its
# existence does not leak. The owner's archive comes last: it ends the conversation.
CHAT_ROWS = [
    Row("chat:home", "GET", each(LOGIN, 200, 200, 200, 200), htmx=False),
    Row("chat:conversation", "GET", each(LOGIN, 200, 404, 404, 404), _conversation, htmx=False),
    Row("chat:send", "POST", each(LOGIN, 200, 404, 404, 404), data=_send),
    Row("chat:stop", "POST", each(LOGIN, 200, 404, 404, 404), _conversation),
    Row(
        "chat:retry",
        "POST",
        each(LOGIN, 200, 404, 404, 404),
        lambda w: {"conversation_id": w.conversation_id, "notice_id": w.notice_id},
    ),
    Row("chat:withdraw", "POST", each(LOGIN, 200, 404, 404, 404), _approval),
    Row(
        "chat:rename",
        "POST",
        each(LOGIN, 200, 404, 404, 404),
        _conversation,
        lambda _w, actor: {"title": f"Renamed by {actor}"},
    ),
    Row("chat:search", "GET", each(LOGIN, 200, 200, 200, 200), htmx=False),
    Row("chat:archive_list", "GET", each(LOGIN, 200, 200, 200, 200), htmx=False),
    # No update id in the form: the owner reads why in the flash region (htmx swaps 2xx).
    Row("chat:regenerate", "POST", each(LOGIN, 200, 404, 404, 404), _conversation),
    Row("chat:edit", "POST", each(LOGIN, 200, 404, 404, 404), _conversation),
    Row("chat:archive", "POST", each(LOGIN, 200, 404, 404, 404), _conversation),
    Row("chat:unarchive", "POST", each(LOGIN, 200, 404, 404, 404), _conversation),
    # Without the confirmation's field: the owner is asked to confirm, nothing is deleted.
    Row("chat:delete", "POST", each(LOGIN, 200, 404, 404, 404), _conversation),
]
ROOT_ROWS = [
    Row("login", "GET", each(200, 200, 200, 200, 200), htmx=False),
    Row(
        "login",
        "POST",
        each(200, 200, 200, 200, 200),
        data=lambda _w, _a: {"username": "owner", "password": "wrong-password"},
        htmx=False,
    ),
    Row("logout", "POST", each(*[Redirect("/accounts/login/")] * 5), htmx=False),
    Row("healthz", "GET", each(200, 200, 200, 200, 200), htmx=False),
    # The theme toggle: kept for the signed-in; anonymous pages keep it in the browser.
    Row(
        "theme-update",
        "POST",
        each(LOGIN, 204, 204, 204, 204),
        data=lambda _w, _a: {"theme": "dark"},
    ),
    Row("theme-update", "GET", each(*[405] * 5), htmx=False),
    # Whether the agent service is reachable: for signed-in pages only.
    Row("service-status", "GET", each(LOGIN, 200, 200, 200, 200), htmx=False),
]

VERIFY_FIRST = Redirect("/accounts/verify/?next=")
SIGNED_IN = each(LOGIN, 200, 200, 200, 200)
# The second-factor pages (config/accounts). Nobody here has a device and it is not
# required, so verification has nothing to ask (back to the chat), and the pages that
# need a verified session send everyone to verify first.
ACCOUNT_ROWS = [
    Row("accounts:verify", "GET", each(LOGIN, *[Redirect("/")] * 4), htmx=False),
    Row("accounts:verify", "POST", each(LOGIN, *[Redirect("/")] * 4), htmx=False),
    Row("accounts:second-factor", "GET", SIGNED_IN, htmx=False),
    Row("accounts:step-up", "GET", SIGNED_IN, htmx=False),
    # No method chosen: the page says which ways it offers.
    Row("accounts:step-up", "POST", each(LOGIN, 422, 422, 422, 422), htmx=False),
    Row("accounts:totp-setup", "GET", SIGNED_IN, htmx=False),
    # No code: the form says so.
    Row("accounts:totp-setup", "POST", each(LOGIN, 422, 422, 422, 422), htmx=False),
    Row("accounts:recovery-codes", "GET", each(LOGIN, *[VERIFY_FIRST] * 4), htmx=False),
    Row("accounts:recovery-codes", "POST", each(LOGIN, *[VERIFY_FIRST] * 4), htmx=False),
    Row("accounts:passkey-registered", "POST", each(LOGIN, *[VERIFY_FIRST] * 4), htmx=False),
    Row("accounts:device-remove", "POST", each(LOGIN, *[VERIFY_FIRST] * 4), htmx=False),
    # django-otp-webauthn's JSON endpoints: a ceremony needs a signed-in user (no
    # passwordless login) and one begun in this session.
    Row(
        "otp_webauthn:credential-registration-begin",
        "POST",
        each(403, 200, 200, 200, 200),
        htmx=False,
    ),
    Row(
        "otp_webauthn:credential-registration-complete",
        "POST",
        each(403, 400, 400, 400, 400),
        htmx=False,
    ),
    Row(
        "otp_webauthn:credential-authentication-begin",
        "POST",
        each(403, 200, 200, 200, 200),
        htmx=False,
    ),
    Row(
        "otp_webauthn:credential-authentication-complete",
        "POST",
        each(403, 400, 400, 400, 400),
        htmx=False,
    ),
    Row("otp_webauthn:js-i18n-catalog", "GET", each(200, 200, 200, 200, 200), htmx=False),
]
ACCOUNT_WRONG_METHOD_ROWS = [
    Row("accounts:passkey-registered", "GET", each(*[405] * 5), htmx=False),
    Row("accounts:device-remove", "GET", each(*[405] * 5), htmx=False),
    *[
        Row(f"otp_webauthn:{name}", "GET", each(403, *[405] * 4), htmx=False)
        for name in (
            "credential-registration-begin",
            "credential-registration-complete",
            "credential-authentication-begin",
            "credential-authentication-complete",
        )
    ],
]
FORBIDDEN_TO_NON_REVIEWERS = each(LOGIN, 403, 403, 200, 200)
REVIEW_ROWS = [
    Row("reviews:dashboard", "GET", FORBIDDEN_TO_NON_REVIEWERS, htmx=False),
    Row("reviews:more", "GET", FORBIDDEN_TO_NON_REVIEWERS, data=_more_rows),
    Row("reviews:history", "GET", FORBIDDEN_TO_NON_REVIEWERS, htmx=False),
    Row("reviews:detail", "GET", FORBIDDEN_TO_NON_REVIEWERS, _approval, htmx=False),
    Row("reviews:decide", "POST", FORBIDDEN_TO_NON_REVIEWERS, _approval, _decision),
    Row("reviews:claim", "POST", FORBIDDEN_TO_NON_REVIEWERS, _approval),
    Row("reviews:bulk", "POST", FORBIDDEN_TO_NON_REVIEWERS, data=_bulk),
]
# Email links: GET shows, POST decides, both for the reviewer the link was sent to only (a
# token that is not a signed link is "not valid" to whoever may review). Slack's endpoint
# takes signed POSTs only, and is not there while Slack is off (the tests' default).
CHANNEL_ROWS = [
    *(
        Row(
            "reviews:email_decision",
            method,
            each(LOGIN, 403, 403, 400, 400),
            lambda _w: {"token": "not-a-signed-link"},
            htmx=False,
        )
        for method in ("GET", "POST")
    ),
    Row("reviews:slack_interactivity", "POST", each(*[404] * 5), htmx=False),
    Row("reviews:slack_interactivity", "GET", each(*[405] * 5), htmx=False),
]
# The other method on every chat and review endpoint is refused before anything else
# runs, so a GET can never change state (a link or an <img> cannot archive a chat).
WRONG_METHOD_ROWS = [
    Row(row.name, "POST" if row.method == "GET" else "GET", each(*[405] * 5), row.kwargs)
    for row in CHAT_ROWS + REVIEW_ROWS
]


def _totp_device(world: World) -> dict[str, Any]:
    return {"pk": world.objects[TOTPDevice].pk}


def _admin_site_rows() -> list[Row]:
    staff_only = each(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)
    hidden_secret = each(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 403)
    return [
        Row("admin:index", "GET", staff_only, htmx=False),
        Row("admin:chatapp_modelcall_report", "GET", staff_only, htmx=False),
        Row("admin:login", "GET", each(200, 200, 200, 200, Redirect("/admin/")), htmx=False),
        # Non-staff are sent back to the admin index; staff are logged out (LOGOUT_REDIRECT_URL).
        Row(
            "admin:logout",
            "POST",
            each(*[Redirect("/admin/")] * 4, Redirect("/accounts/login/")),
            htmx=False,
        ),
        Row("admin:password_change", "GET", staff_only, htmx=False),
        # django-otp's pages that show a TOTP secret: off (OTP_ADMIN_HIDE_SENSITIVE_DATA).
        Row("admin:otp_totp_totpdevice_config", "GET", hidden_secret, _totp_device, htmx=False),
        Row("admin:otp_totp_totpdevice_qrcode", "GET", hidden_secret, _totp_device, htmx=False),
        Row("admin:password_change_done", "GET", staff_only, htmx=False),
        Row("admin:jsi18n", "GET", staff_only, htmx=False),
        Row("admin:app_list", "GET", staff_only, lambda _w: {"app_label": "chatapp"}, htmx=False),
        Row(
            "admin:autocomplete",
            "GET",
            staff_only,
            data=lambda _w, _a: {
                "app_label": "shop",
                "model_name": "order",
                "field_name": "customer",
            },
            htmx=False,
        ),
        Row(
            "admin:view_on_site",
            "GET",
            # Conversations have no public URL: the admin itself answers 404.
            each(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 404),
            lambda w: {
                "content_type_id": w.conversation_type_id,
                "object_id": w.conversation_id,
            },
            htmx=False,
        ),
        Row(
            "admin:auth_user_password_change",
            "GET",
            staff_only,
            lambda w: {"id": w.users[OWNER].pk},
            htmx=False,
        ),
    ]


def _admin_model_rows() -> Iterator[Row]:
    """Every registered model's admin pages: staff only; for the superuser, the model
    admin's own permissions decide between the page and 403 (read-only mirrors)."""
    superuser = type("Superuser", (), {"is_active": True, "is_staff": True})()
    superuser.has_perm = lambda *_a, **_k: True  # type: ignore[attr-defined]
    request = RequestFactory().get("/admin/")
    request.user = superuser  # type: ignore[assignment]
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"

        def obj(w: World, model: type[models.Model] = model) -> dict[str, Any]:
            return {"object_id": w.objects[model].pk}

        def page(allowed: bool) -> dict[str, Expect]:
            return each(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200 if allowed else 403)

        yield Row(f"{prefix}_changelist", "GET", page(True), htmx=False)
        yield Row(f"{prefix}_add", "GET", page(model_admin.has_add_permission(request)), htmx=False)
        yield Row(f"{prefix}_change", "GET", page(True), obj, htmx=False)
        yield Row(f"{prefix}_history", "GET", page(True), obj, htmx=False)
        yield Row(
            f"{prefix}_delete",
            "GET",
            page(model_admin.has_delete_permission(request)),
            obj,
            htmx=False,
        )


def table() -> list[Row]:
    return [
        *CHAT_ROWS,
        *ROOT_ROWS,
        *ACCOUNT_ROWS,
        *ACCOUNT_WRONG_METHOD_ROWS,
        *REVIEW_ROWS,
        *CHANNEL_ROWS,
        *WRONG_METHOD_ROWS,
        *_admin_site_rows(),
        *_admin_model_rows(),
    ]


# --- the world the table is read against -----------------------------------------------


async def _usage_admin_objects(world: World) -> list[models.Model]:
    """The usage ledger, prices and budgets (chatapp/usage_models.py)."""
    agent = await Agent.objects.aget(slug="matrix")
    at = timezone.now()
    owner = world.users[OWNER]
    return [
        await ModelCall.objects.acreate(
            conversation=world.conversation,
            reply_id=uuid.uuid4(),
            attempt=1,
            user=owner,
            agent=agent,
            model="m",
            at=at,
            outcome=ModelCall.Outcome.COMPLETE,
        ),
        await ModelPrice.objects.acreate(
            model="m",
            valid_from=at,
            input_per_million=Decimal("1"),
            output_per_million=Decimal("2"),
            cached_per_million=Decimal("0.5"),
        ),
        await UserBudget.objects.acreate(user=owner, daily_limit_usd=Decimal("5")),
        await AgentBudget.objects.acreate(agent=agent, monthly_limit_usd=Decimal("50")),
        await BudgetHit.objects.acreate(
            at=at,
            scope=BudgetHit.Scope.USER_DAY,
            user=owner,
            agent=agent,
            conversation=world.conversation,
            limit_usd=Decimal("5"),
            spent_usd=Decimal("5.01"),
        ),
    ]


async def _admin_objects(world: World) -> None:
    """One row of every model the admin shows, for its change/history/delete pages."""
    conversation = world.conversation
    order = await order_create()
    message = await Message.objects.acreate(
        id=uuid.uuid4(), conversation=conversation, seq=1, role=Message.Role.USER, content="Hello"
    )
    made: list[models.Model] = [
        world.users[OWNER],
        await Group.objects.acreate(name="support"),
        conversation,
        message,
        await ApprovalPolicy.objects.acreate(tool_name="issue_refund"),
        await ReviewerProfile.objects.acreate(user=world.users[REVIEWER], slack_user_id="U0MATRIX"),
        await LlmProvider.objects.acreate(
            name="matrix", base_url="http://127.0.0.1:9/v1", default_model="m"
        ),
        await McpServer.objects.acreate(
            name="matrix",
            title="Matrix",
            transport=McpServer.Transport.HTTP,
            url="http://127.0.0.1:9/mcp",
        ),
        await Agent.objects.acreate(
            slug="matrix",
            name="Matrix",
            prompt=(await Prompt.objects.aget_or_create(name="matrix-agent"))[0],
        ),
        order,
        order.customer,
        await Refund.objects.acreate(
            order=order, amount=Decimal("1.00"), reason="r", idempotency_key="k1"
        ),
        await OutboxEmail.objects.acreate(
            to_address="a@b.example", subject="s", body="b", idempotency_key="k2"
        ),
        await OrderStatusChange.objects.acreate(
            order=order, from_status="paid", to_status="shipped", idempotency_key="k3"
        ),
    ]
    made += await account_admin_objects()
    made += await _usage_admin_objects(world)
    help_article = apps.get_model("shop", "HelpArticle")
    made.append(await help_article.objects.acreate(slug="matrix", title="Matrix", body="Body"))
    if apps.is_installed("chatapp") and "prompt" in apps.all_models["chatapp"]:
        prompt_model = apps.get_model("chatapp", "Prompt")
        prompt = await prompt_model.objects.acreate(name="matrix-prompt")
        made.append(prompt)
        version_model = apps.get_model("chatapp", "PromptVersion")
        made.append(await version_model.objects.acreate(prompt=prompt, version=1, text="Be kind."))
    for instance in made:
        world.objects.setdefault(type(instance), instance)
    world.objects[Approval] = await Approval.objects.aget(call_id=CALL_ID)
    for model in admin.site._registry:
        if model not in world.objects:
            existing = await model._default_manager.afirst()
            assert existing is not None, (
                f"no {model.__name__} row to open its admin pages with: add one to _admin_objects"
            )
            world.objects[model] = existing


@pytest_asyncio.fixture
async def world() -> World:
    owner = await auser_create(username="owner")
    users = {
        OWNER: owner,
        OTHER: await auser_create(username="other"),
        REVIEWER: await reviewer_create("reviewer"),
        ADMIN: await admin_create("boss"),
    }
    conversation = await Conversation.objects.acreate(owner=owner, title="Owner's private chat")
    await approval_mirror_create(conversation, call_id=CALL_ID)
    content_type = await sync_to_async(ContentType.objects.get_for_model)(Conversation)
    world = World(
        users=users,
        conversation=conversation,
        notice_id=uuid.uuid4(),
        conversation_type_id=content_type.pk,
    )
    await _admin_objects(world)
    return world


def _outcome(response: HttpResponse) -> str:
    if response.status_code in (301, 302):
        return f"{response.status_code} → {response.headers['Location']}"
    return str(response.status_code)


def _matches(expected: Expect, response: HttpResponse) -> bool:
    if isinstance(expected, Redirect):
        return response.status_code == 302 and response.headers["Location"].startswith(expected.to)
    return response.status_code == expected


# --- the tests ----------------------------------------------------------------------


def _named_patterns(patterns: list[Any], namespace: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace or ""]))
            yield from _named_patterns(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_the_table_covers_every_named_url() -> None:
    named = set(_named_patterns(get_resolver().url_patterns))
    covered = {row.name for row in table()}

    assert named - covered == set(), "endpoints without a row in the authorisation table"
    assert covered - named == set(), "rows for endpoints that no longer exist"
    methods = {(row.name, row.method) for row in table()}
    for row in CHAT_ROWS + REVIEW_ROWS:
        assert {(row.name, "GET"), (row.name, "POST")} <= methods


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.usefixtures("no_leftover_approvals")
async def test_every_endpoint_answers_each_actor_as_the_table_says(
    actor: str, world: World, worker: object
) -> None:
    mismatches: dict[str, tuple[str, str]] = {}
    for row in table():
        client = await logged_in(world.users.get(actor))
        url = reverse(row.name, kwargs=row.kwargs(world))
        headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{url}"}
        call = client.get if row.method == "GET" else client.post
        response = await call(url, row.data(world, actor), headers=headers if row.htmx else {})
        expected = row.expect[actor]
        if not _matches(expected, response):
            mismatches[f"{row.method} {url} ({row.name})"] = (str(expected), _outcome(response))

    assert mismatches == {}
    if actor != OWNER:
        # Refused means nothing happened: a 404 that still did the work would pass above.
        conversation = await Conversation.objects.aget(id=world.conversation_id)
        assert conversation.title == "Owner's private chat"
        assert conversation.archived_at is None
        assert not await Message.objects.filter(content__startswith="A message from").aexists()
        approval = await Approval.objects.aget(call_id=CALL_ID)
        assert approval.status == Approval.Status.PENDING
        assert approval.claimed_by_id is None


SOCKET_TABLE = {
    "conversation": each(False, True, False, False, False),
    "reviews": each(False, False, False, True, True),
}


@pytest.mark.parametrize("actor", ACTORS)
async def test_websockets_accept_each_actor_as_the_table_says(
    actor: str, world: World, temporal: object
) -> None:
    user = world.users.get(actor)
    cookie = await session_cookie(user) if user is not None else None
    paths = {
        "conversation": f"/ws/c/{world.conversation_id}/",
        "reviews": "/ws/reviews/",
    }

    accepted = {name: await socket_accepted(path, cookie=cookie) for name, path in paths.items()}

    assert accepted == {name: expect[actor] for name, expect in SOCKET_TABLE.items()}

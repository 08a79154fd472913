"""The second factor through the real ASGI stack: enrolment (an authenticator app whose
codes django-otp's own TOTP computes), verification after the password, recovery
codes, throttling, the requirement on and off, and decisions refused to a reviewer
without one (against a real Temporal server and worker)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpResponse
from django.test import AsyncClient
from django.urls import URLPattern, URLResolver, get_resolver
from django_otp.oath import TOTP
from pytest_django.fixtures import Settings
from temporalio.client import Client as TemporalClient

from config.accounts.middleware import DECISION_VIEWS
from tests.approvals import (
    pending_approvals_terminate,
    refund_requested,
    reviewer_create,
    row_id,
)
from tests.factories import PASSWORD, auser_create
from tests.helpers import body, html_element, html_text, logged_in
from tests.security.support import admin_create, htmx, still_pending

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]
ENROL = "/accounts/second-factor/"
APP_SETUP = "/accounts/second-factor/app/"
RECOVERY = "/accounts/second-factor/recovery-codes/"
VERIFY = "/accounts/verify/"


@pytest.fixture
def required(settings: Settings) -> None:
    settings.REQUIRE_SECOND_FACTOR = True


# --- what a person does -----------------------------------------------------------------


def app_code(secret: str, *, steps_ahead: int = 0) -> str:
    """What an authenticator app holding `secret` (as the page shows it) displays now, or
    `steps_ahead` periods of 30 s later (an app a little ahead, within tolerance)."""
    key = base64.b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8))
    totp = TOTP(key, step=30, t0=0, digits=6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


async def app_enrol(client: AsyncClient, *, next_url: str = "") -> str:
    """Sets up an authenticator app from the page; returns the secret it showed."""
    page = await client.get(APP_SETUP, {"next": next_url} if next_url else {})
    assert page.status_code == 200, page.headers.get("Location")
    secret = html_text(html_element(body(page), "totp-secret") or "").strip()
    assert "<svg" in (html_element(body(page), "totp-qr") or "")
    done = await client.post(APP_SETUP, {"code": app_code(secret), "next": next_url})
    assert done.status_code == 302, html_text(body(done))
    assert done.headers["Location"].startswith(RECOVERY)
    return secret


async def recovery_codes_shown(client: AsyncClient) -> list[str]:
    page = await client.get(RECOVERY)
    assert page.status_code == 200, page.headers.get("Location")
    return re.findall(
        r"<code>([a-z2-7]{8})</code>", html_element(body(page), "recovery-codes") or ""
    )


async def password_login(user: AbstractBaseUser) -> AsyncClient:
    client = AsyncClient()
    response = await client.post(
        "/accounts/login/", {"username": user.get_username(), "password": PASSWORD}
    )
    assert response.status_code == 302, html_text(body(response))
    return client


async def verify(
    client: AsyncClient, code: str, *, method: str = "app", next_url: str = ""
) -> HttpResponse:
    return await client.post(VERIFY, {"method": method, "code": code, "next": next_url})


def error_text(response: HttpResponse, element_id: str = "verify-error") -> str:
    return html_text(html_element(body(response), element_id) or "").strip()


def flash_text(response: HttpResponse) -> str:
    return html_text(html_element(body(response), "flash") or "").strip()


# --- the requirement ---------------------------------------------------------------------


@pytest.mark.usefixtures("required")
async def test_a_reviewer_without_a_second_factor_is_sent_to_set_one_up() -> None:
    client = await logged_in(await reviewer_create())

    page = await client.get("/reviews/")
    enrolment = await client.get(page.headers["Location"])
    from_htmx = await client.get("/reviews/history/", headers=htmx("/reviews/history/"))

    assert page.status_code == 302
    assert page.headers["Location"] == f"{ENROL}?next=%2Freviews%2F"
    assert enrolment.status_code == 200
    assert "it needs a second factor before you go on" in html_text(
        html_element(body(enrolment), "enrol-notice") or ""
    )
    assert from_htmx.headers["HX-Redirect"] == f"{ENROL}?next=%2Freviews%2Fhistory%2F"


@pytest.mark.usefixtures("required")
async def test_staff_without_a_second_factor_cannot_reach_the_admin() -> None:
    client = await logged_in(await admin_create())

    response = await client.get("/admin/")

    assert response.status_code == 302
    assert response.headers["Location"] == f"{ENROL}?next=%2Fadmin%2F"


@pytest.mark.usefixtures("required")
async def test_people_without_approval_power_are_not_asked() -> None:
    client = await logged_in(await auser_create())

    assert (await client.get("/")).status_code == 200


async def test_nothing_is_asked_when_it_is_not_required() -> None:
    reviewer = await logged_in(await reviewer_create())
    admin = await logged_in(await admin_create())

    assert (await reviewer.get("/reviews/")).status_code == 200
    assert (await admin.get("/admin/")).status_code == 200


def _setting_in_a_fresh_process(**environ: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "REQUIRE_SECOND_FACTOR", "DJANGO_SETTINGS_MODULE")
    }
    env.update(environ, SECRET_KEY="x" * 50, ALLOWED_HOSTS="chat.example.com")
    completed = subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.REQUIRE_SECOND_FACTOR)"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout.strip()


def test_production_mode_requires_it_unless_told_otherwise() -> None:
    assert _setting_in_a_fresh_process(DEBUG="False") == "True"
    assert _setting_in_a_fresh_process(DEBUG="False", REQUIRE_SECOND_FACTOR="False") == "False"
    assert _setting_in_a_fresh_process(DEBUG="True") == "False"
    assert _setting_in_a_fresh_process(DEBUG="True", REQUIRE_SECOND_FACTOR="True") == "True"


# --- enrolment and verification ----------------------------------------------------------


@pytest.mark.usefixtures("required")
async def test_an_app_is_set_up_then_asked_for_after_every_password_login() -> None:
    rita = await reviewer_create()
    client = await password_login(rita)
    assert (await client.get("/reviews/")).headers["Location"] == f"{ENROL}?next=%2Freviews%2F"

    page = await client.get(APP_SETUP)
    secret = html_text(html_element(body(page), "totp-secret") or "").strip()
    wrong = await client.post(
        APP_SETUP, {"code": "000000" if app_code(secret) != "000000" else "111111"}
    )
    secret_after_reload = html_text(
        html_element(body(await client.get(APP_SETUP)), "totp-secret") or ""
    )
    done = await client.post(APP_SETUP, {"code": app_code(secret), "next": "/reviews/"})
    codes = await recovery_codes_shown(client)
    reviews_now = await client.get("/reviews/")

    assert wrong.status_code == 422
    assert "That code is not right" in error_text(wrong, "setup-error")
    assert secret_after_reload.strip() == secret  # a reload keeps the QR code they scanned
    assert done.headers["Location"] == f"{RECOVERY}?next=%2Freviews%2F"
    assert len(codes) == 10
    assert reviews_now.status_code == 200

    # The next login: the password is not enough.
    client = await password_login(rita)
    asked = await client.get("/reviews/")
    assert asked.headers["Location"] == f"{VERIFY}?next=%2Freviews%2F"
    verify_page = await client.get(asked.headers["Location"])
    replayed = await verify(client, app_code(secret), next_url="/reviews/")
    await asyncio.sleep(1.1)  # the wrong code above costs a second of throttling
    session_before = client.cookies["sessionid"].value
    passed = await verify(client, app_code(secret, steps_ahead=1), next_url="/reviews/")

    assert verify_page.status_code == 200
    assert "Code from your app" in html_text(body(verify_page))
    assert replayed.status_code == 422
    assert "already used" in error_text(replayed)
    assert passed.status_code == 302
    assert passed.headers["Location"] == "/reviews/"
    assert client.cookies["sessionid"].value != session_before  # a new session id
    assert (await client.get("/reviews/")).status_code == 200


async def test_wrong_codes_make_the_next_try_wait() -> None:
    alice = await auser_create()
    client = await logged_in(alice)
    secret = await app_enrol(client)
    client = await password_login(alice)

    wrong = await verify(
        client, "000000" if app_code(secret, steps_ahead=1) != "000000" else "111111"
    )
    too_soon = await verify(client, app_code(secret, steps_ahead=1))
    await asyncio.sleep(1.1)
    in_time = await verify(client, app_code(secret, steps_ahead=1))

    assert "That code is not right" in error_text(wrong)
    assert too_soon.status_code == 422
    assert error_text(too_soon) == "Too many wrong codes: try again in 1 second."
    assert in_time.status_code == 302


async def test_a_recovery_code_works_once() -> None:
    alice = await auser_create()
    client = await logged_in(alice)
    await app_enrol(client)
    codes = await recovery_codes_shown(client)

    client = await password_login(alice)
    typed = f"{codes[0][:4].upper()}-{codes[0][4:].upper()}"  # as people copy it
    first = await verify(client, typed, method="recovery")
    left = await recovery_codes_shown(client)
    client = await password_login(alice)
    again = await verify(client, codes[0], method="recovery")

    assert first.status_code == 302
    assert left == codes[1:]
    assert again.status_code == 422
    assert error_text(again) == "That recovery code is not right, or was already used."


async def test_new_recovery_codes_replace_the_old_ones() -> None:
    alice = await auser_create()
    client = await logged_in(alice)
    await app_enrol(client)
    old = await recovery_codes_shown(client)

    regenerated = await client.post(RECOVERY)
    new = await recovery_codes_shown(client)
    client = await password_login(alice)
    with_old = await verify(client, old[1], method="recovery")
    await asyncio.sleep(1.1)  # a wrong code costs a second of throttling
    with_new = await verify(client, new[1], method="recovery")

    assert regenerated.status_code == 302
    assert len(new) == 10
    assert not set(old) & set(new)
    assert with_old.status_code == 422
    assert with_new.status_code == 302


async def test_the_password_alone_cannot_add_a_device_or_read_the_codes() -> None:
    """Otherwise a stolen password would be enough to enrol the thief's own factor."""
    alice = await auser_create()
    await app_enrol(await logged_in(alice))
    client = await password_login(alice)

    setup = await client.get(APP_SETUP)
    setup_post = await client.post(APP_SETUP, {"code": "123456"})
    codes = await client.get(RECOVERY)
    regenerate = await client.post(RECOVERY)
    passkey = await client.post("/accounts/passkeys/registration/begin/")

    for response in (setup, setup_post, codes, regenerate):
        assert response.status_code == 302
        assert response.headers["Location"].startswith(f"{VERIFY}?next=")
    assert passkey.status_code == 403
    assert "verify your identity first" in passkey.json()["detail"]


async def test_someone_who_chose_a_second_factor_is_asked_for_it_even_when_not_required() -> None:
    alice = await auser_create()
    await app_enrol(await logged_in(alice))

    client = await password_login(alice)
    home = await client.get("/")

    assert home.status_code == 302
    assert home.headers["Location"] == f"{VERIFY}?next=%2F"


async def test_a_device_is_removed_but_not_the_one_this_session_was_verified_with() -> None:
    alice = await auser_create()
    client = await logged_in(alice)
    await app_enrol(client)
    await app_enrol(client)  # a second phone
    page = body(await client.get(ENROL))
    devices = re.findall(r'name="device" value="([^"]+)"', page)

    removed = await client.post("/accounts/second-factor/remove/", {"device": devices[0]})
    after = body(await client.get(ENROL))
    in_use = html_element(after, "devices") or ""
    refused = await client.post(
        "/accounts/second-factor/remove/", {"device": re.sub(r"/\d+$", "/999999", devices[0])}
    )

    assert len(devices) == 1  # the one in use has no Remove button
    assert removed.status_code == 302
    assert "used for this session" in html_text(in_use)
    assert 'name="device"' not in in_use
    assert refused.status_code == 409
    assert "No such device on your account." in html_text(body(refused))


class ClientAt(AsyncClient):
    """A client that reaches the site by another host name (the Host header)."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host.encode()

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)
        scope["headers"] = [(k, self.host if k == b"host" else v) for k, v in scope["headers"]]
        return scope


async def test_a_passkey_needs_a_domain_name_and_the_page_says_so() -> None:
    user = await auser_create()
    by_address, by_name = ClientAt("127.0.0.1:8000"), ClientAt("localhost:8000")
    for client in (by_address, by_name):
        await client.aforce_login(user)

    page_by_address = body(await by_address.get(ENROL))
    page_by_name = body(await by_name.get(ENROL))

    assert "open it as http://localhost" in html_text(page_by_address)
    assert 'id="passkey-register-button"' not in page_by_address
    assert 'id="passkey-register-button"' in page_by_name


# --- decisions ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def no_leftover_approvals(temporal: TemporalClient) -> AsyncIterator[None]:
    await pending_approvals_terminate(temporal)
    yield
    await pending_approvals_terminate(temporal)


@pytest.mark.usefixtures("required", "no_leftover_approvals")
async def test_a_reviewer_without_a_second_factor_is_refused_decisions_until_enrolled(
    temporal: TemporalClient, worker: object
) -> None:
    approval = await refund_requested(temporal, await auser_create())
    reviewer = await logged_in(await reviewer_create())
    base = f"/reviews/{approval.conversation_id}/{approval.call_id}/"
    decision = {"action": "approve", "arguments_hash": approval.arguments_hash}
    from_row = htmx("/reviews/", target=f"{row_id(approval)}-result")

    decide = await reviewer.post(f"{base}decide/", decision, headers=from_row)
    decide_page = await reviewer.post(f"{base}decide/", decision)
    claim = await reviewer.post(f"{base}claim/", headers=from_row)
    bulk = await reviewer.post(
        "/reviews/bulk/",
        {
            "item": f"{approval.conversation_id}:{approval.call_id}:{approval.arguments_hash}",
            "action": "approve",
        },
        headers=htmx("/reviews/"),
    )

    expected = (
        "Your account can decide approvals, so it needs a second factor: set one up on "
        "/accounts/second-factor/, then try again."
    )
    assert flash_text(decide) == expected
    assert decide_page.status_code == 403
    assert expected in html_text(body(decide_page))
    assert flash_text(claim) == expected
    assert flash_text(bulk) == expected
    assert await still_pending(temporal, approval)

    # The same reviewer, once enrolled (this session is then verified): decided.
    await app_enrol(reviewer)
    approved = await reviewer.post(f"{base}decide/", decision, headers=from_row)
    assert approved.status_code == 200
    assert "Approved" in html_text(body(approved))
    assert not await still_pending(temporal, approval)


@pytest.mark.usefixtures("no_leftover_approvals")
async def test_a_reviewer_who_has_a_device_must_verify_before_deciding(
    temporal: TemporalClient, worker: object
) -> None:
    """Even when not required: the session of a password alone decides nothing."""
    approval = await refund_requested(temporal, await auser_create())
    rita = await reviewer_create()
    await app_enrol(await logged_in(rita))
    client = await password_login(rita)

    refused = await client.post(
        f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/",
        {"action": "approve", "arguments_hash": approval.arguments_hash},
        headers=htmx("/reviews/", target=f"{row_id(approval)}-result"),
    )

    assert flash_text(refused) == (
        "Deciding approvals needs your second factor in this session: verify it on "
        "/accounts/verify/, then try again."
    )
    assert await still_pending(temporal, approval)


def test_every_view_named_as_deciding_exists() -> None:
    """A renamed decision view would silently lose the check: the names must resolve."""
    names: set[str] = set()

    def collect(patterns: list[Any], namespace: str = "") -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                collect(
                    pattern.url_patterns, ":".join(filter(None, [namespace, pattern.namespace]))
                )
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.add(f"{namespace}:{pattern.name}" if namespace else pattern.name)

    collect(get_resolver().url_patterns)

    assert DECISION_VIEWS <= names

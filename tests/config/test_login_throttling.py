"""Login throttling (django-axes) through the real ASGI stack, as a browser would log in:
lockout by username and by address, the wait on the login page, the cool-off, the
admin's login, and what admins see of it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import zoneinfo
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpResponse
from django.test import AsyncClient
from pytest_django.fixtures import Settings

from tests.approvals import reviewer_create
from tests.factories import PASSWORD, auser_create
from tests.helpers import body, html_element, html_text, logged_in
from tests.security.support import admin_create

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
WRONG = "not-the-password"
BAD_PASSWORD = "Please enter a correct username and password."


class Browser(AsyncClient):
    """A client at `address`: the ASGI scope's `client`, as daphne fills it in."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)
        scope["client"] = [self.address, 50000]
        return scope


def browser(address: str = "127.0.0.1") -> AsyncClient:
    return Browser(address)


async def log_in(
    client: AsyncClient,
    username: str,
    password: str,
    *,
    url: str = LOGIN,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    return await client.post(url, {"username": username, "password": password}, headers=headers)


async def signed_in(client: AsyncClient) -> bool:
    return (await client.get("/")).status_code == 200


def lockout_text(response: HttpResponse) -> str:
    return html_text(html_element(body(response), "lockout") or "")


async def test_the_fifth_wrong_password_locks_the_account_and_the_page_says_how_long() -> None:
    rita = await reviewer_create("rita")
    client = browser()

    answers = [await log_in(client, rita.get_username(), WRONG) for _ in range(4)]
    locked = await log_in(client, rita.get_username(), WRONG)
    right_password = await log_in(client, rita.get_username(), PASSWORD)

    assert [a.status_code for a in answers] == [200] * 4
    assert all(BAD_PASSWORD in html_text(body(a)) for a in answers)
    assert locked.status_code == 429
    assert lockout_text(locked).startswith(
        "Too many failed logins for this account or from this address. Try again in 15 minutes"
    )
    assert 890 <= int(locked.headers["Retry-After"]) <= 900
    # Locked means locked: the right password is refused too, with the same wait.
    assert right_password.status_code == 429
    assert "Try again in 15 minutes" in lockout_text(right_password)
    assert not await signed_in(client)


async def test_the_limit_and_the_wait_come_from_settings(settings: Settings) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=3)
    user = await auser_create()
    client = browser()

    first = await log_in(client, user.get_username(), WRONG)
    second = await log_in(client, user.get_username(), WRONG)

    assert first.status_code == 200
    assert second.status_code == 429
    assert "Try again in 3 minutes" in lockout_text(second)


async def test_the_lockout_ends_after_the_cool_off_and_tries_during_it_do_not_extend_it(
    settings: Settings,
) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(seconds=3)
    rita = await reviewer_create("rita")
    client = browser()
    await log_in(client, rita.get_username(), WRONG)
    locked = await log_in(client, rita.get_username(), WRONG)
    locked_at = time.monotonic()

    await asyncio.sleep(1)
    # An attacker keeps trying during the lockout: refused, and not counted (were they,
    # the lockout would last until 3 s after the last of these).
    during = [await log_in(client, rita.get_username(), WRONG) for _ in range(3)]
    await asyncio.sleep(max(0.0, locked_at + 3.3 - time.monotonic()))
    after = await log_in(client, rita.get_username(), PASSWORD)

    assert locked.status_code == 429
    assert [d.status_code for d in during] == [429] * 3
    assert "Try again in 1 minute " in lockout_text(during[0])
    assert after.status_code == 302
    assert await signed_in(client)


async def test_one_address_trying_many_usernames_is_locked_out_for_every_username() -> None:
    victim = await auser_create()
    attacker = browser("203.0.113.7")
    for n in range(5):
        await log_in(attacker, f"guess{n}", WRONG)

    from_attacker = await log_in(attacker, victim.get_username(), PASSWORD)
    elsewhere = browser("198.51.100.2")
    from_victim = await log_in(elsewhere, victim.get_username(), PASSWORD)

    assert from_attacker.status_code == 429
    assert not await signed_in(attacker)
    assert from_victim.status_code == 302
    assert await signed_in(elsewhere)


async def test_one_username_tried_from_many_addresses_is_locked_out_from_everywhere() -> None:
    rita = await reviewer_create("rita")
    for n in range(5):
        await log_in(browser(f"203.0.113.{n + 1}"), rita.get_username(), WRONG)

    fresh_address = await log_in(browser("198.51.100.2"), rita.get_username(), PASSWORD)

    assert fresh_address.status_code == 429
    assert "Try again in 15 minutes" in lockout_text(fresh_address)


async def test_a_forged_forwarded_for_header_does_not_buy_more_guesses() -> None:
    """Behind the proxy daphne sets REMOTE_ADDR from X-Forwarded-For (--proxy-headers);
    a header the client sends itself is not read."""
    client = browser()
    answers = [
        await log_in(client, f"guess{n}", WRONG, headers={"X-Forwarded-For": f"192.0.2.{n}"})
        for n in range(6)
    ]

    assert [a.status_code for a in answers] == [200] * 4 + [429] * 2


async def test_the_admin_login_is_throttled_too() -> None:
    boss = await admin_create("boss")
    client = browser()

    answers = [await log_in(client, boss.get_username(), WRONG, url=ADMIN_LOGIN) for _ in range(5)]
    right_password = await log_in(client, boss.get_username(), PASSWORD, url=ADMIN_LOGIN)

    assert [a.status_code for a in answers] == [200] * 4 + [429]
    assert right_password.status_code == 429
    assert "Try again in 15 minutes" in lockout_text(right_password)
    # The page logs in for the admin: its form carries the admin as the next page.
    assert 'name="next" value="/admin/"' in body(right_password)
    assert (await client.get("/admin/")).status_code == 302


async def test_admins_see_failed_logins_and_lockouts_and_can_end_one() -> None:
    rita = await reviewer_create("rita")
    attacker = browser("203.0.113.9")
    for _ in range(5):
        await log_in(attacker, rita.get_username(), WRONG)
    admin = await logged_in(await admin_create("boss"))

    attempts = await admin.get("/admin/axes/accessattempt/")
    failures = await admin.get("/admin/axes/accessfailurelog/")
    # Deleting the attempt (the admin's action) ends the lockout at once.
    await unlock(admin, rita)
    after = await log_in(browser("203.0.113.9"), rita.get_username(), PASSWORD)

    assert attempts.status_code == 200
    assert "rita" in html_text(body(attempts))
    assert "203.0.113.9" in html_text(body(attempts))
    assert failures.status_code == 200
    assert html_text(body(failures)).count("203.0.113.9") == 5
    assert after.status_code == 302


async def unlock(admin: AsyncClient, user: AbstractBaseUser) -> None:
    from axes.models import AccessAttempt

    ids = [a.pk async for a in AccessAttempt.objects.filter(username=user.get_username())]
    response = await admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302, body(response)


async def test_the_wait_reads_in_the_readers_time_zone() -> None:
    zone = zoneinfo.ZoneInfo("Pacific/Kiritimati")  # UTC+14: never the clock UTC shows
    client = browser()
    client.cookies["tz"] = "Pacific/Kiritimati"
    before = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
    for _ in range(5):
        response = await log_in(client, "someone", WRONG)
    after = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)

    text = lockout_text(response)
    assert response.status_code == 429
    assert any(f"{moment.astimezone(zone):%H:%M})" in text for moment in (before, after)), text
    assert f"{before:%H:%M})" not in text

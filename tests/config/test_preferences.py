"""The theme a signed-in user chose is stored, validated and rendered on <html>; every
page carries a strict Content-Security-Policy whose nonce is the one on its scripts."""

from __future__ import annotations

import re

import pytest
from django.test import AsyncClient

from chatapp.models import DisplayPreference
from tests.factories import auser_create
from tests.helpers import body, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_chosen_theme_is_stored_and_rendered_server_side() -> None:
    alice = await auser_create()
    client = await logged_in(alice)
    page = body(await client.get("/"))
    # No choice yet: the system's (or this browser's) theme, decided by theme.js.
    assert "data-theme=" not in page.split("<head>")[0]

    response = await client.post("/preferences/theme/", {"theme": "dark"})
    assert response.status_code == 204
    page = body(await client.get("/"))
    assert '<html lang="en" data-theme="dark" data-theme-stored>' in page
    assert (await DisplayPreference.objects.aget(user=alice)).theme == "dark"

    await client.post("/preferences/theme/", {"theme": "light"})
    assert '<html lang="en" data-theme="light" data-theme-stored>' in body(await client.get("/"))
    assert await DisplayPreference.objects.filter(user=alice).acount() == 1


async def test_a_theme_outside_the_choices_or_without_login_is_refused() -> None:
    client = await logged_in(await auser_create())
    refused = await client.post("/preferences/theme/", {"theme": "purple"})
    assert refused.status_code == 400
    assert "Choose light, dark or system" in body(refused)
    assert (await client.get("/preferences/theme/")).status_code == 405
    anonymous = await AsyncClient().post("/preferences/theme/", {"theme": "dark"})
    assert anonymous.status_code == 302
    assert not await DisplayPreference.objects.aexists()


async def test_pages_carry_a_strict_csp_with_the_nonce_of_their_scripts() -> None:
    response = await AsyncClient().get("/accounts/login/")
    policy = response.headers["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce
    assert directives["script-src"] == ["'self'", f"'nonce-{nonce.group(1)}'"]
    assert directives["style-src"] == ["'self'", f"'nonce-{nonce.group(1)}'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    page = body(response)
    # htmx is the only inline-capable script, and it carries this response's nonce.
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert inline_scripts == []
    assert f'nonce="{nonce.group(1)}"' in page
    assert "includeIndicatorStyles" in page
    assert " style=" not in page and "<style" not in page


def test_a_fragment_costs_no_theme_query_and_a_page_one(rf: object) -> None:
    from django.db import connection
    from django.template import engines
    from django.test.utils import CaptureQueriesContext

    from config.preferences import page
    from tests.factories import user_create

    user = user_create()
    DisplayPreference.objects.create(user=user, theme="dark")
    request = rf.get("/")  # type: ignore[attr-defined]
    request.user = user
    engine = engines["django"]

    def theme_queries(template: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            engine.from_string(template).render(page(request), request)
        return sum("displaypreference" in q["sql"] for q in captured)

    assert theme_queries("<p>a fragment</p>") == 0
    request.__dict__.pop("_display_theme", None)
    assert theme_queries('<html{% if theme_stored %} data-theme="{{ theme }}"{% endif %}>') == 1

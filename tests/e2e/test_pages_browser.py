"""Every page the product serves, as alice, rita (reviewer) and admin see it: no CSP
violation (with htmx and its websocket working under the policy), no serious or
critical axe-core finding in the light and the dark theme, and no sideways scrolling
at 1280 and 390 px."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.composer import composer_send
from tests.e2e.pages import (
    DESKTOP,
    PHONE,
    axe_problems,
    csp_violations,
    log_in,
    new_context,
    sideways_overflow,
)
from tests.e2e.test_chat_browser import CONVERSATION_PATH

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

pytestmark = [pytest.mark.e2e]


async def inspect(page: Page, name: str, found: dict[str, list[str]], *, ours: bool = True) -> None:
    """Checks the page now shown at both sizes and in both themes (the admin's own
    layout at 390 px is Django's, so only our pages are held to fitting it)."""
    # Before axe runs: its own checks must not be counted against the page.
    problems = [f"CSP: {line}" for line in await csp_violations(page)]
    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)  # type: ignore[arg-type]
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
            # Colours may be transitioning to the new scheme (the admin's links are).
            await page.wait_for_timeout(400)
            overflow = await sideways_overflow(page)
            if overflow > 0 and (ours or viewport is DESKTOP):
                problems.append(f"{viewport['width']} px {scheme}: {overflow} px too wide")
            if viewport is DESKTOP:
                where = f"{viewport['width']} px {scheme}"
                problems += [f"{where}: axe {line}" for line in await axe_problems(page)]
    await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    await page.emulate_media(color_scheme="light")
    # What axe did is not the page's doing: the next look at this page starts afresh.
    await page.evaluate("window.__cspViolations = []")
    found[name] = problems


async def blocked_sockets(page: Page) -> list[str]:
    return [
        line.split(" blocked ")[1].split(" at ")[0]
        for line in await csp_violations(page)
        if line.startswith("connect-src blocked ws://")
    ]


async def test_every_page_passes_csp_axe_and_fits_the_screen(
    product: RunningProduct, browser: Browser
) -> None:
    url = product.url
    found: dict[str, list[str]] = {}
    errors: list[str] = []

    alice = await (await new_context(browser)).new_page()
    alice.on("pageerror", lambda error: errors.append(str(error)))
    await alice.goto(f"{url}/accounts/login/")
    await inspect(alice, "login", found)
    await log_in(alice, url, "alice")
    await inspect(alice, "chat, new conversation", found)

    # htmx posts the message and the reply and approval card arrive over the websocket.
    await composer_send(alice, "refund 60 on order 1013")
    await expect(alice).to_have_url(CONVERSATION_PATH)
    await expect(alice.locator("#approvals .approval-card")).to_contain_text(
        "Waiting for a reviewer"
    )
    conversation_id = alice.url.rstrip("/").rsplit("/", 1)[-1]
    await inspect(alice, "chat, conversation", found)
    await alice.goto(f"{url}/search/?q=refund")
    await expect(alice.locator("mark").first).to_be_visible()
    await inspect(alice, "search", found)
    await alice.goto(f"{url}/archive/")
    await inspect(alice, "archive list", found)
    await alice.goto(f"{url}/c/{conversation_id}/")

    # The policy is enforced: a socket to any other origin is refused by the browser.
    await alice.evaluate("() => { try { new WebSocket('ws://127.0.0.2:9/'); } catch (error) {} }")
    for _ in range(50):
        if await blocked_sockets(alice):
            break
        await alice.wait_for_timeout(100)
    assert await blocked_sockets(alice) == ["ws://127.0.0.2:9/"]

    rita = await (await new_context(browser)).new_page()
    rita.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(rita, url, "rita")
    await rita.goto(f"{url}/reviews/")
    row = rita.locator("tr.approval-row", has_text="Refund 60.00 EUR on order #1013")
    await expect(row).to_be_visible()
    await inspect(rita, "review inbox", found)
    await row.locator(".open-link").click()
    await expect(rita.locator("#detail-pane")).to_contain_text("refund 60 on order 1013")
    await inspect(rita, "review inbox with the pane", found)
    detail_href = await row.locator(".open-link").get_attribute("href")
    await rita.goto(f"{url}{detail_href}")
    await expect(rita.locator("h1")).to_contain_text("Refund 60.00 EUR")
    await inspect(rita, "request detail", found)
    await rita.goto(f"{url}/reviews/history/")
    await inspect(rita, "decision history", found)
    await rita.goto(f"{url}/reviews/email/not-a-signed-link/")
    await expect(rita.locator("#decision-result")).to_be_visible()
    await inspect(rita, "email link confirmation", found)
    await rita.goto(f"{url}/accounts/second-factor/")
    await inspect(rita, "second factor", found)
    await rita.goto(f"{url}/accounts/second-factor/app/")
    await inspect(rita, "authenticator app set-up", found)
    await rita.goto(f"{url}/accounts/step-up/")
    await inspect(rita, "step-up", found)

    admin = await (await new_context(browser)).new_page()
    await log_in(admin, url, "admin")
    await admin.goto(f"{url}/admin/")
    await inspect(admin, "admin index", found, ours=False)
    await admin.goto(f"{url}/admin/chatapp/conversation/{conversation_id}/change/")
    await expect(admin.locator("#content h1")).to_be_visible()
    await inspect(admin, "admin change page", found, ours=False)
    # The admin pages the product adds.
    await admin.goto(f"{url}/admin/chatapp/modelcall/report/")
    await inspect(admin, "admin usage and cost report", found, ours=False)
    await admin.goto(f"{url}/admin/chatapp/agent/")
    await inspect(admin, "admin agents", found, ours=False)

    assert {name: lines for name, lines in found.items() if lines} == {}
    assert errors == []

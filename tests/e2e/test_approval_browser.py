"""Two people in two real browsers: alice asks for a refund, rita approves it live."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.composer import composer_send
from tests.e2e.test_chat_browser import BASE_DIR, CONVERSATION_PATH, DEMO_PASSWORD

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

pytestmark = [
    pytest.mark.e2e,
]
SCREENSHOTS = BASE_DIR / "var"


async def log_in_as(browser: Browser, product: RunningProduct, username: str) -> Page:
    # A context each: two people, two sessions.
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{product.url}/accounts/login/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{product.url}/")
    return page


async def test_a_refund_waits_for_a_reviewer_who_approves_it_live(
    product: RunningProduct, browser: Browser
) -> None:
    rita = await log_in_as(browser, product, "rita")
    await rita.goto(f"{product.url}/reviews/")
    await expect(rita.locator("h1")).to_contain_text("Pending approvals")
    alice = await log_in_as(browser, product, "alice")
    errors: list[str] = []
    for page in (alice, rita):
        page.on("pageerror", lambda error: errors.append(str(error)))

    await composer_send(alice, "refund 60 on order 1013")
    await expect(alice).to_have_url(CONVERSATION_PATH)
    card = alice.locator("#approvals .approval-card")
    await expect(card).to_contain_text("Waiting for a reviewer")
    await expect(card).to_contain_text("Refund 60.00 EUR on order #1013")

    # The request appears on rita's open dashboard without a reload.
    row = rita.locator("tr", has_text="Refund 60.00 EUR on order #1013")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("alice")
    await rita.screenshot(path=str(SCREENSHOTS / "e2e-dashboard.png"), full_page=True)
    await row.get_by_role("button", name="Approve").click()
    await expect(row).to_be_hidden()

    # alice sees the outcome and the agent's answer, live.
    outcome = alice.locator("#transcript article.approval-outcome")
    await expect(outcome).to_contain_text(re.compile(r"approved\s+by rita"))
    await expect(card).to_have_count(0)
    answer = alice.locator("#transcript article.msg.assistant").last
    await expect(answer).to_contain_text("issue_refund")
    await expect(answer).to_contain_text("60.00")
    await alice.screenshot(path=str(SCREENSHOTS / "e2e-approval-outcome.png"), full_page=True)
    assert errors == []

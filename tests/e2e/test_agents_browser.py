"""Two people in two real browsers, with the agents `make run` seeds: alice picks the
warehouse agent, whose tools come from the demo MCP server (a stdio child of the worker);
its write waits for rita, who approves it live; then alice is handed back to support."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.composer import composer_send
from tests.e2e.test_approval_browser import SCREENSHOTS, log_in_as
from tests.e2e.test_chat_browser import CONVERSATION_PATH

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

pytestmark = [pytest.mark.e2e]

RESERVATION = 'Warehouse: Reserve stock(order_id=1001, quantity=2, sku="KB-01")'


async def test_the_warehouse_agent_s_mcp_write_is_approved_live(
    product: RunningProduct, browser: Browser
) -> None:
    rita = await log_in_as(browser, product, "rita")
    await rita.goto(f"{product.url}/reviews/")
    alice = await log_in_as(browser, product, "alice")
    errors: list[str] = []
    for page in (alice, rita):
        page.on("pageerror", lambda error: errors.append(str(error)))

    # The picker offers both seeded agents, the support agent preselected.
    support = alice.get_by_role("radio", name=re.compile("Shop support"))
    warehouse = alice.get_by_role("radio", name=re.compile("Warehouse"))
    await expect(support).to_be_checked()
    await warehouse.check()

    await composer_send(alice, "reserve 2 of KB-01 for order 1001")
    await expect(alice).to_have_url(CONVERSATION_PATH)
    await expect(alice.locator("#conversation-agent")).to_have_text("Agent: Warehouse")
    card = alice.locator("#approvals .approval-card")
    await expect(card).to_contain_text("Waiting for a reviewer")
    await expect(card).to_contain_text(RESERVATION)

    # The MCP tool's request reaches rita's open dashboard like any other.
    row = rita.locator("tr", has_text=RESERVATION)
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("warehouse__reserve_stock")
    await rita.screenshot(path=str(SCREENSHOTS / "e2e-mcp-dashboard.png"), full_page=True)
    await row.get_by_role("button", name="Approve").click()
    await expect(row).to_be_hidden()

    outcome = alice.locator("#transcript article.approval-outcome")
    await expect(outcome).to_contain_text(re.compile(r"approved\s+by rita"))
    answer = alice.locator("#transcript article.msg.assistant").last
    await expect(answer).to_contain_text("warehouse__reserve_stock")
    await expect(answer).to_contain_text("KB-01")

    # The warehouse agent hands alice back to support: said in the transcript, live.
    await composer_send(alice, "talk to support")
    await expect(alice.locator("#transcript .handoff")).to_have_text("Now talking to: Shop support")
    await expect(alice.locator("#conversation-agent")).to_have_text("Agent: Shop support")
    await alice.screenshot(path=str(SCREENSHOTS / "e2e-mcp-handoff.png"), full_page=True)
    assert errors == []

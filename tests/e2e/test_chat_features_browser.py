"""The chat as people use ChatGPT-like tools: tool results live, replies formatted as
they stream (highlighted code, a copy button), and archived conversations reachable."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.composer import composer_send as send

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

DEMO_PASSWORD = "demo-pass-123"
CONVERSATION_PATH = re.compile(r"/c/[0-9a-f-]{36}/$")
pytestmark = [pytest.mark.e2e]

CODE_REPLY = (
    "Use **this**:\n\n```python\ndef total(items):\n    return sum(items)\n```\n\n"
    "It adds the items up one by one and returns the total, which is zero for none."
)


async def rule(product: RunningProduct, **fields: object) -> None:
    async with aiohttp.ClientSession(product.scripted_model_url) as session:
        async with session.post("/control/rules", json={"rules": [fields]}) as added:
            assert added.status == 200, await added.text()


async def log_in(browser: Browser, product: RunningProduct, width: int, height: int) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=product.url)
    page = await context.new_page()
    await page.goto(f"{product.url}/accounts/login/")
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{product.url}/")
    return page


async def test_a_tool_result_appears_without_a_reload(
    product: RunningProduct, browser: Browser
) -> None:
    page = await log_in(browser, product, 1280, 800)
    await send(page, "hello, tools next")
    await expect(page).to_have_url(CONVERSATION_PATH)
    await expect(page.locator("#transcript article.msg.assistant")).to_have_count(1)
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    # On the open page: the result comes over its websocket as soon as the tool is done.
    await send(page, "status of order 1001")

    result = page.locator("#transcript details.tool-result")
    await expect(result).to_have_count(1)
    await expect(result.locator("summary")).to_have_text(re.compile("Result of get_order"))
    await result.locator("summary").click()
    await expect(result.locator("pre")).to_contain_text("1001")
    await expect(page.locator("#transcript article.msg.assistant").last).to_contain_text("1001")
    assert loads == []  # it came over the websocket

    await page.reload()
    await expect(page.locator("#transcript details.tool-result")).to_have_count(1)


async def test_a_reply_streams_formatted_with_highlighted_code_and_copies_whole(
    product: RunningProduct, browser: Browser
) -> None:
    await rule(product, match="format-check", chunk_delay_ms=250, reply=CODE_REPLY)
    page = await log_in(browser, product, 1280, 800)
    await send(page, "format-check please")

    streaming = page.locator("#live-reply article.streaming .stream")
    # Formatted while it streams: bold, then a highlighted code block, never raw marks.
    await expect(streaming.locator("strong")).to_have_text("this")
    await expect(streaming.locator("pre.highlight span.k").first).to_have_text("def")
    assert "**" not in await streaming.inner_text()

    reply = page.locator("#transcript article.msg.assistant").last
    await expect(reply.locator("pre.highlight span.k").first).to_have_text("def")
    color = await reply.locator("pre.highlight span.k").first.evaluate(
        "e => getComputedStyle(e).color"
    )
    assert color != await reply.locator("p").first.evaluate("e => getComputedStyle(e).color")
    await reply.get_by_role("button", name="Copy the whole reply as Markdown").click()
    await expect(reply.get_by_role("button", name="Copy the whole reply as Markdown")).to_have_text(
        "Copied"
    )
    assert await page.evaluate("navigator.clipboard.readText()") == CODE_REPLY


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
async def test_archive_then_find_and_unarchive_the_conversation(
    product: RunningProduct, browser: Browser, size: tuple[int, int]
) -> None:
    title = f"archive me {size[0]}"
    page = await log_in(browser, product, *size)
    await send(page, title)
    await expect(page).to_have_url(CONVERSATION_PATH)
    url = page.url
    await expect(page.locator("#transcript article.msg.assistant")).to_have_count(1)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Archive").click()
    await expect(page).to_have_url(f"{product.url}/")

    await page.goto(f"{product.url}/archive/")
    archived = page.locator("#archive-list li", has_text=title)
    await expect(archived).to_have_count(1)
    await archived.get_by_role("link", name=title).click()
    await expect(page).to_have_url(url)
    await expect(page.get_by_label("Message")).to_have_count(0)
    await page.get_by_role("button", name="Unarchive to write again").click()

    await expect(page).to_have_url(url)
    await send(page, "back again")
    await expect(page.locator("#transcript article.msg.assistant")).to_have_count(2)
    await expect(page.locator("#transcript article.msg.assistant").last).to_contain_text(
        "back again"
    )


async def test_search_opens_the_conversation_at_the_message(
    product: RunningProduct, browser: Browser
) -> None:
    page = await log_in(browser, product, 1280, 800)
    await send(page, "where is the persimmon crate")
    await expect(page).to_have_url(CONVERSATION_PATH)
    url = page.url
    await expect(page.locator("#transcript article.msg.assistant")).to_have_count(1)

    await page.get_by_role("link", name="Search").click()
    box = page.get_by_label("Search titles and messages")
    await box.fill("persimmon")
    await box.press("Enter")

    results = page.locator("#search-results")
    await expect(results.locator("mark").first).to_have_text(re.compile("persimmon", re.I))
    hit = results.locator("li", has_text="Agent:").first
    await hit.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(re.escape(url) + r"#msg-[0-9a-f-]{36}$"))
    found = page.locator("#transcript article.msg.found")
    await expect(found).to_have_count(1)
    await expect(found).to_be_focused()
    await expect(found).to_be_in_viewport()


async def test_regenerate_then_edit_and_resend(product: RunningProduct, browser: Browser) -> None:
    page = await log_in(browser, product, 1280, 800)
    await send(page, "hello versions")
    await expect(page).to_have_url(CONVERSATION_PATH)
    replies = page.locator("#transcript > article.msg.assistant")
    await expect(replies).to_have_count(1)

    await page.get_by_role("button", name="Regenerate").click()
    earlier = page.locator("details.earlier-version")
    await expect(earlier.locator("summary")).to_have_text("Earlier answer · 1 of 2")
    await expect(page.locator(".version-label")).to_have_text("Latest · 2 of 2")
    await expect(page.locator("#transcript > article.msg.assistant")).to_have_count(1)
    await earlier.locator("summary").click()
    await expect(earlier.locator("article.msg.assistant")).to_be_visible()

    await expect(replies.last).to_contain_text("hello versions")
    await page.locator("details.edit-message summary").click()
    await page.get_by_label("Edited text").fill("hello, edited")
    await page.get_by_role("button", name="Resend").click()
    await expect(page.locator("details.earlier-version summary")).to_have_text(
        "Earlier message · 1 of 2"
    )
    await expect(page.locator("#transcript > article.msg.user")).to_have_text(
        re.compile("hello, edited")
    )
    await expect(page.locator("#transcript > article.msg.assistant")).to_contain_text(
        "hello, edited"
    )


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
async def test_a_starter_prompt_starts_the_conversation(
    product: RunningProduct, browser: Browser, size: tuple[int, int]
) -> None:
    page = await log_in(browser, product, *size)
    starter = page.get_by_role("button", name=re.compile("Track an order"))
    await expect(starter).to_be_visible()
    box = await starter.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= size[0]

    await starter.click()

    await expect(page).to_have_url(CONVERSATION_PATH)
    await expect(page.locator("#transcript article.msg.user")).to_have_text(
        re.compile("What is the status of order 1001")
    )
    await expect(page.locator("#transcript article.msg.assistant").last).to_contain_text("1001")

"""A person in a real browser logs in, chats, and watches the replies stream in."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.e2e.composer import composer_send as send
from tests.e2e.conftest import TIMEOUT_MS
from tests.helpers import eventually

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

BASE_DIR = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "demo-pass-123"  # what seed_demo gives alice (the fixture sets DEMO_PASSWORD)
pytestmark = [
    pytest.mark.e2e,
]
SCREENSHOT = BASE_DIR / "var" / "e2e-chat.png"
STREAMING_SCREENSHOT = BASE_DIR / "var" / "e2e-chat-streaming.png"
CONVERSATION_PATH = re.compile(r"/c/[0-9a-f-]{36}/$")


async def pace(product: RunningProduct, match: str, chunk_delay_ms: int) -> None:
    """Slow the scripted model's stream for matching messages, so tokens can be watched."""
    async with aiohttp.ClientSession(product.scripted_model_url) as session:
        async with session.delete("/control/rules") as cleared:
            assert cleared.status == 200, await cleared.text()
        rules = {"rules": [{"match": match, "chunk_delay_ms": chunk_delay_ms}]}
        async with session.post("/control/rules", json=rules) as added:
            assert added.status == 200, await added.text()


async def log_in(browser: Browser, product: RunningProduct) -> Page:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await page.goto(f"{product.url}/")
    await expect(page).to_have_url(re.compile(r"/accounts/login/"))
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{product.url}/")
    return page


async def test_log_in_chat_and_watch_replies_stream(
    product: RunningProduct, browser: Browser
) -> None:
    await pace(product, "second", 40)
    page = await log_in(browser, product)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    await send(page, "Hello from the browser")

    await expect(page).to_have_url(CONVERSATION_PATH)
    transcript = page.locator("#transcript")
    await expect(transcript.locator("article.msg.user")).to_have_text(
        re.compile("Hello from the browser")
    )
    first_reply = transcript.locator("article.msg.assistant")
    await expect(first_reply).to_have_count(1)
    await expect(first_reply).to_contain_text("Scripted demo model")
    await expect(first_reply).to_contain_text("Hello from the browser")
    await expect(page.locator("#sidebar")).to_contain_text("Hello from the browser")

    await send(page, "A second message, please")

    await expect(transcript.locator("article.msg.user")).to_have_count(2)
    await expect(page.get_by_label("Message")).to_have_value("")
    streaming = page.locator("#live-reply article.msg.assistant.streaming")
    await expect(streaming).to_contain_text("Scripted demo model")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(STREAMING_SCREENSHOT))
    replies = transcript.locator("article.msg.assistant")
    await expect(replies).to_have_count(2)
    await expect(replies.nth(1)).to_contain_text("A second message, please")
    await expect(replies.nth(1)).to_contain_text("to see tool calls")  # the whole reply
    await expect(streaming).to_have_count(0)
    await expect(transcript.locator("article.msg.user")).to_have_count(2)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page_errors == []


async def test_page_whose_socket_connects_late_still_shows_the_reply(
    product: RunningProduct, browser: Browser
) -> None:
    await pace(product, "late", 30)
    page = await log_in(browser, product)
    socket_released = asyncio.Event()
    connected: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def connect_when_released(ws: WebSocketRoute) -> None:
        await socket_released.wait()
        ws.connect_to_server()
        connected.append(ws.url)

    def hold(ws: WebSocketRoute) -> None:
        task = asyncio.ensure_future(connect_when_released(ws))
        pending.add(task)
        task.add_done_callback(pending.discard)

    # The page's socket opens at once but reaches the server only when released:
    # a slow network or a busy tab, made deterministic.
    await page.route_web_socket(re.compile(r"/ws/c/"), hold)
    await send(page, "Answer me late")
    await expect(page).to_have_url(CONVERSATION_PATH)
    await expect(page.locator("#live-reply article.msg.assistant.streaming")).to_have_count(1)

    async def reply_recorded() -> bool:
        response = await page.request.get(page.url)
        return "msg assistant complete" in await response.text()

    await eventually(reply_recorded, timeout=TIMEOUT_MS / 1000)
    socket_released.set()
    await eventually(lambda: asyncio.sleep(0, result=bool(connected)))

    await expect(page.locator("#transcript article.msg.assistant")).to_have_count(1, timeout=3_000)

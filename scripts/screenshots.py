"""Screenshots of the main pages at 1280 and 390 px, light and dark, for the README.

Run by hand against the product as `make run` starts it (demo accounts seeded):

    make run                                   # in one terminal
    .venv/bin/python scripts/screenshots.py    # in another; --url for another address

alice asks for a refund so the inbox has a request; rita's inbox, the request's page
and alice's conversation are then shot in both themes and sizes into docs/screenshots/.
Uses Debian's Chromium (/usr/bin/chromium), as the browser tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
SIZES = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}
THEMES = ("light", "dark")


async def signed_in(browser: Browser, url: str, username: str, password: str) -> Page:
    page = await browser.new_page(viewport=SIZES["1280"])  # type: ignore[arg-type]
    await page.goto(f"{url}/accounts/login/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


async def shoot(page: Page, name: str) -> None:
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)  # type: ignore[arg-type]
        for theme in THEMES:
            await page.emulate_media(color_scheme=theme)  # type: ignore[arg-type]
            await page.wait_for_timeout(150)
            path = OUT / f"{name}-{size}-{theme}.png"
            await page.screenshot(path=str(path))
            print(f"{path.relative_to(OUT.parents[1])}: {path.stat().st_size // 1024} KiB")


async def main(url: str, password: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        visitor = await browser.new_page()
        await visitor.goto(f"{url}/accounts/login/")
        await shoot(visitor, "login")
        alice = await signed_in(browser, url, "alice", password)
        box = alice.get_by_label("Message")
        await box.fill("refund 60 on order 1013")
        await box.press("Enter")
        await expect(alice.locator("#approvals .approval-card")).to_contain_text(
            "Waiting for a reviewer", timeout=30_000
        )
        await shoot(alice, "chat")

        rita = await signed_in(browser, url, "rita", password)
        await rita.goto(f"{url}/reviews/")
        row = rita.locator("#approval-rows > tr.approval-row").first
        await expect(row).to_be_visible()
        await rita.keyboard.press("j")
        await expect(rita.locator("#detail-pane .excerpt")).to_be_visible()
        await shoot(rita, "inbox")
        await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.url.rstrip("/"), os.environ.get("DEMO_PASSWORD", "demo-pass-123")))

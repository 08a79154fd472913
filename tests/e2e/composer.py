"""Typing into the chat's composer the way a person does, once the page can take it."""

from __future__ import annotations

from playwright.async_api import Page

# Enter sends through static/js/chat.js and htmx, both deferred scripts. Pressed before
# they ran (a page just opened on a loaded machine), it only adds a line to the box.
SCRIPTS_READY = "() => document.readyState !== 'loading' && !!window.htmx"


async def composer_send(page: Page, text: str) -> None:
    await page.wait_for_function(SCRIPTS_READY)
    box = page.get_by_label("Message")
    await box.fill(text)
    await box.press("Enter")

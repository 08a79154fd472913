"""What the page-level browser tests check on every page: CSP violations the browser
reported, axe-core's serious and critical findings, and sideways scrolling."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import DEMO_PASSWORD

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Collected in every document before its own scripts run (an init script is not
# subject to the page's CSP).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} `
    + `at ${e.sourceFile || location.pathname}:${e.lineNumber}`);
});
"""

_axe = Axe()


async def new_context(browser: Browser, *, viewport: dict[str, int] = DESKTOP) -> BrowserContext:
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    await context.add_init_script(WATCH_CSP)
    return context


async def log_in(page: Page, url: str, username: str) -> None:
    await page.goto(f"{url}/accounts/login/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).not_to_have_url(f"{url}/accounts/login/")


async def csp_violations(page: Page) -> list[str]:
    return list(await page.evaluate("window.__cspViolations || []"))


async def axe_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations, one line each with where."""
    results = await _axe.run(page)
    problems: list[str] = []
    for violation in results.response["violations"]:
        if violation.get("impact") not in ("serious", "critical"):
            continue
        nodes: list[dict[str, Any]] = violation["nodes"]
        targets = ", ".join(str(node["target"]) for node in nodes[:4])
        problems.append(f"{violation['id']} ({len(nodes)}): {targets}")
    return problems


async def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scroll)."""
    return int(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))

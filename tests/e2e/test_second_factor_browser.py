"""The second factor in a real browser, with the product in production's rule
(REQUIRE_SECOND_FACTOR=True): rita sets up an authenticator app on her first login and
is asked for it (or a recovery code) at the next ones; the admin registers a passkey
with Chromium's virtual authenticator and logs in with it."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django_otp.oath import TOTP
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, expect

from tests.e2e.test_chat_browser import BASE_DIR, DEMO_PASSWORD

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

pytestmark = [pytest.mark.e2e]
SCREENSHOTS = BASE_DIR / "var"


@pytest.fixture(scope="module", autouse=True)
def second_factor_required() -> Iterator[None]:
    """Read by this module's `product` (which copies the environment when it starts)."""
    before = os.environ.get("REQUIRE_SECOND_FACTOR")
    os.environ["REQUIRE_SECOND_FACTOR"] = "True"
    yield
    if before is None:
        del os.environ["REQUIRE_SECOND_FACTOR"]
    else:
        os.environ["REQUIRE_SECOND_FACTOR"] = before


def site(product: RunningProduct) -> str:
    """Passkeys belong to a domain name, never an IP address: the same server as localhost."""
    return product.url.replace("127.0.0.1", "localhost")


def app_code(secret: str, *, steps_ahead: int = 0) -> str:
    """What an authenticator app holding `secret` shows (`steps_ahead` periods later)."""
    key = secret.replace(" ", "")
    totp = TOTP(base64.b32decode(key + "=" * (-len(key) % 8)), step=30, t0=0, digits=6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


async def new_page(browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


async def log_in(page: Page, url: str, username: str) -> None:
    await page.goto(f"{url}/accounts/login/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()


async def log_out(page: Page, url: str) -> None:
    await page.goto(f"{url}/")
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/accounts/login/"))


async def test_a_reviewer_sets_up_an_app_and_is_asked_for_it_at_the_next_logins(
    product: RunningProduct, browser: Browser
) -> None:
    url = site(product)
    context, page, errors = await new_page(browser)

    # First login: no way to the inbox before a second factor is set up.
    await log_in(page, url, "rita")
    await expect(page).to_have_url(f"{url}/accounts/second-factor/?next=%2F")
    await expect(page.locator("#enrol-notice")).to_contain_text("needs a second factor")
    await page.goto(f"{url}/reviews/")
    await expect(page).to_have_url(f"{url}/accounts/second-factor/?next=%2Freviews%2F")

    await page.get_by_role("link", name="Set up an authenticator app").click()
    await expect(page.locator("#totp-qr svg")).to_be_visible()
    secret = await page.locator("#totp-secret").inner_text()
    await page.screenshot(path=str(SCREENSHOTS / "e2e-totp-setup.png"), full_page=True)
    await page.get_by_label("Code from your app").fill(app_code(secret))
    await page.get_by_role("button", name="Turn on").click()

    await expect(page).to_have_url(re.compile(r"/accounts/second-factor/recovery-codes/"))
    codes = await page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    await page.screenshot(path=str(SCREENSHOTS / "e2e-recovery-codes.png"), full_page=True)
    await page.get_by_role("link", name="Continue").click()
    await expect(page).to_have_url(f"{url}/reviews/")
    await expect(page.locator("h1")).to_contain_text("Pending approvals")

    # Next login: the password, then the app's code.
    await log_out(page, url)
    await log_in(page, url, "rita")
    await expect(page).to_have_url(f"{url}/accounts/verify/?next=%2F")
    await page.screenshot(path=str(SCREENSHOTS / "e2e-verify.png"), full_page=True)
    await page.get_by_label("Code from your app").fill(app_code(secret, steps_ahead=1))
    await page.get_by_role("button", name="Verify").click()
    await expect(page).to_have_url(f"{url}/")
    await page.goto(f"{url}/reviews/")
    await expect(page.locator("h1")).to_contain_text("Pending approvals")

    # And with a recovery code, as after losing the phone.
    await log_out(page, url)
    await log_in(page, url, "rita")
    await page.get_by_text("Use a recovery code").click()
    await page.get_by_label("Recovery code").fill(codes[0])
    await page.get_by_role("button", name="Use this code").click()
    await expect(page).to_have_url(f"{url}/")
    await page.goto(f"{url}/accounts/second-factor/")
    await expect(page.get_by_text("9 unused.")).to_be_visible()
    assert errors == []
    await context.close()


async def virtual_authenticator(context: BrowserContext, page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator that always says yes (Chromium's WebAuthn CDP domain)."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


async def passkeys_held(cdp: CDPSession, authenticator_id: str) -> int:
    held = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return len(held["credentials"])


async def test_an_admin_registers_a_passkey_and_logs_in_with_it(
    product: RunningProduct, browser: Browser
) -> None:
    url = site(product)
    context, page, errors = await new_page(browser)
    cdp, authenticator = await virtual_authenticator(context, page)

    await log_in(page, url, "admin")
    await expect(page).to_have_url(f"{url}/accounts/second-factor/?next=%2F")
    await page.goto(f"{url}/admin/")
    await expect(page).to_have_url(f"{url}/accounts/second-factor/?next=%2Fadmin%2F")

    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page).to_have_url(re.compile(r"/accounts/second-factor/recovery-codes/"))
    await expect(page.locator("#recovery-codes code")).to_have_count(10)
    assert await passkeys_held(cdp, authenticator) == 1
    await page.get_by_role("link", name="Continue").click()
    await expect(page).to_have_url(f"{url}/admin/")
    await expect(page.locator("#site-name")).to_contain_text("Django administration")

    # Next login: the password, then the passkey.
    await log_out(page, url)
    await log_in(page, url, "admin")
    await expect(page).to_have_url(f"{url}/accounts/verify/?next=%2F")
    await page.get_by_role("button", name="Use a passkey").click()
    await expect(page).to_have_url(f"{url}/")
    await page.goto(f"{url}/admin/")
    await expect(page).to_have_url(f"{url}/admin/")
    await page.goto(f"{url}/accounts/second-factor/")
    await expect(page.locator("#devices")).to_contain_text("Passkey")
    await expect(page.locator("#devices")).to_contain_text("used for this session")
    await page.screenshot(path=str(SCREENSHOTS / "e2e-passkey.png"), full_page=True)
    assert errors == []
    await context.close()

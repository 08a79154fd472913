"""A reviewer approves from the email: the product as `make run` starts it, sending mail
over SMTP to a real server in the test (aiosmtpd); Chromium opens the link from the
received mail, logs in, confirms, and both people see the outcome."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect
from temporalio.testing import WorkflowEnvironment

from config import processes
from tests.e2e.composer import composer_send
from tests.e2e.conftest import (
    BASE_DIR,
    DEMO_PASSWORD,
    START_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    RunningProduct,
    seeded_database,
)
from tests.e2e.test_approval_browser import log_in_as
from tests.e2e.test_chat_browser import CONVERSATION_PATH
from tests.reviews.channels_support import Mailbox

pytestmark = [pytest.mark.e2e]
SCREENSHOTS = BASE_DIR / "var"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def product(
    temporal_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: Mailbox,
) -> AsyncIterator[RunningProduct]:
    """The product with SMTP pointed at the test's mail server and SITE_URL at itself
    (the shared fixture picks its port too late for the links in the mail)."""
    await processes.search_attributes_ensure(temporal_env.client, "default")
    tmp_path = tmp_path_factory.mktemp("e2e-email")
    web_port, model_port = processes.free_ports(2)
    log_path = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "DEBUG": "True",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        "REDIS_URL": "",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": f"e2e-{uuid.uuid4()}",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "AGENT_MODEL": "scripted",
        "SCRIPTED_MODEL_PORT": str(model_port),
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mailbox.port),
        "SITE_URL": url,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    await asyncio.to_thread(
        seeded_database, tmp_path / "e2e.sqlite3", tmp_path_factory, env=env, log_path=log_path
    )
    serve = processes.Child(
        name="serve",
        command=[sys.executable, "manage.py", "serve", "--port", str(web_port), "--no-temporal"],
        log_path=log_path,
        cwd=BASE_DIR,
        env=env,
        ready_url=f"{url}/healthz",
        start_timeout=START_TIMEOUT_SECONDS,
        stop_signal=signal.SIGINT,
        stop_timeout=STOP_TIMEOUT_SECONDS,
    )
    serve.launch()
    try:
        await asyncio.to_thread(serve.wait_ready)
    except processes.StackError as err:
        pytest.fail(str(err))

    yield RunningProduct(
        url=url, scripted_model_url=f"http://127.0.0.1:{model_port}", log_path=log_path
    )

    returncode = await asyncio.to_thread(serve.stop)
    assert returncode == 0, f"serve exited with {returncode}:\n{serve.log_tail(40)}"


async def test_a_reviewer_approves_from_the_email_after_logging_in(
    product: RunningProduct, browser: Browser, mailbox: Mailbox
) -> None:
    alice = await log_in_as(browser, product, "alice")
    errors: list[str] = []
    alice.on("pageerror", lambda error: errors.append(str(error)))
    await composer_send(alice, "refund 45 on order 1014")
    await expect(alice).to_have_url(CONVERSATION_PATH)
    card = alice.locator("#approvals .approval-card")
    await expect(card).to_contain_text("Waiting for a reviewer")

    [mail] = await mailbox.wait_for("rita@example.com")
    assert mail.subject == "Approval needed: Refund 45.00 EUR on order #1014"
    approve = mail.link("Approve")
    assert approve.startswith(f"{product.url}/reviews/email/")

    # rita opens the link in a browser where she is not signed in.
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    rita = await context.new_page()
    rita.on("pageerror", lambda error: errors.append(str(error)))
    await rita.goto(approve)
    await expect(rita).to_have_url(re.compile(r"/accounts/login/\?next=/reviews/email/"))
    await rita.get_by_label("Username").fill("rita")
    await rita.get_by_label("Password").fill(DEMO_PASSWORD)
    await rita.get_by_role("button", name="Log in").click()

    # Back on the link's page: nothing has happened until she confirms.
    await expect(rita).to_have_url(approve)
    await expect(rita.locator("h1")).to_have_text("Approve: Refund 45.00 EUR on order #1014")
    await expect(card).to_contain_text("Waiting for a reviewer")
    await rita.screenshot(path=str(SCREENSHOTS / "e2e-email-confirm.png"), full_page=True)
    await rita.get_by_role("button", name="Approve").click()

    result = rita.locator("#decision-result")
    await expect(result).to_contain_text(re.compile(r"Approved by rita via email at \d\d:\d\d"))
    outcome = alice.locator("#transcript article.approval-outcome")
    await expect(outcome).to_contain_text(re.compile(r"approved\s+by rita"))
    answer = alice.locator("#transcript article.msg.assistant").last
    await expect(answer).to_contain_text("45.00")

    # The same link again: used up.
    await rita.goto(approve)
    await expect(rita.locator("#decision-result")).to_contain_text("This link was already used")
    await rita.screenshot(path=str(SCREENSHOTS / "e2e-email-used.png"), full_page=True)
    assert errors == []

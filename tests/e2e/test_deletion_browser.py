"""A person in a real browser deletes a conversation: the confirmation, then the home page
without it; its workflow is gone from Temporal."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, expect
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from temporal_worker.contracts.conversation import conversation_workflow_id
from tests.e2e.test_chat_browser import CONVERSATION_PATH, log_in, send
from tests.helpers import eventually

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningProduct

pytestmark = [pytest.mark.e2e]


async def test_delete_a_conversation_after_confirming(
    product: RunningProduct, browser: Browser, temporal_env: WorkflowEnvironment
) -> None:
    page = await log_in(browser, product)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    title = f"Forget me {uuid.uuid4().hex[:6]}"
    await send(page, title)
    await expect(page).to_have_url(CONVERSATION_PATH)
    await expect(page.locator("#transcript article.msg.assistant")).to_have_count(1)
    match = re.search(r"/c/([0-9a-f-]{36})/$", page.url)
    assert match is not None
    conversation_id = match.group(1)

    confirm = page.get_by_role("button", name="Delete for good")
    await expect(confirm).to_be_hidden()  # closed until the person opens it
    await page.get_by_text("Delete…").click()
    await expect(page.locator("#delete-conversation")).to_contain_text("cannot be undone")
    await confirm.click()

    await expect(page).to_have_url(f"{product.url}/")
    await expect(page.locator("#sidebar")).not_to_contain_text(title)
    handle = temporal_env.client.get_workflow_handle(conversation_workflow_id(conversation_id))

    async def gone() -> bool:
        try:
            await handle.describe()
        except RPCError:
            return True
        return False

    await eventually(gone, timeout=30)
    assert page_errors == []

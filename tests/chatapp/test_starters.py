"""An empty chat offers starter prompts; a conversation with messages does not."""

from __future__ import annotations

import pytest

from chatapp.starters import STARTERS
from tests.factories import auser_create
from tests.helpers import body, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_empty_chat_offers_starter_prompts_as_buttons() -> None:
    client = await logged_in(await auser_create())

    page = body(await client.get("/"))

    for starter in STARTERS:
        assert f'<button type="button" class="starter" data-prompt="{starter.prompt}">' in page
    assert 'aria-label="Starter prompts"' in page

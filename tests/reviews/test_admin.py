"""The reviews app's admin pages, as an admin reads them."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from reviews.models import ApprovalPolicy
from tests.factories import user_create
from tests.helpers import body, html_text, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (20, "20 s"),
        (90, "1 min 30 s"),
        (3600, "1 h"),
        (5400, "1 h 30 min"),
        (90061, "1 d 1 h 1 min 1 s"),
    ],
)
async def test_the_policy_list_shows_each_deadline_exactly(seconds: int, shown: str) -> None:
    await ApprovalPolicy.objects.acreate(tool_name=f"tool_{seconds}", deadline_seconds=seconds)
    admin = await logged_in(await sync_to_async(user_create)(is_staff=True, is_superuser=True))

    page = html_text(body(await admin.get("/admin/reviews/approvalpolicy/")))

    assert f"tool_{seconds}" in page
    assert shown in page

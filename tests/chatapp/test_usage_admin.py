"""The admin's view of cost: the report per user, agent and conversation with its chart,
and a conversation's model calls with their cost and a link to their trace."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from chatapp.models import Conversation
from chatapp.usage_models import BudgetHit, ModelCall, ModelPrice, UserBudget
from tests.factories import user_create
from tests.helpers import html_text

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def table_rows(page: str) -> list[list[str]]:
    """Each table row's cells as a reader sees them."""
    return [
        [
            " ".join(html_text(cell).split())
            for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
    ]


def call(
    conversation: Conversation, *, at: datetime, prompt: int, output: int, **extra: Any
) -> None:
    ModelCall.objects.create(
        conversation=conversation,
        reply_id=uuid.uuid4(),
        attempt=1,
        user_id=conversation.owner_id,
        agent_slug=extra.pop("agent_slug", "assistant"),
        model="priced-model",
        at=at,
        outcome="complete",
        reported=True,
        prompt_tokens=prompt,
        completion_tokens=output,
        **extra,
    )


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(user_create(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def spend() -> Conversation:
    """Alice spent 3 USD yesterday and 1 USD today; Bob 2 USD today (1 USD per 1M tokens)."""
    ModelPrice.objects.create(
        model="priced-model",
        valid_from=NOW - timedelta(days=10),
        input_per_million=Decimal("1"),
        output_per_million=Decimal("1"),
        cached_per_million=Decimal("0.5"),
    )
    alice, bob = user_create(username="alice"), user_create(username="bob")
    talk = Conversation.objects.create(owner=alice, title="Refund talk")
    call(talk, at=NOW - timedelta(days=1), prompt=2_000_000, output=1_000_000, trace_id="ab" * 16)
    call(talk, at=NOW, prompt=500_000, output=500_000)
    other = Conversation.objects.create(owner=bob, title="Bob's")
    call(other, at=NOW, prompt=1_000_000, output=1_000_000, agent_slug="helper")
    BudgetHit.objects.create(
        at=NOW,
        scope="user_day",
        user=bob,
        conversation=other,
        limit_usd=Decimal("2"),
        spent_usd=Decimal("2"),
    )
    return talk


def test_the_report_sums_cost_per_user_and_agent_and_charts_each_day(
    admin_client: Client, spend: Conversation
) -> None:
    page = admin_client.get("/admin/chatapp/modelcall/report/").content.decode()
    text = " ".join(html_text(page).split())
    assert "6.000000 USD" in text  # every call
    rows = table_rows(page)
    assert ["alice", "2", "2500000", "0", "1500000", "4.000000"] in rows
    assert ["bob", "1", "1000000", "0", "1000000", "2.000000"] in rows
    assert ["helper", "1", "1000000", "0", "1000000", "2.000000"] in rows
    assert ["Refund talk", "alice", "2", "4.000000"] in rows
    assert any(row[1:4] == ["bob", "User, per day", "—"] for row in rows)
    # The chart: one bar per day, yesterday's and today's both the busiest (3 USD).
    assert page.count('class="usage-bar"') == 30
    assert f"{(NOW - timedelta(days=1)).date().isoformat()}: 3.000000 USD" in text
    assert f"{NOW.date().isoformat()}: 3.000000 USD" in text
    tallest = re.findall(r'class="usage-bar"[^>]*height="([\d.]+)"', page)
    assert sorted(float(h) for h in tallest)[-2:] == [164.0, 164.0]


def test_the_report_is_for_staff_only(spend: Conversation) -> None:
    client = Client()
    client.force_login(user_create())
    response = client.get("/admin/chatapp/modelcall/report/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_conversation_links_each_call_to_its_trace(
    admin_client: Client, spend: Conversation, settings: Any
) -> None:
    settings.TRACE_URL_TEMPLATE = "http://jaeger.example:16686/trace/{trace_id}"
    page = admin_client.get(f"/admin/chatapp/conversation/{spend.id}/change/").content.decode()
    assert f'href="http://jaeger.example:16686/trace/{"ab" * 16}"' in page
    text = " ".join(html_text(page).split())
    assert "3.000000" in text and "1.000000" in text


@pytest.mark.parametrize(
    "page",
    [
        "modelcall/",
        "modelprice/",
        "modelprice/add/",
        "userbudget/",
        "userbudget/add/",
        "agentbudget/add/",
        "budgethit/",
    ],
)
def test_every_usage_page_of_the_admin_opens(
    admin_client: Client, spend: Conversation, page: str
) -> None:
    assert admin_client.get(f"/admin/chatapp/{page}").status_code == 200


def test_a_price_and_a_budget_are_set_in_the_admin(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/chatapp/modelprice/add/",
        {
            "model": "gpt-4o-mini",
            "valid_from_0": "2026-01-01",
            "valid_from_1": "00:00:00",
            "input_per_million": "0.15",
            "output_per_million": "0.60",
            "cached_per_million": "0.075",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    price = ModelPrice.objects.get(model="gpt-4o-mini")
    assert price.cached_per_million == Decimal("0.075")
    # A negative limit is refused, with the reason on the form.
    response = admin_client.post("/admin/chatapp/userbudget/add/", {"daily_limit_usd": "-1"})
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()
    response = admin_client.post("/admin/chatapp/userbudget/add/", {"daily_limit_usd": "2.50"})
    assert response.status_code == 302
    assert str(UserBudget.objects.get()) == "every user: 2.5000 USD a day"
    # Everyone's default is one row.
    response = admin_client.post("/admin/chatapp/userbudget/add/", {"daily_limit_usd": "9"})
    assert "There is already a budget for every user." in response.content.decode()
    assert UserBudget.objects.count() == 1

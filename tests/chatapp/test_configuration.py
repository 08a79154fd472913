"""A step reads its agent and budgets once per configuration version: every kind of write
to them (the admin's, a queryset update, another process's) changes the version, so a
change still applies from the next model call."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatapp import configuration
from chatapp.agents import agent_profile
from chatapp.models import Agent, AgentToolPolicy, ConfigurationVersion, Conversation, McpServer
from chatapp.prompt_services import prompt_version_activate, prompt_version_create
from chatapp.usage import _check_budget
from chatapp.usage_models import UserBudget
from tests.factories import user_create
from tests.mcp.support import agent_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent() -> Agent:
    from asgiref.sync import async_to_sync

    return async_to_sync(agent_create)("clerk", name="Clerk", tools=["search_help"])


def profile(agent: Agent) -> Any:
    return agent_profile(conversation_id=str(uuid.uuid4()), agent=agent.slug)


def queries(read: Callable[[], Any]) -> int:
    with CaptureQueriesContext(connection) as captured:
        read()
    return len(captured)


def test_an_unchanged_agent_costs_one_query_per_step(agent: Agent) -> None:
    profile(agent)
    assert queries(lambda: profile(agent)) == 1
    assert profile(agent) is profile(agent)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: Agent.objects.filter(pk=a.pk).update(name="Changed"), id="update"),
        pytest.param(lambda a: a.save(), id="save"),
        pytest.param(
            lambda a: prompt_version_activate(
                version=prompt_version_create(prompt=a.prompt, text="New text")
            ),
            id="prompt version activated",
        ),
        pytest.param(
            lambda a: AgentToolPolicy.objects.create(agent=a, tool_name="search_help"),
            id="policy added",
        ),
        pytest.param(
            lambda a: a.mcp_servers.add(McpServer.objects.create(name="docs", title="Docs")),
            id="server linked",
        ),
        pytest.param(lambda a: a.handoffs.add(a), id="hand-off added"),
        pytest.param(lambda a: UserBudget.objects.create(daily_limit_usd=1), id="budget added"),
    ],
)
def test_every_kind_of_write_changes_the_version(
    agent: Agent, change: Callable[[Agent], Any]
) -> None:
    before = configuration.version()
    change(agent)
    assert configuration.version() != before


def test_a_change_applies_from_the_next_step(agent: Agent) -> None:
    assert profile(agent).name == "Clerk"
    Agent.objects.filter(pk=agent.pk).update(name="Renamed")
    assert profile(agent).name == "Renamed"
    prompt_version_activate(version=prompt_version_create(prompt=agent.prompt, text="Be brief."))
    assert profile(agent).prompt.text == "Be brief."
    server = McpServer.objects.create(name="docs", title="Docs")
    agent.mcp_servers.add(server)
    assert profile(agent).mcp_servers == frozenset({"docs"})
    McpServer.objects.filter(pk=server.pk).update(enabled=False)
    assert profile(agent).mcp_servers == frozenset()


def test_an_mcp_servers_listing_times_do_not_change_the_version(agent: Agent) -> None:
    server = McpServer.objects.create(name="docs", title="Docs")
    before = configuration.version()
    McpServer.objects.filter(pk=server.pk).update(tools=[{"name": "x"}], last_error="down")
    assert configuration.version() == before


def test_without_budgets_the_check_is_one_query_and_a_new_budget_applies_at_once(
    agent: Agent,
) -> None:
    owner = user_create()
    conversation = Conversation.objects.create(owner=owner, agent=agent)
    _check_budget(str(conversation.id), agent.slug)
    assert queries(lambda: _check_budget(str(conversation.id), agent.slug)) == 1
    UserBudget.objects.create(daily_limit_usd=Decimal("0"))
    refusal = _check_budget(str(conversation.id), agent.slug)
    assert refusal is not None and refusal.scope == "user_day"


def test_without_the_version_row_nothing_is_kept(agent: Agent) -> None:
    ConfigurationVersion.objects.all().delete()
    assert profile(agent).name == "Clerk"
    Agent.objects.filter(pk=agent.pk).update(name="Renamed")
    assert profile(agent).name == "Renamed"
    configuration.version_seed()
    assert configuration.version() is not None


def test_a_write_rolled_back_then_made_again_reaches_a_new_version(agent: Agent) -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(name="Rolled back")
        rolled_back = configuration.version()
        assert profile(agent).name == "Rolled back"
        raise RuntimeError
    Agent.objects.filter(pk=agent.pk).update(name="Kept")

    assert configuration.version() != rolled_back
    assert profile(agent).name == "Kept"

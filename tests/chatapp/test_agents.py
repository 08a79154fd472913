"""Agents as users and admins meet them: the picker on a new conversation, the agent a
conversation shows (and a hand-off, live), and the admin pages for agents, providers and
MCP servers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.utils import timezone

from chatapp.models import Agent, Conversation, LlmProvider, McpServer
from temporal_worker.scripted_model import ScriptedModelServer
from temporal_worker.tools.registry import mcp_catalog_changed
from tests.chatapp.test_consumers import RECEIVE_TIMEOUT, communicator
from tests.chatapp.test_views import SEND_URL, composer_ids, htmx
from tests.factories import auser_create, user_create
from tests.helpers import body, eventually, html_element, html_text, logged_in, session_cookie
from tests.mcp.support import agent_create

pytestmark = pytest.mark.django_db(transaction=True)

ERRORS = re.compile(r"errorlist[^>]*>(.*?)</ul>", re.S)


@pytest.fixture(autouse=True)
def fresh_catalog() -> Iterator[None]:
    """MCP servers made here are gone after the test (flushed without a signal)."""
    yield
    mcp_catalog_changed()


@pytest_asyncio.fixture
async def agents() -> dict[str, Agent]:
    support = await agent_create(
        "support",
        name="Shop support",
        description="Orders and refunds.",
        tools=["search_help"],
        is_default=True,
        position=0,
    )
    warehouse = await agent_create(
        "warehouse",
        name="Warehouse",
        description="Stock <b>levels</b>.",
        tools=["search_help"],
        handoffs=[support],
        position=1,
    )
    await agent_create("retired", name="Retired", is_active=False)
    await sync_to_async(support.handoffs.add)(warehouse)
    return {"support": support, "warehouse": warehouse}


async def test_a_new_conversation_offers_the_agents_with_one_preselected(
    agents: dict[str, Agent],
) -> None:
    client = await logged_in(await auser_create())
    page = body(await client.get("/"))
    picker = html_element(page, "agent-picker")
    assert picker is not None
    text = html_text(picker)
    assert "Shop support" in text and "Warehouse" in text and "Retired" not in text
    # Descriptions are text: markup in one is shown, not rendered.
    assert "Stock &lt;b&gt;levels&lt;/b&gt;." in picker
    assert 'value="support" checked' in picker
    assert 'value="warehouse">' in picker


async def test_starting_with_an_agent_records_it_and_the_page_shows_it(
    agents: dict[str, Agent], temporal: Any, worker: Any
) -> None:
    client = await logged_in(await auser_create())
    conversation_id, message_id = composer_ids(body(await client.get("/")))
    response = await client.post(
        SEND_URL,
        {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "text": "hello",
            "agent": "warehouse",
        },
        headers=htmx("/"),
    )
    assert response.status_code == 200, body(response)
    conversation = await Conversation.objects.select_related("agent").aget(id=conversation_id)
    assert conversation.agent == agents["warehouse"]
    page = body(await client.get(f"/c/{conversation_id}/"))
    badge = html_element(page, "conversation-agent")
    assert badge is not None and html_text(badge) == "Agent: Warehouse"
    # An existing conversation has no picker: its agent changes by hand-off only.
    assert html_element(page, "agent-picker") is None


@pytest.mark.parametrize("picked", ["retired", "nobody"])
async def test_an_agent_that_is_not_offered_is_refused_and_nothing_is_lost(
    picked: str, agents: dict[str, Agent], temporal: Any
) -> None:
    client = await logged_in(await auser_create())
    conversation_id, message_id = composer_ids(body(await client.get("/")))
    response = await client.post(
        SEND_URL,
        {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "text": "keep this text",
            "agent": picked,
        },
        headers=htmx("/"),
    )
    composer = html_element(body(response), "composer")
    assert composer is not None
    assert "This agent is not available; pick another one." in html_text(composer)
    assert "keep this text" in composer
    # The picker stays, on the preselected agent.
    assert 'value="support" checked' in composer
    assert not await Conversation.objects.filter(id=conversation_id).aexists()


async def test_a_malformed_agent_is_refused_by_the_form(agents: dict[str, Agent]) -> None:
    client = await logged_in(await auser_create())
    conversation_id, message_id = composer_ids(body(await client.get("/")))
    response = await client.post(
        SEND_URL,
        {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "text": "hi",
            "agent": "<script>",
        },
        headers=htmx("/"),
    )
    assert "Pick one of the agents listed." in html_text(body(response))


async def test_a_hand_off_shows_live_and_after_a_reload(
    agents: dict[str, Agent], temporal: Any, worker: Any, scripted_model: ScriptedModelServer
) -> None:
    from chatapp import services

    user = await auser_create()
    conversation_id = uuid.uuid4()
    # Slow enough that the page's socket is open before the hand-off happens.
    await scripted_model.add_rules({"match": "talk to", "first_token_delay_ms": 1500})
    await services.message_send(
        user=user,
        conversation_id=conversation_id,
        message_id=uuid.uuid4(),
        text="talk to warehouse",
        agent="support",
    )
    socket = communicator(conversation_id, cookie=await session_cookie(user))
    connected, _ = await socket.connect()
    assert connected
    try:
        frames: list[str] = []

        async def handed_off() -> bool:
            frames.append(await socket.receive_from(timeout=RECEIVE_TIMEOUT))
            return "Now talking to:" in frames[-1]

        await eventually(handed_off, timeout=30)
        frame = frames[-1]
        assert "Warehouse" in html_text(frame)
        badge = html_element(frame, "conversation-agent")
        assert badge is not None and 'hx-swap-oob="true"' in badge
        assert html_text(badge) == "Agent: Warehouse"
    finally:
        await socket.disconnect()

    client = await logged_in(user)

    async def reloaded() -> str | None:
        page = body(await client.get(f"/c/{conversation_id}/"))
        return page if "Now talking to:" in html_text(page) else None

    page = await eventually(reloaded, timeout=30)
    assert html_text(html_element(page, "conversation-agent") or "") == "Agent: Warehouse"


# --- the admin ----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def superuser() -> Any:
    return await sync_to_async(user_create)(is_staff=True, is_superuser=True)


async def _staff_with(*codenames: str) -> Any:
    user = await sync_to_async(user_create)(is_staff=True)
    for codename in codenames:
        await user.user_permissions.aadd(await Permission.objects.aget(codename=codename))
    return user


async def test_only_admins_with_the_dedicated_permission_add_or_change_mcp_servers() -> None:
    server = await McpServer.objects.acreate(
        name="lab", title="Lab", transport="http", url="http://127.0.0.1:1/mcp"
    )
    ordinary = await logged_in(
        await _staff_with("view_mcpserver", "add_mcpserver", "change_mcpserver", "delete_mcpserver")
    )
    assert (await ordinary.get("/admin/chatapp/mcpserver/")).status_code == 200
    assert (await ordinary.get("/admin/chatapp/mcpserver/add/")).status_code == 403
    change = await ordinary.post(
        f"/admin/chatapp/mcpserver/{server.pk}/change/",
        {"title": "Pwned", "transport": "stdio", "command": "/bin/sh", "args": "[]"},
    )
    assert change.status_code == 403
    assert (await McpServer.objects.aget(pk=server.pk)).command == ""

    manager = await logged_in(await _staff_with("view_mcpserver", "manage_mcp_servers"))
    assert (await manager.get("/admin/chatapp/mcpserver/add/")).status_code == 200


def _server_form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "lab",
        "title": "Lab",
        "description": "",
        "enabled": "on",
        "transport": "stdio",
        "command": "/usr/bin/python3",
        "args": '["-m", "lab"]',
        "env": "{}",
        "url": "",
        "headers": "{}",
        "call_timeout_seconds": "30",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"env": '{"TOKEN": "sk-live-123"}'}, "is not a secret's name"),
        ({"env": '{"TOKEN": "NOT_SET"}'}, "no secret NOT_SET is set (AGENT_SECRET_NOT_SET)"),
        ({"env": '{"bad name": "LAB"}'}, "is not a valid environment variable name"),
        ({"command": ""}, "A stdio server needs the command that starts it."),
        ({"args": '"-m lab"'}, "A JSON list of strings"),
        ({"transport": "http", "command": "", "args": "[]"}, "needs an http(s) URL"),
        ({"name": "Bad__Name"}, "lower-case letters"),
        ({"headers": '{"X-Token": "LAB"}'}, "Only a Streamable HTTP server sends headers."),
    ],
)
async def test_the_mcp_server_form_keeps_secrets_out_of_the_database(
    fields: dict[str, Any], problem: str, superuser: Any, settings: Any
) -> None:
    settings.AGENT_SECRETS = {"LAB": "value"}
    admin = await logged_in(superuser)
    response = await admin.post("/admin/chatapp/mcpserver/add/", _server_form(**fields))
    assert response.status_code == 200
    assert problem in html_text(body(response))
    assert not await McpServer.objects.aexists()


async def test_an_mcp_server_with_named_secrets_is_saved(superuser: Any, settings: Any) -> None:
    settings.AGENT_SECRETS = {"LAB_TOKEN": "value"}
    admin = await logged_in(superuser)
    response = await admin.post(
        "/admin/chatapp/mcpserver/add/", _server_form(env='{"TOKEN": "LAB_TOKEN"}')
    )
    assert response.status_code == 302, html_text(body(response))[:2000]
    server = await McpServer.objects.aget(name="lab")
    assert server.env == {"TOKEN": "LAB_TOKEN"}
    assert "value" not in str(server.env)


async def test_what_a_server_lists_is_shown_as_text(superuser: Any) -> None:
    server = await McpServer.objects.acreate(
        name="lab",
        title="Lab",
        transport="http",
        url="http://127.0.0.1:1/mcp",
        tools=[
            {
                "name": "<img src=x onerror=alert(1)>",
                "description": "<script>alert('x')</script> does things",
                "inputSchema": {"type": "object"},
            }
        ],
    )
    admin = await logged_in(superuser)
    page = body(await admin.get(f"/admin/chatapp/mcpserver/{server.pk}/change/"))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; does things" in page
    assert "write: asks a reviewer" in html_text(page)


async def test_the_refresh_action_asks_the_worker_to_list_now(superuser: Any) -> None:
    later = timezone.now() + timedelta(hours=1)
    server = await McpServer.objects.acreate(
        name="lab", title="Lab", transport="http", url="http://127.0.0.1:1/mcp"
    )
    await McpServer.objects.filter(pk=server.pk).aupdate(next_refresh_at=later)
    admin = await logged_in(superuser)
    response = await admin.post(
        "/admin/chatapp/mcpserver/",
        {"action": "refresh_tools", "_selected_action": [server.pk]},
        follow=True,
    )
    assert "Asked the worker to list 1 server(s) now" in html_text(body(response))
    assert (await McpServer.objects.aget(pk=server.pk)).next_refresh_at <= timezone.now()


def _agent_form(agent_prompt: int, **fields: Any) -> dict[str, Any]:
    return {
        "slug": "helper",
        "name": "Helper",
        "description": "Helps.",
        "is_active": "on",
        "position": "0",
        "prompt": str(agent_prompt),
        "model": "",
        "tool_policies-TOTAL_FORMS": "0",
        "tool_policies-INITIAL_FORMS": "0",
        "tool_policies-MIN_NUM_FORMS": "0",
        "tool_policies-MAX_NUM_FORMS": "1000",
        **fields,
    }


async def test_an_agent_is_defined_in_the_admin(agents: dict[str, Agent], superuser: Any) -> None:
    admin = await logged_in(superuser)
    add = body(await admin.get("/admin/chatapp/agent/add/"))
    # Every tool of the registry is offered, built-in ones and MCP ones alike.
    assert 'value="issue_refund"' in add and 'value="search_help"' in add
    prompt_id = agents["support"].prompt_id
    response = await admin.post(
        "/admin/chatapp/agent/add/",
        _agent_form(
            prompt_id,
            tools=["search_help", "get_order"],
            handoffs=[str(agents["support"].pk)],
            is_default="on",
            **{
                "tool_policies-TOTAL_FORMS": "1",
                "tool_policies-0-tool_name": "get_order",
                "tool_policies-0-mode": "always",
                "tool_policies-0-deadline_seconds": "600",
                "tool_policies-0-timeout_action": "reject",
                "tool_policies-0-remind_at_share": "0.50",
            },
        ),
    )
    assert response.status_code == 302, ERRORS.findall(body(response))
    helper = await Agent.objects.aget(slug="helper")
    assert helper.tools == ["search_help", "get_order"]
    assert [a.slug async for a in helper.handoffs.all()] == ["support"]
    policy = await helper.tool_policies.aget()
    assert (policy.tool_name, policy.mode, policy.deadline_seconds) == ("get_order", "always", 600)
    # One agent is preselected at a time.
    assert [a.slug async for a in Agent.objects.filter(is_default=True)] == ["helper"]


async def test_a_provider_names_its_key_and_never_stores_it(superuser: Any, settings: Any) -> None:
    settings.AGENT_SECRETS = {"OTHER_KEY": "sk-real"}
    admin = await logged_in(superuser)
    form = {"name": "other", "base_url": "https://llm.example.com/v1", "default_model": "m"}
    missing = await admin.post(
        "/admin/chatapp/llmprovider/add/", {**form, "api_key_secret": "UNSET_KEY"}
    )
    assert "No secret UNSET_KEY is set" in html_text(body(missing))
    pasted = await admin.post(
        "/admin/chatapp/llmprovider/add/", {**form, "api_key_secret": "sk-real"}
    )
    assert "never the secret itself" in html_text(body(pasted))
    saved = await admin.post(
        "/admin/chatapp/llmprovider/add/", {**form, "api_key_secret": "OTHER_KEY"}
    )
    assert saved.status_code == 302
    assert (await LlmProvider.objects.aget()).api_key_secret == "OTHER_KEY"

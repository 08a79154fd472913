"""MCP servers as a tool source: what the worker lists from real servers over both
transports, the names the tools get, what is left out, and what a server that is down
keeps."""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from pydantic import BaseModel

from chatapp.models import McpServer
from temporal_worker.ports import McpServerSpec
from temporal_worker.tools.base import ToolArgumentsError
from temporal_worker.tools.mcp.names import mcp_tool_name
from temporal_worker.tools.mcp.tool import McpTool, mcp_tools
from temporal_worker.tools.registry import ToolRegistry, atool_registry, code_tools, tool
from tests.mcp.support import HttpLab, http_server_create, listed, stdio_server_create

pytestmark = pytest.mark.django_db(transaction=True)


class NoArguments(BaseModel):
    pass


LAB_TOOLS = {
    "echo": "read",
    "record_note": "write",
    "crash": "write",
    "hang": "read",
    "refuse": "read",
}


async def test_a_stdio_server_is_listed_and_its_tools_join_the_registry(record: Path) -> None:
    server = await stdio_server_create(record)
    listing = await listed(server)
    assert listing.ok and listing.tools == len(LAB_TOOLS)

    row = await McpServer.objects.aget(pk=server.pk)
    assert {t["name"] for t in row.tools} == set(LAB_TOOLS)
    assert row.tools_listed_at is not None and row.last_error == ""
    registry = await atool_registry()
    for remote, kind in LAB_TOOLS.items():
        tool = registry.get(f"lab__{remote}")
        assert isinstance(tool, McpTool), remote
        # readOnlyHint: true runs freely; anything else is a write (asks by default).
        assert tool.kind == kind, remote
        assert tool.source == "MCP server Lab (lab, stdio)"
    # The built-in tools are still there, under their own names.
    assert registry.get("get_order") is not None


async def test_a_streamable_http_server_is_listed(http_lab: HttpLab) -> None:
    server = await http_server_create(http_lab.url)
    listing = await listed(server)
    assert listing.ok, listing.error
    registry = await atool_registry()
    echo = registry.get("weblab__echo")
    assert echo is not None and echo.kind == "read"
    assert echo.description == "Say the text back, with what reached the server."
    schema = echo.parameters()
    assert schema["required"] == ["text"] and schema["properties"]["text"]["maxLength"] == 200


async def test_a_server_that_is_down_keeps_its_last_good_list(http_lab: HttpLab) -> None:
    server = await http_server_create(http_lab.url)
    assert (await listed(server)).ok
    await http_lab.stop()

    failed = await listed(server)
    assert not failed.ok and "cannot be reached" in failed.error
    row = await McpServer.objects.aget(pk=server.pk)
    assert "cannot be reached" in row.last_error and row.last_error_at is not None
    # Tried again sooner than the schedule.
    assert len(row.tools) == len(LAB_TOOLS)
    assert (await atool_registry()).get("weblab__echo") is not None

    await http_lab.start()
    assert (await listed(server)).ok
    row = await McpServer.objects.aget(pk=server.pk)
    assert row.last_error == ""


async def test_a_server_down_when_first_listed_is_listed_once_it_is_up(record: Path) -> None:
    lab = HttpLab(record)  # not started: nothing listens on its port yet
    server = await http_server_create(lab.url)
    down = await listed(server)
    assert not down.ok
    assert (await atool_registry()).get("weblab__echo") is None
    await lab.start()
    try:
        assert (await listed(server)).ok
        assert (await atool_registry()).get("weblab__echo") is not None
    finally:
        await lab.stop()


async def test_a_tool_the_server_adds_is_offered_after_the_next_listing(
    http_lab: HttpLab,
) -> None:
    server = await http_server_create(http_lab.url)
    await listed(server)
    assert (await atool_registry()).get("weblab__shout") is None

    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    http_lab.server.add_tool(shout)
    await listed(server)
    assert (await atool_registry()).get("weblab__shout") is not None
    http_lab.server.remove_tool("shout")
    await listed(server)
    assert (await atool_registry()).get("weblab__shout") is None


async def test_the_admin_can_ask_for_a_listing_which_the_worker_makes(
    record: Path, worker: object, settings: object
) -> None:
    from chatapp.agent_services import mcp_servers_refresh_request

    server = await stdio_server_create(record)
    # Listed as soon as it is added (the worker checks every MCP_REFRESH_POLL_SECONDS)...
    await _until(lambda: _listed_at(server), timeout=60)
    first = await _listed_at(server)
    # ...and again when the admin asks, long before the schedule.
    await sync_to_async(mcp_servers_refresh_request)(servers=McpServer.objects.filter(pk=server.pk))
    await _until(lambda: _later(server, first), timeout=60)


async def _listed_at(server: McpServer) -> object:
    return (await McpServer.objects.aget(pk=server.pk)).tools_listed_at


async def _later(server: McpServer, than: object) -> bool:
    now = await _listed_at(server)
    return now is not None and now > than  # type: ignore[operator]


async def _until(probe: object, *, timeout: float) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await probe():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError("not within the time given")


# --- names, schemas and arguments (no server needed) -----------------------------------


def _spec(*tools: dict[str, object], name: str = "lab") -> McpServerSpec:
    return McpServerSpec(name=name, title="Lab", transport="stdio", tools=tools)


def _entry(name: str, **schema: object) -> dict[str, object]:
    return {"name": name, "inputSchema": {"type": "object", **schema}}


def test_names_never_collide_within_or_across_servers() -> None:
    weird = _spec(_entry("a.b"), _entry("a_b"), _entry("x" * 90), _entry("x" * 91))
    names = [t.name for t in mcp_tools(weird).tools]
    assert len(set(names)) == 4
    assert all(len(n) <= 64 and n.startswith("lab__") for n in names)
    assert all(
        set(n) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        for n in names
    )
    # Two servers offering the same tool: two names; neither is a built-in tool's name.
    other = [t.name for t in mcp_tools(_spec(_entry("a.b"), name="lab2")).tools]
    assert set(other).isdisjoint(names)
    builtin = {t.name for t in code_tools(["shop.tools"])}
    assert builtin.isdisjoint(names) and all("__" not in n for n in builtin)
    assert mcp_tool_name("lab", "echo", set()) == "lab__echo"


def test_a_built_in_tool_may_not_take_an_mcp_or_hand_off_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for bad in ("lab__echo", "handoff_to_billing"):
        module = types.ModuleType("bad_tools")

        @tool(name=bad, description="", kind="read", summarize=lambda a: "")
        async def clash(args: NoArguments, ctx: object) -> dict[str, object]:
            return {}

        module.clash = clash  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "bad_tools", module)
        with pytest.raises(ValueError, match="choose another name"):
            code_tools(["bad_tools"])


def test_tools_with_unusable_schemas_are_left_out_and_said_so() -> None:
    built = mcp_tools(
        _spec(
            _entry("good", properties={"n": {"type": "integer"}}),
            {"name": "no_schema"},
            {"name": "array", "inputSchema": {"type": "array"}},
            _entry("broken", properties={"n": {"type": "nonsense"}}),
            _entry("huge", description="x" * 40_000),
        )
    )
    assert [t.name for t in built.tools] == ["lab__good"]
    assert len(built.skipped) == 4
    assert any("invalid" in s for s in built.skipped)


def test_arguments_are_checked_against_the_servers_schema() -> None:
    [tool] = mcp_tools(
        _spec(
            _entry(
                "reserve",
                properties={
                    "sku": {"type": "string", "pattern": "^[A-Z]+-\\d+$"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 50},
                },
                required=["sku", "quantity"],
                additionalProperties=False,
            )
        )
    ).tools
    valid = tool.validate('{"quantity": 2, "sku": "KB-01"}')
    assert valid.canonical == '{"quantity":2,"sku":"KB-01"}'
    assert tool.summarize(valid) == 'Lab: reserve(quantity=2, sku="KB-01")'
    for raw, expected in (
        ('{"sku": "KB-01", "quantity": 0}', "quantity: 0 is less than the minimum of 1"),
        ('{"sku": "kb", "quantity": 1}', "sku: 'kb' does not match"),
        ('{"sku": "KB-01"}', "'quantity' is a required property"),
        ('{"sku": "KB-01", "quantity": 1, "extra": 1}', "Additional properties"),
        ("[1]", "not a JSON object"),
        ("{nope", "not JSON"),
    ):
        with pytest.raises(ToolArgumentsError, match="invalid arguments for lab__reserve") as err:
            tool.validate(raw)
        assert expected in str(err.value), raw


def test_text_from_a_server_is_bounded_for_the_model() -> None:
    [tool] = mcp_tools(
        _spec({**_entry("long"), "description": "<script>alert(1)</script>" + "y" * 5000})
    ).tools
    assert len(tool.description) == 1000
    # Kept as text: rendering escapes it (see the admin and chat tests).
    assert tool.description.startswith("<script>")
    registry = ToolRegistry([tool])
    assert json.dumps(registry.openai_tools())

"""One MCP call as the tool activity makes it, against real servers over both transports:
what reaches the server, what the model is told, and which failures Temporal retries."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from temporal_worker.activities.tools import ToolActivity
from temporal_worker.contracts.tools import ToolOutcome, ToolRequest
from temporal_worker.tools.mcp.connections import McpCallBroken, McpUnreachable, mcp_pool
from temporal_worker.tools.registry import atool_registry
from temporal_worker.worker import product_ports
from tests.mcp.support import (
    HttpLab,
    effects,
    http_server_create,
    listed,
    stdio_server_create,
)

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOW_ID = "conversation-mcp-calls"


async def call(
    tool: str, arguments: dict[str, Any], *, call_id: str = "call_1", result_max_chars: int = 0
) -> tuple[ToolOutcome, Any]:
    """Run the activity `tool.<tool>` once, as the worker does."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type=f"tool.{tool}")
    activity = ToolActivity(product_ports(), tools=atool_registry)
    request = ToolRequest(
        conversation_id="c-mcp",
        workflow_id=WORKFLOW_ID,
        call_id=call_id,
        tool=tool,
        arguments=json.dumps(arguments),
        requester_id=1,
        result_max_chars=result_max_chars,
    )
    outcome = await env.run(activity.run, request, tool_name=tool)
    try:
        return outcome, json.loads(outcome.content)
    except ValueError:
        return outcome, outcome.content  # truncated for the model


async def test_a_stdio_call_gets_its_answer_and_the_idempotency_key_in_meta(
    record: Path, settings: Any
) -> None:
    settings.AGENT_SECRETS = {"LAB_SECRET": "s3cret-from-env"}
    server = await stdio_server_create(record, env={"LAB_TOKEN": "LAB_SECRET"})
    await listed(server)
    outcome, content = await call("lab__echo", {"text": "hello"}, call_id="call_42")
    assert outcome.ok
    assert content == {
        "text": "hello",
        "idempotency_key": f"{WORKFLOW_ID}:call_42",
        # The environment value came from the secret the admin named, not the database.
        "token": "s3cret-from-env",
        "header": "",
    }


async def test_an_http_call_sends_headers_from_named_secrets(
    http_lab: HttpLab, settings: Any
) -> None:
    settings.AGENT_SECRETS = {"WEBLAB_TOKEN": "header-secret"}
    server = await http_server_create(http_lab.url, headers={"X-Lab-Token": "WEBLAB_TOKEN"})
    await listed(server)
    outcome, content = await call("weblab__echo", {"text": "hi"}, call_id="call_7")
    assert outcome.ok
    assert content["header"] == "header-secret"
    assert content["idempotency_key"] == f"{WORKFLOW_ID}:call_7"


async def test_a_secret_that_is_not_set_is_said_to_the_model(
    http_lab: HttpLab, settings: Any
) -> None:
    server = await http_server_create(http_lab.url)
    await listed(server)
    await server.__class__.objects.filter(pk=server.pk).aupdate(headers={"X-Lab-Token": "MISSING"})
    from temporal_worker.tools.registry import mcp_catalog_changed

    mcp_catalog_changed()
    settings.AGENT_SECRETS = {}
    outcome, content = await call("weblab__echo", {"text": "hi"})
    assert not outcome.ok
    assert "needs the secret MISSING, which is not set" in content["error"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_tool_error_is_an_answer_for_the_model_never_a_retry(
    transport: str, record: Path, http_lab: HttpLab
) -> None:
    server = (
        await stdio_server_create(record)
        if transport == "stdio"
        else await http_server_create(http_lab.url)
    )
    await listed(server)
    outcome, content = await call(f"{server.name}__refuse", {"reason": "stock is frozen"})
    assert outcome.ok is False
    assert "stock is frozen" in content["error"]


async def test_arguments_a_reviewer_edited_are_checked_again(record: Path) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    outcome, content = await call("lab__record_note", {"note": ""})
    assert outcome.ok is False
    assert "invalid arguments for lab__record_note: note:" in content["error"]
    assert effects(record) == []


async def test_a_write_is_kept_once_per_idempotency_key(record: Path) -> None:
    server = await stdio_server_create(record, idempotent=True)
    await listed(server)
    first, _ = await call("lab__record_note", {"note": "n1"}, call_id="call_9")
    again, content = await call("lab__record_note", {"note": "n1"}, call_id="call_9")
    assert first.ok and again.ok and content["repeated"] is True
    assert effects(record) == [{"note": "n1", "key": f"{WORKFLOW_ID}:call_9"}]


async def test_a_crash_mid_call_on_a_non_idempotent_server_is_not_repeated(
    record: Path,
) -> None:
    server = await stdio_server_create(record, idempotent=False)
    await listed(server)
    outcome, content = await call("lab__record_note", {"note": "n", "crash": "after_effect"})
    assert outcome.ok is False
    assert "may or may not have taken effect" in content["error"]
    assert "not marked idempotent" in content["error"]
    # The effect happened once, and nothing tried it again.
    assert len(effects(record)) == 1
    # The next call starts the server again.
    again, echoed = await call("lab__echo", {"text": "back"})
    assert again.ok and echoed["text"] == "back"


async def test_a_crash_mid_call_on_an_idempotent_server_fails_the_attempt(record: Path) -> None:
    server = await stdio_server_create(record, idempotent=True)
    await listed(server)
    # Temporal retries the attempt (the workflow's test shows the retry keeps one effect).
    with pytest.raises(McpCallBroken, match="mid-call"):
        await call("lab__crash", {})


async def test_a_hung_server_is_cut_off_by_its_timeout(record: Path) -> None:
    server = await stdio_server_create(record, call_timeout_seconds=2)
    await listed(server)
    started = time.monotonic()
    outcome, content = await call("lab__hang", {})
    elapsed = time.monotonic() - started
    assert outcome.ok is False
    assert "did not answer within 2 s" in content["error"]
    assert 1.9 < elapsed < 10


async def test_an_unreachable_server_fails_the_attempt_for_temporal_to_retry(
    http_lab: HttpLab,
) -> None:
    server = await http_server_create(http_lab.url)
    await listed(server)
    await http_lab.stop()
    await mcp_pool().close()  # the session the listing opened is gone with the server
    with pytest.raises(McpUnreachable, match="cannot be reached"):
        await call("weblab__echo", {"text": "anyone?"})


async def test_a_large_result_is_truncated_for_the_model(record: Path) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    outcome, content = await call("lab__echo", {"text": "x" * 200}, result_max_chars=50)
    assert outcome.ok
    first_line, note = content.split("\n")
    assert len(first_line) == 50 and first_line.startswith('{"text": "xxx')
    assert note.startswith("[truncated: the result has")


async def test_concurrent_calls_share_one_session(record: Path) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    outcomes = await asyncio.gather(
        *(call("lab__echo", {"text": f"t{i}"}, call_id=f"call_{i}") for i in range(5))
    )
    assert [c["text"] for _, c in outcomes] == [f"t{i}" for i in range(5)]

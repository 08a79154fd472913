"""MCP tools and agents inside the real conversation workflow: the Temporal dev server, the
worker, the scripted model over HTTP, real MCP servers over stdio and Streamable HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from mcp.types import ToolAnnotations
from temporalio.api.enums.v1 import EventType

from chatapp.models import Agent, Conversation, LlmProvider, Message
from chatapp.prompt_services import prompt_version_activate, prompt_version_create
from reviews import actions
from reviews.models import Approval
from temporal_worker import client as temporal_client
from temporal_worker.contracts.errors import UserError
from temporal_worker.contracts.tools import PATCH_AGENT_HANDOFF, tool_activity_name
from temporal_worker.scripted_model import ScriptedModelServer
from tests.approvals import listed_pending, reviewer_create
from tests.helpers import eventually, history, of_type
from tests.mcp.support import (
    HttpLab,
    agent_create,
    conversation_start,
    effects,
    http_server_create,
    listed,
    message_next,
    stdio_server_create,
)

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
MARKER = EventType.EVENT_TYPE_MARKER_RECORDED


async def rows(cid: str, **filters: Any) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation_id=cid, **filters).order_by("seq")]


async def answered(cid: str, replies: int = 1) -> Message:
    """The last final reply, once the agent is idle after `replies` of them."""

    async def final() -> Message | None:
        found = [m for m in await rows(cid, role="assistant") if not m.tool_calls]
        live = await temporal_client.conversation_live_state(conversation_id=cid)
        idle = live is not None and live.status == "idle" and live.queued == 0
        return found[-1] if idle and len(found) >= replies else None

    return await eventually(final, timeout=60)


async def pending(cid: str) -> Any:
    async def found() -> list[Any]:
        return [p for p in await listed_pending() if p.conversation_id == cid]

    [item] = await eventually(found, timeout=30)
    return item


async def tool_results(cid: str) -> dict[str, Any]:
    return {m.tool_name: json.loads(m.content) for m in await rows(cid, role="tool")}


# --- MCP tools in a turn -----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_read_tool_runs_without_asking_and_the_model_reads_its_answer(
    transport: str, record: Path, http_lab: HttpLab, temporal: Any, worker: Any
) -> None:
    server = (
        await stdio_server_create(record)
        if transport == "stdio"
        else await http_server_create(http_lab.url)
    )
    await listed(server)
    await agent_create("labby", servers=[server])
    tool = f"{server.name}__echo"
    cid, _ = await conversation_start(f'[[call {tool} {{"text": "ping"}}]]', agent="labby")
    answer = await answered(cid)
    result = (await tool_results(cid))[tool]
    [call] = [m for m in await rows(cid, role="tool")]
    assert result["text"] == "ping"
    assert result["idempotency_key"] == f"conversation-{cid}:{call.tool_call_id}"
    assert f"**{tool}**: text: ping" in answer.content
    assert not await Approval.objects.filter(conversation_id=cid).aexists()
    names = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in await history(temporal, _uuid(cid))
        if e.event_type == SCHEDULED
    ]
    # Its own activity, named after the tool, like a built-in tool's.
    assert tool_activity_name(tool) in names


async def test_arguments_the_model_gets_wrong_are_refused_before_any_call(
    record: Path, temporal: Any, worker: Any
) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    await agent_create("labby", servers=[server])
    cid, _ = await conversation_start('[[call lab__record_note {"note": 7}]]', agent="labby")
    answer = await answered(cid)
    error = (await tool_results(cid))["lab__record_note"]["error"]
    assert "invalid arguments for lab__record_note: note: 7 is not of type 'string'" in error
    assert "failed" in answer.content
    assert effects(record) == []
    assert not await Approval.objects.filter(conversation_id=cid).aexists()


async def _write_waiting(record: Path, **server_fields: Any) -> tuple[str, Any]:
    server = await stdio_server_create(record, **server_fields)
    await listed(server)
    await agent_create("labby", servers=[server])
    cid, _ = await conversation_start(
        '[[call lab__record_note {"note": "ship it"}]]', agent="labby"
    )
    return cid, await pending(cid)


async def test_an_mcp_write_asks_a_reviewer_who_sees_where_it_comes_from(
    record: Path, temporal: Any, worker: Any
) -> None:
    cid, item = await _write_waiting(record)
    # What the reviewer reads: the server, the tool, what it says it does, the arguments
    # and the agent's reason.
    detail = await temporal_client.approval_get(conversation_id=cid, call_id=item.call_id)
    assert detail is not None
    assert detail.tool == "lab__record_note"
    assert detail.tool_source == "MCP server Lab (lab, stdio)"
    assert detail.tool_description == "Keep a note: a write, kept once per idempotency key."
    assert detail.tool_idempotent is False
    assert json.loads(detail.arguments) == {"note": "ship it"}
    assert detail.summary == 'Lab: record_note(note="ship it")'
    assert "lab__record_note" in detail.reason
    assert effects(record) == []  # nothing ran yet

    reviewer = await reviewer_create()
    await actions.approval_decide(
        reviewer=reviewer,
        conversation_id=cid,
        call_id=item.call_id,
        action="approve",
        arguments_hash=item.arguments_hash,
    )
    answer = await answered(cid)
    assert effects(record) == [{"note": "ship it", "key": f"conversation-{cid}:{item.call_id}"}]
    assert "record_note" in answer.content


async def test_a_reviewer_edit_is_checked_against_the_servers_schema(
    record: Path, temporal: Any, worker: Any
) -> None:
    cid, item = await _write_waiting(record)
    reviewer = await reviewer_create()
    with pytest.raises(UserError) as refused:
        await actions.approval_decide(
            reviewer=reviewer,
            conversation_id=cid,
            call_id=item.call_id,
            action="approve",
            arguments_hash=item.arguments_hash,
            edited_arguments_json='{"note": ""}',
        )
    assert "invalid arguments for lab__record_note: note:" in str(refused.value)
    await actions.approval_decide(
        reviewer=reviewer,
        conversation_id=cid,
        call_id=item.call_id,
        action="approve",
        arguments_hash=item.arguments_hash,
        edited_arguments_json='{"note": "ship it tomorrow"}',
    )
    await answered(cid)
    assert [e["note"] for e in effects(record)] == ["ship it tomorrow"]
    approval = await Approval.objects.aget(conversation_id=cid)
    assert approval.edited_summary == 'Lab: record_note(note="ship it tomorrow")'


async def test_a_rejected_mcp_write_never_reaches_the_server(
    record: Path, temporal: Any, worker: Any
) -> None:
    cid, item = await _write_waiting(record)
    reviewer = await reviewer_create()
    await actions.approval_decide(
        reviewer=reviewer,
        conversation_id=cid,
        call_id=item.call_id,
        action="reject",
        reason="Not today.",
        arguments_hash=item.arguments_hash,
    )
    answer = await answered(cid)
    assert effects(record) == []
    assert (await tool_results(cid))["lab__record_note"]["status"] == "rejected"
    assert "rejected by a reviewer: Not today." in answer.content


async def test_an_agents_own_policy_lets_an_mcp_write_run_unasked(
    record: Path, temporal: Any, worker: Any
) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    agent = await agent_create("labby", servers=[server])
    await agent.tool_policies.acreate(tool_name="lab__record_note", mode="never")
    cid, _ = await conversation_start('[[call lab__record_note {"note": "quick"}]]', agent="labby")
    await answered(cid)
    assert [e["note"] for e in effects(record)] == ["quick"]
    assert not await Approval.objects.filter(conversation_id=cid).aexists()


async def test_a_crash_after_the_effect_is_retried_and_kept_once(
    record: Path, temporal: Any, worker: Any
) -> None:
    server = await stdio_server_create(record, idempotent=True)
    await listed(server)
    agent = await agent_create("labby", servers=[server])
    await agent.tool_policies.acreate(tool_name="lab__record_note", mode="never")
    cid, _ = await conversation_start(
        '[[call lab__record_note {"note": "once", "crash": "after_effect"}]]', agent="labby"
    )
    answer = await answered(cid)
    # The first attempt's process died after keeping the note; Temporal tried again, and
    # the server found the note under the same idempotency key.
    assert len(effects(record)) == 1
    assert (await tool_results(cid))["lab__record_note"] == {"note": "once", "repeated": True}
    assert "record_note" in answer.content
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in await history(temporal, _uuid(cid))
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert 2 in attempts


async def test_a_server_that_keeps_crashing_becomes_a_tool_message_not_a_failed_turn(
    record: Path, temporal: Any, worker: Any
) -> None:
    server = await stdio_server_create(record, idempotent=True)
    await listed(server)
    agent = await agent_create("labby", servers=[server])
    await agent.tool_policies.acreate(tool_name="lab__crash", mode="never")
    cid, _ = await conversation_start("[[call lab__crash {}]]", agent="labby")
    answer = await answered(cid)
    [result] = await rows(cid, role="tool")
    assert result.status == "error"
    assert "the tool failed" in json.loads(result.content)["error"]
    assert "failed" in answer.content
    assert not await rows(cid, role="notice")


async def test_a_hung_server_is_cut_off_and_the_turn_goes_on(
    record: Path, temporal: Any, worker: Any
) -> None:
    server = await stdio_server_create(record, call_timeout_seconds=2)
    await listed(server)
    await agent_create("labby", servers=[server])
    started = time.monotonic()
    cid, _ = await conversation_start("[[call lab__hang {}]]", agent="labby")
    answer = await answered(cid)
    assert time.monotonic() - started < 30
    error = (await tool_results(cid))["lab__hang"]["error"]
    assert "did not answer within 2 s" in error
    assert "failed" in answer.content


async def test_a_server_down_at_first_and_back_later(
    record: Path, temporal: Any, worker: Any, scripted_model: ScriptedModelServer
) -> None:
    lab = HttpLab(record)  # its port does not answer yet
    server = await http_server_create(lab.url, idempotent=True)
    await agent_create("labby", servers=[server])
    assert not (await listed(server)).ok
    cid, user = await conversation_start('[[call weblab__echo {"text": "x"}]]', agent="labby")
    await answered(cid)
    # Never listed, so not offered: the turn is answered without it.
    assert scripted_model.request_log[-1]["tools"] == []
    assert not await rows(cid, role="tool")

    await lab.start()
    try:
        assert (await listed(server)).ok
        await message_next(cid, user, '[[call weblab__echo {"text": "back"}]]')
        await answered(cid, replies=2)
        echo = [json.loads(m.content) for m in await rows(cid, role="tool")][-1]
        assert echo["text"] == "back"
        # Down again mid-conversation: the listed tool is still offered, the call fails
        # after Temporal's retries, and the model hears why.
        await lab.stop()
        await message_next(cid, user, '[[call weblab__echo {"text": "again"}]]')
        third = await answered(cid, replies=3)
        last = [json.loads(m.content) for m in await rows(cid, role="tool")][-1]
        assert "cannot be reached" in last["error"]
        assert "failed" in third.content
    finally:
        await lab.stop()


async def test_a_tool_list_that_changes_between_turns(
    http_lab: HttpLab, temporal: Any, worker: Any, scripted_model: ScriptedModelServer
) -> None:
    server = await http_server_create(http_lab.url)
    await listed(server)
    await agent_create("labby", servers=[server])
    cid, user = await conversation_start("hello", agent="labby")
    await answered(cid)
    assert "weblab__shout" not in scripted_model.request_log[-1]["tools"]

    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    http_lab.server.add_tool(shout, annotations=ToolAnnotations(read_only_hint=True))
    await listed(server)
    await message_next(cid, user, '[[call weblab__shout {"text": "hey"}]]')
    await answered(cid, replies=2)
    assert "weblab__shout" in scripted_model.request_log[-1]["tools"]
    assert (await tool_results(cid))["weblab__shout"] == {"result": "HEY"}


# --- agents --------------------------------------------------------------------------


async def test_a_conversation_runs_as_the_agent_it_was_started_with(
    record: Path, temporal: Any, worker: Any, scripted_model: ScriptedModelServer
) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    await agent_create("plain", tools=["get_order"], is_default=True)
    await agent_create("labby", servers=[server], prompt_text="You are Labby.", model="lab-model")
    cid, _ = await conversation_start("hello", agent="labby")
    reply = await answered(cid)
    sent = scripted_model.request_log[-1]
    assert sent["system"] == "You are Labby." and sent["model"] == "lab-model"
    # Its MCP server's tools, none of the built-in ones it was not given.
    assert {t for t in sent["tools"]} == {
        f"lab__{n}" for n in ("echo", "record_note", "crash", "hang", "refuse")
    }
    assert (reply.agent, reply.prompt_version) == ("labby", "labby-prompt@v1")
    conversation = await Conversation.objects.select_related("agent").aget(id=cid)
    assert conversation.agent is not None and conversation.agent.slug == "labby"

    # With no agent picked, the preselected one answers with only its tools.
    other, _ = await conversation_start("hello")
    await answered(other)
    assert scripted_model.request_log[-1]["tools"] == ["get_order"]


async def test_an_agent_change_applies_from_the_next_model_call(
    temporal: Any, worker: Any, scripted_model: ScriptedModelServer
) -> None:
    agent = await agent_create("plain", tools=["search_help"], prompt_text="Version one.")
    cid, user = await conversation_start("hello", agent="plain")
    first = await answered(cid)
    version = await sync_to_async(prompt_version_create)(prompt=agent.prompt, text="Version two.")
    await sync_to_async(prompt_version_activate)(version=version)
    await Agent.objects.filter(pk=agent.pk).aupdate(tools=["get_order"], model="newer")
    await message_next(cid, user, "hello again")
    second = await answered(cid, replies=2)
    sent = scripted_model.request_log[-1]
    assert (sent["system"], sent["model"], sent["tools"]) == (
        "Version two.",
        "newer",
        ["get_order"],
    )
    assert (first.prompt_version, second.prompt_version) == ("plain-prompt@v1", "plain-prompt@v2")


async def test_an_agents_step_limit_applies(temporal: Any, worker: Any) -> None:
    await agent_create("brief", tools=["search_help"], max_steps_per_turn=2)
    cid, _ = await conversation_start("[[loop 5]] go", agent="brief")

    async def noticed() -> list[Message]:
        return await rows(cid, role="notice")

    [notice] = await eventually(noticed, timeout=60)
    assert notice.error_kind == "step_limit"
    assert len(await rows(cid, role="assistant")) == 2


async def test_a_provider_whose_secret_is_not_set_fails_the_turn_with_a_notice(
    temporal: Any, worker: Any, settings: Any
) -> None:
    settings.AGENT_SECRETS = {}
    provider = await LlmProvider.objects.acreate(
        name="elsewhere",
        base_url="http://127.0.0.1:9/v1",
        api_key_secret="ELSEWHERE_KEY",
        default_model="m",
    )
    await agent_create("remote", tools=[], provider=provider)
    cid, _ = await conversation_start("hello", agent="remote")

    async def noticed() -> list[Message]:
        return await rows(cid, role="notice")

    [notice] = await eventually(noticed, timeout=60)
    assert notice.error_kind == "llm_request"


async def test_a_named_provider_gets_its_key_from_the_named_secret(
    temporal: Any, worker: Any, settings: Any, scripted_model: ScriptedModelServer
) -> None:
    settings.AGENT_SECRETS = {"SCRIPTED_KEY": "sk-from-the-environment"}
    provider = await LlmProvider.objects.acreate(
        name="scripted-again",
        base_url=scripted_model.base_url,
        api_key_secret="SCRIPTED_KEY",
        default_model="provider-default",
    )
    await agent_create("remote", tools=[], provider=provider)
    cid, _ = await conversation_start("hello", agent="remote")
    await answered(cid)
    assert scripted_model.request_log[-1]["model"] == "provider-default"


async def test_a_hand_off_applies_the_new_agents_prompt_model_and_tools(
    record: Path, temporal: Any, worker: Any, scripted_model: ScriptedModelServer
) -> None:
    server = await stdio_server_create(record)
    await listed(server)
    labby = await agent_create("labby", servers=[server], prompt_text="You are Labby.")
    front = await agent_create(
        "front", tools=["search_help"], handoffs=[labby], prompt_text="You are the front desk."
    )
    await sync_to_async(labby.handoffs.add)(front)
    cid, user = await conversation_start(
        'talk to labby [[call lab__echo {"text": "after the hand-off"}]]', agent="front"
    )
    answer = await answered(cid)

    messages = await rows(cid)
    handoff = next(m for m in messages if m.tool_name == "handoff_to_labby")
    assert handoff.handoff_to == "labby" and handoff.handoff_name == "Labby"
    assert json.loads(handoff.content)["note"] == "Now talking to: Labby"
    # The step after the hand-off ran as labby: its prompt and its tools.
    replies = [m for m in messages if m.role == "assistant"]
    assert [r.agent for r in replies] == ["front", "labby", "labby"]
    assert replies[0].prompt_version == "front-prompt@v1"
    assert replies[1].prompt_version == "labby-prompt@v1"
    assert "You are now talking to the Labby agent" in replies[1].content
    assert (await tool_results(cid))["lab__echo"]["text"] == "after the hand-off"
    assert answer.agent == "labby"
    systems = [r["system"] for r in scripted_model.request_log[-3:]]
    assert systems == ["You are the front desk.", "You are Labby.", "You are Labby."]
    # labby may hand back; front's tools are not labby's.
    assert "handoff_to_front" in scripted_model.request_log[-1]["tools"]
    assert "search_help" not in scripted_model.request_log[-1]["tools"]

    # The next message is answered by labby still (the workflow keeps the agent).
    await message_next(cid, user, "hello")
    await answered(cid, replies=2)
    assert scripted_model.request_log[-1]["system"] == "You are Labby."
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
        for e in of_type(await history(temporal, _uuid(cid)), MARKER)
    ]
    # The hand-off is guarded: histories from before it replay without it.
    assert {"id": PATCH_AGENT_HANDOFF, "deprecated": False} in patches


async def test_an_agent_cannot_hand_off_where_it_is_not_allowed(temporal: Any, worker: Any) -> None:
    await agent_create("elsewhere", tools=[])
    await agent_create("front", tools=["search_help"])
    cid, _ = await conversation_start(
        "[[call handoff_to_elsewhere {}]] talk to elsewhere", agent="front"
    )
    await answered(cid)
    assert not [m for m in await rows(cid, role="tool") if m.handoff_to]
    assert all(m.agent == "front" for m in await rows(cid, role="assistant"))


def _uuid(cid: str) -> Any:
    import uuid

    return uuid.UUID(cid)

"""The scripted model server, exercised over real HTTP with the real openai client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from temporal_worker.scripted_model import ScriptedModelServer, reply_for, start_scripted_model

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL_NAMES = (
    "get_order",
    "search_orders",
    "search_help",
    "issue_refund",
    "send_email",
    "change_order_status",
)


def tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} (test)",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }


TOOLS = [tool(name) for name in TOOL_NAMES]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are a test."}, {"role": "user", "content": text}]


@pytest_asyncio.fixture(scope="module")
async def model_server() -> AsyncIterator[ScriptedModelServer]:
    server = await start_scripted_model()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def server(model_server: ScriptedModelServer) -> ScriptedModelServer:
    await model_server.clear()
    return model_server


@pytest_asyncio.fixture
async def client(server: ScriptedModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as api:
        yield api


async def stream_reply(
    client: AsyncOpenAI, messages: list[dict[str, Any]], **kwargs: Any
) -> tuple[str, list[dict[str, str]], list[Any]]:
    """Stream a completion and rebuild it the way a client must: text plus tool calls."""
    stream = await client.chat.completions.create(
        model="scripted", messages=messages, stream=True, **kwargs
    )
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    chunks: list[Any] = []
    async for chunk in stream:
        chunks.append(chunk)
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text.append(delta.content or "")
        for call in delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += call.id or ""
            if call.function is not None:
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
    return "".join(text), [calls[i] for i in sorted(calls)], chunks


# --- plain text ---------------------------------------------------------------------------


async def test_non_streaming_text(client: AsyncOpenAI) -> None:
    response = await client.chat.completions.create(
        model="scripted", messages=user("Hello there, model!")
    )
    choice = response.choices[0]
    assert response.object == "chat.completion"
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.tool_calls is None
    content = choice.message.content or ""
    assert content.startswith("**Scripted demo model.**")
    assert "Hello there, model!" in content
    assert "\n- " in content
    assert 60 <= len(content.split()) <= 120
    assert response.usage is not None
    assert response.usage.completion_tokens == len(content) // 4 + 1
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )


async def test_streaming_reassembles_the_non_streaming_text(client: AsyncOpenAI) -> None:
    messages = user("Show me some code  please,\nwith   odd spacing.")
    expected = (
        (await client.chat.completions.create(model="scripted", messages=messages))
        .choices[0]
        .message.content
    )
    text, calls, chunks = await stream_reply(
        client, messages, stream_options={"include_usage": True}
    )
    assert text == expected
    assert "```python\n" in text
    assert calls == []
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 20
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(text) // 4 + 1


# --- tool calls ----------------------------------------------------------------------------


async def test_single_tool_call_from_a_phrase(client: AsyncOpenAI) -> None:
    response = await client.chat.completions.create(
        model="scripted", messages=user("What's the status of order 1042?"), tools=TOOLS
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert "`get_order`" in (choice.message.content or "")
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert re.fullmatch(r"call_[0-9a-f]{12}", call.id)
    assert call.function.name == "get_order"
    assert json.loads(call.function.arguments) == {"order_id": 1042}


async def test_two_tool_calls_stream_as_deltas(client: AsyncOpenAI) -> None:
    messages = user(
        "Refund $25.5 on order 7 and email customer of order 7: Sorry and thanks for waiting"
    )
    text, calls, chunks = await stream_reply(client, messages, tools=TOOLS)
    assert text.endswith("To do that I will call `issue_refund`, `send_email`.")
    assert [c["name"] for c in calls] == ["issue_refund", "send_email"]
    assert json.loads(calls[0]["arguments"]) == {
        "order_id": 7,
        "amount": "25.50",
        "reason": "Refund $25.5 on order 7",
    }
    assert json.loads(calls[1]["arguments"]) == {
        "order_id": 7,
        "subject": "About your order #7",
        "body": "Sorry and thanks for waiting",
    }
    # Arguments really are split across chunks, as with a real model.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.tool_calls) > 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    whole = await client.chat.completions.create(model="scripted", messages=messages, tools=TOOLS)
    assert [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in whole.choices[0].message.tool_calls or []
    ] == calls


async def test_phrases_for_tools_not_offered_give_text(client: AsyncOpenAI) -> None:
    response = await client.chat.completions.create(
        model="scripted", messages=user("status of order 5"), tools=[tool("search_help")]
    )
    assert response.choices[0].message.tool_calls is None
    assert (response.choices[0].message.content or "").startswith("**Scripted demo model.**")


async def test_tool_results_are_summarised(client: AsyncOpenAI) -> None:
    def call(call_id: str, name: str) -> dict[str, Any]:
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}

    messages = [
        *user("order 1042 and refund 5 on order 9 and email customer of order 9: hi"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                call("call_a", "get_order"),
                call("call_b", "issue_refund"),
                call("call_c", "send_email"),
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_a",
            "content": '{"order_id": 1042, "status": "shipped", "items": [1, 2]}',
        },
        {"role": "tool", "tool_call_id": "call_b", "content": '{"error": "order 9 is closed"}'},
        {
            "role": "tool",
            "tool_call_id": "call_c",
            "content": '{"status": "rejected", "reason": "tone too casual"}',
        },
    ]
    response = await client.chat.completions.create(
        model="scripted", messages=messages, tools=TOOLS
    )
    content = response.choices[0].message.content or ""
    assert response.choices[0].finish_reason == "stop"
    assert "- **get_order**: order_id: 1042; status: shipped; items: 2 items" in content
    assert "- **issue_refund** failed: `order 9 is closed`" in content
    assert "- **send_email** was rejected by a reviewer: tone too casual" in content


# --- faults from the control API -------------------------------------------------------------


async def test_rate_limit_with_retry_after_then_success(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    await server.add_rules({"match": "busy", "faults": [{"status": 429, "retry_after": 3}]})
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="scripted", messages=user("busy now?"))
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"
    response = await client.chat.completions.create(model="scripted", messages=user("busy now?"))
    assert response.choices[0].finish_reason == "stop"
    assert [(r["status"], r["last_user"]) for r in server.request_log] == [
        (429, "busy now?"),
        (200, "busy now?"),
    ]


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors(server: ScriptedModelServer, client: AsyncOpenAI, status: int) -> None:
    await server.add_rules({"match": "fail", "faults": [{"status": status}]})
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="scripted", messages=user("fail please"))
    assert caught.value.status_code == status


async def test_content_policy_rejection(server: ScriptedModelServer, client: AsyncOpenAI) -> None:
    await server.add_rules(
        {"match": "naughty", "faults": [{"status": 400, "code": "content_policy_violation"}]}
    )
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="scripted", messages=user("naughty"), stream=True
        )
    assert caught.value.code == "content_policy_violation"
    assert caught.value.type == "invalid_request_error"
    assert "safety system" in caught.value.message


async def test_dropped_stream_raises_mid_stream(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    await server.add_rules({"match": "flaky", "faults": [{"status": 200, "drop_after_chunks": 3}]})
    stream = await client.chat.completions.create(
        model="scripted", messages=user("flaky line"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "**Scripted demo "
    # The fault is used up: the next request streams to the end.
    text, _, _ = await stream_reply(client, user("flaky line"))
    assert text.startswith("**Scripted demo model.**")


async def test_latency_delays_and_reply_override(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    await server.add_rules(
        {"match": "wait", "faults": [{"latency_ms": 150}], "reply": "one two three four five"}
    )
    started = time.monotonic()
    first = await client.chat.completions.create(model="scripted", messages=user("wait"))
    assert time.monotonic() - started >= 0.14
    assert first.choices[0].message.content == "one two three four five"
    # Override and delays stay after the faults are used up; chunk_delay_ms paces the stream.
    await server.clear()
    await server.add_rules({"match": "wait", "chunk_delay_ms": 60, "reply": "one two three"})
    started = time.monotonic()
    text, _, _ = await stream_reply(client, user("wait"))
    assert text == "one two three"
    assert time.monotonic() - started >= 0.11


async def test_a_client_leaving_during_latency_logs_no_error(
    server: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    await server.add_rules({"match": "leave", "faults": [{"latency_ms": 300}]})
    body = {"model": "scripted", "stream": True, "messages": user("leave early")}

    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        async with aiohttp.ClientSession() as http:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await http.post(f"{server.base_url}/chat/completions", json=body)
        # The handler wakes after its latency to a closed connection.
        await asyncio.sleep(0.5)

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r["status"] for r in server.request_log] == [200]


async def test_an_assistant_message_with_null_content_and_no_tool_calls_is_refused(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    # As servers that follow the API do; null is fine beside tool calls (see above).
    messages = [
        *user("say nothing"),
        {"role": "assistant", "content": None},
        {"role": "user", "content": "hello?"},
    ]

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="scripted", messages=messages)

    assert "messages[2].content" in caught.value.message
    assert [r["status"] for r in server.request_log] == [400]
    messages[2]["content"] = ""
    response = await client.chat.completions.create(model="scripted", messages=messages)
    assert "“hello?”" in (response.choices[0].message.content or "")


async def test_a_stream_can_end_without_a_finish_reason_or_be_cut_short_with_one(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    await server.add_rules(
        {
            "match": "words",
            "reply": "alpha beta gamma delta",
            "faults": [
                {"end_after_chunks": 3},
                {"finish_reason": "length", "end_after_chunks": 3},
                {"finish_reason": "content_filter"},
                {"reply": ""},
            ],
        }
    )

    # The body ends cleanly after three events: nothing says the reply is done.
    text, _, chunks = await stream_reply(client, user("words"))
    assert text == "alpha beta "
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None]
    # Cut short by the provider: the reason comes, then [DONE].
    text, _, chunks = await stream_reply(client, user("words"))
    assert (text, chunks[-1].choices[0].finish_reason) == ("alpha beta ", "length")
    # A finish reason alone ends the whole reply with it; non-streamed too.
    response = await client.chat.completions.create(model="scripted", messages=user("words"))
    assert response.choices[0].message.content == "alpha beta gamma delta"
    assert response.choices[0].finish_reason == "content_filter"
    # A fault's reply is for one request only; then the rule's applies again.
    text, _, chunks = await stream_reply(client, user("words"))
    assert (text, chunks[-1].choices[0].finish_reason) == ("", "stop")
    text, _, _ = await stream_reply(client, user("words"))
    assert text == "alpha beta gamma delta"


# --- inline directives -------------------------------------------------------------------------


async def test_inline_fault_directive_counts_times_across_retries(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    messages = user("hello [[fault 429 retry_after=1 times=2]]")
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="scripted", messages=messages)
        assert caught.value.response.headers["retry-after"] == "1"
    response = await client.chat.completions.create(model="scripted", messages=messages)
    content = response.choices[0].message.content or ""
    assert "“hello”" in content  # directives are not echoed
    assert [r["status"] for r in server.request_log] == [429, 429, 200]


async def test_inline_content_policy_and_server_error(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="scripted", messages=user("bad words [[fault content_policy]]")
        )
    assert caught.value.code == "content_policy_violation"
    messages = user("flaky [[fault 500 times=1]]")
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="scripted", messages=messages)
    await client.chat.completions.create(model="scripted", messages=messages)


async def test_inline_stream_end_cut_short_empty_and_client_error_directives(
    server: ScriptedModelServer, client: AsyncOpenAI
) -> None:
    await server.add_rules({"match": "", "reply": "alpha beta gamma delta"})

    text, _, chunks = await stream_reply(client, user("a [[fault end after=3]]"))
    assert (text, chunks[-1].choices[0].finish_reason) == ("alpha beta ", None)
    text, _, chunks = await stream_reply(client, user("b [[fault length after=2]]"))
    assert (text, chunks[-1].choices[0].finish_reason) == ("alpha ", "length")
    text, _, chunks = await stream_reply(client, user("c [[fault content_filter after=4]]"))
    assert (text, chunks[-1].choices[0].finish_reason) == ("alpha beta gamma ", "content_filter")
    text, _, chunks = await stream_reply(client, user("d [[fault empty]]"))
    assert (text, chunks[-1].choices[0].finish_reason) == ("", "stop")
    for status, error in ((422, openai.UnprocessableEntityError), (413, openai.APIStatusError)):
        with pytest.raises(error) as caught:
            await client.chat.completions.create(
                model="scripted", messages=user(f"e [[fault {status}]]")
            )
        assert caught.value.status_code == status


async def test_inline_slow_directive(server: ScriptedModelServer, client: AsyncOpenAI) -> None:
    await server.add_rules({"match": "pace", "reply": "a b c d e"})
    started = time.monotonic()
    text, _, _ = await stream_reply(client, user("pace [[slow 50]]"))
    assert text == "a b c d e"
    assert time.monotonic() - started >= 0.19  # four gaps between five words


# --- determinism and long runs -------------------------------------------------------------------


async def test_same_input_same_output(client: AsyncOpenAI) -> None:
    async def ask(text: str) -> tuple[str | None, list[tuple[str, str, str]]]:
        response = await client.chat.completions.create(
            model="scripted", messages=user(text), tools=TOOLS
        )
        message = response.choices[0].message
        return message.content, [
            (c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []
        ]

    for text in ("mark order 3 as shipped; search orders alice", "just chatting"):
        assert await ask(text) == await ask(text)
    assert reply_for(user("find orders for bob@example.com"), TOOLS) == reply_for(
        user("find orders for bob@example.com"), TOOLS
    )


async def test_loop_directive_drives_a_long_run(client: AsyncOpenAI) -> None:
    messages: list[dict[str, Any]] = user("work hard [[loop 3]]")
    seen_ids: set[str] = set()
    for step in range(1, 4):
        text, calls, _ = await stream_reply(client, messages, tools=TOOLS)
        assert text == ""
        [call] = calls
        assert call["name"] == "get_order"
        assert json.loads(call["arguments"]) == {"query": f"step {step}"}
        seen_ids.add(call["id"])
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call["id"], "content": '{"ok": true}'},
        ]
    assert len(seen_ids) == 3
    text, calls, _ = await stream_reply(client, messages, tools=TOOLS)
    assert (text, calls) == ("Finished 3 steps.", [])


# --- the script on its own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Status of order #1042?", [("get_order", {"order_id": 1042})]),
        ("search orders shipped to Berlin", [("search_orders", {"query": "shipped to Berlin"})]),
        ("Find orders for bob@example.com.", [("search_orders", {"query": "bob@example.com"})]),
        ("I need help with returns", [("search_help", {"query": "returns"})]),
        ("How do I reset my password?", [("search_help", {"query": "reset my password"})]),
        (
            "refund €12 on order 5",
            [
                (
                    "issue_refund",
                    {"order_id": 5, "amount": "12.00", "reason": "refund €12 on order 5"},
                )
            ],
        ),
        (
            "Mark order 9 as Shipped",
            [("change_order_status", {"order_id": 9, "status": "shipped"})],
        ),
        (
            "order 1; order 2 and search orders carol",
            [
                ("get_order", {"order_id": 1}),
                ("get_order", {"order_id": 2}),
                ("search_orders", {"query": "carol"}),
            ],
        ),
        ("salt and pepper", []),
    ],
)
def test_phrase_table(text: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    reply = reply_for(user(text), TOOLS)
    assert [(c.name, json.loads(c.arguments_json)) for c in reply.tool_calls] == expected
    # With tool calls the model also says why, in its own words (reviewers see this).
    assert ("To do that I will call" in (reply.content or "")) == bool(expected)


MCP_AND_HANDOFF_TOOLS = [
    tool(name)
    for name in (
        "warehouse__check_stock",
        "warehouse__reserve_stock",
        "warehouse__list_reservations",
        "handoff_to_support",
        "handoff_to_warehouse",
    )
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stock of KB-01?", [("warehouse__check_stock", {"sku": "KB-01"})]),
        (
            "reserve 2 of sku kb-01 for order 1001",
            [("warehouse__reserve_stock", {"sku": "KB-01", "quantity": 2, "order_id": 1001})],
        ),
        ("reservations for order 7", [("warehouse__list_reservations", {"order_id": 7})]),
        (
            "talk to the warehouse",
            [("handoff_to_warehouse", {"reason": "The user asked for this agent."})],
        ),
        (
            "transfer me to Support and stock of MS-02",
            [
                ("handoff_to_support", {"reason": "The user asked for this agent."}),
                ("warehouse__check_stock", {"sku": "MS-02"}),
            ],
        ),
        ("talk to billing", []),  # no such hand-off offered
    ],
)
def test_mcp_tools_and_hand_offs_by_phrase(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    reply = reply_for(user(text), MCP_AND_HANDOFF_TOOLS)
    assert [(c.name, json.loads(c.arguments_json)) for c in reply.tool_calls] == expected


def test_a_call_directive_names_an_mcp_tool_or_a_hand_off() -> None:
    text = '[[call nope {}]] [[call warehouse__check_stock {"sku": "LM-09"}]]'
    reply = reply_for(user(text), MCP_AND_HANDOFF_TOOLS)
    # The first directive whose tool is offered.
    assert [(c.name, c.arguments_json) for c in reply.tool_calls] == [
        ("warehouse__check_stock", '{"sku": "LM-09"}')
    ]


def test_after_a_hand_off_the_new_agent_takes_the_question_up_again() -> None:
    text = "talk to warehouse and stock of KB-01"
    handoff = reply_for(user(text), [tool("handoff_to_warehouse"), tool("get_order")])
    [call] = handoff.tool_calls
    assert call.name == "handoff_to_warehouse"
    messages = [
        *user(text),
        {
            "role": "assistant",
            "content": handoff.content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": json.dumps({"handed_off_to": "warehouse", "agent": "Warehouse"}),
        },
    ]
    # The warehouse agent, with its own tools (and a hand-off back, not taken again).
    after = reply_for(messages, MCP_AND_HANDOFF_TOOLS)
    assert (after.content or "").startswith("You are now talking to the Warehouse agent.")
    assert [(c.name, json.loads(c.arguments_json)) for c in after.tool_calls] == [
        ("warehouse__check_stock", {"sku": "KB-01"})
    ]
    # Nothing of its own to do: it greets.
    greeting = reply_for(messages, [tool("handoff_to_support")])
    assert greeting.content == "You are now talking to the Warehouse agent. How can I help?"
    assert not greeting.tool_calls


def test_plain_reply_quotes_at_most_200_characters() -> None:
    content = reply_for(user("x" * 500), None).content or ""
    assert "x" * 199 + "…" in content
    assert "x" * 200 not in content


# --- control API and process --------------------------------------------------------------------


async def test_control_api_over_http(server: ScriptedModelServer, client: AsyncOpenAI) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with http.get(f"{server.base_url}/models") as response:
            assert [m["id"] for m in (await response.json())["data"]] == ["scripted"]
        rules = {"rules": [{"match": "x", "faults": [{"status": 503}, {"status": 500}]}]}
        async with http.post(f"{server.url}/control/rules", json=rules) as response:
            assert response.status == 200
        async with http.post(f"{server.url}/control/rules", json={"rules": [{"bad": 1}]}) as bad:
            assert bad.status == 400
        for status in (503, 500):
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="scripted", messages=user("x"))
            assert caught.value.status_code == status
        async with http.get(f"{server.url}/control/requests") as response:
            log = await response.json()
        assert [(r["status"], r["stream"], r["last_user"]) for r in log] == [
            (503, False, "x"),
            (500, False, "x"),
        ]
        assert all(isinstance(r["at"], float) for r in log)
        async with http.delete(f"{server.url}/control/rules") as response:
            assert response.status == 200
        async with http.get(f"{server.url}/control/requests") as response:
            assert await response.json() == []


async def test_module_entry_point_serves_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "temporal_worker.scripted_model",
        "--port",
        "0",
        # The default (15 ms a chunk) would make this one reply take a second.
        "--chunk-delay-ms",
        "0",
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()
        match = re.fullmatch(r"scripted model listening on (http://127\.0\.0\.1:\d+/v1)\n", line)
        assert match, line
        async with AsyncOpenAI(base_url=match[1], api_key="test", max_retries=0) as api:
            response = await api.chat.completions.create(model="scripted", messages=user("hi"))
        assert response.choices[0].finish_reason == "stop"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

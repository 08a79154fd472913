"""The LLM gateway over real HTTP: the scripted model for replies and faults, and a
bare SSE server for what the scripted model never sends (error events, odd framing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
import pytest_asyncio
from aiohttp import web

from temporal_worker import llm_gateway
from temporal_worker.contracts.conversation import ChatMessage
from temporal_worker.contracts.tools import ToolCall
from temporal_worker.scripted_model import ScriptedModelServer, reply_for
from temporal_worker.scripted_model.server import _deltas, create_app
from temporal_worker.tools.registry import tool_registry

SYSTEM = "You are a test."


class Deltas(list[str]):
    async def __call__(self, text: str) -> None:
        self.append(text)


def settings_for(base_url: str) -> llm_gateway.LlmSettings:
    return llm_gateway.LlmSettings(base_url=base_url, api_key="", model="scripted")


def conversation(text: str) -> list[dict[str, Any]]:
    user = ChatMessage(id="u1", seq=1, role="user", content=text)
    return llm_gateway.to_openai_messages(SYSTEM, [user])


async def stream(
    base_url: str, text: str, *, tools: list[dict[str, Any]] | None = None
) -> tuple[llm_gateway.Completion, Deltas]:
    deltas = Deltas()
    completion = await llm_gateway.stream_completion(
        settings_for(base_url), conversation(text), tools=tools, on_delta=deltas
    )
    return completion, deltas


@pytest_asyncio.fixture
async def model(scripted_model: ScriptedModelServer) -> ScriptedModelServer:
    await scripted_model.clear()
    return scripted_model


# --- replies ----------------------------------------------------------------------------------


async def test_plain_text_streams_in_pieces(model: ScriptedModelServer) -> None:
    completion, deltas = await stream(model.base_url, "Hello there, gateway!", tools=None)

    expected = reply_for(conversation("Hello there, gateway!"), None)
    assert completion.content == expected.content
    assert "“Hello there, gateway!”" in completion.content
    assert len(deltas) > 20
    assert "".join(deltas) == completion.content
    assert (completion.finish_reason, completion.model, completion.tool_calls) == (
        "stop",
        "scripted",
        [],
    )


async def test_tool_call_pieces_are_assembled_in_order(model: ScriptedModelServer) -> None:
    text = "Refund $25.5 on order 7 and email customer of order 7: Sorry and thanks for waiting"
    tools = tool_registry().openai_tools()

    completion, deltas = await stream(model.base_url, text, tools=tools)

    expected = reply_for(conversation(text), tools)
    assert completion.tool_calls == [
        ToolCall(id=call.id, name=call.name, arguments=call.arguments_json)
        for call in expected.tool_calls
    ]
    assert [call.name for call in completion.tool_calls] == ["issue_refund", "send_email"]
    assert json.loads(completion.tool_calls[0].arguments) == {
        "order_id": 7,
        "amount": "25.50",
        "reason": "Refund $25.5 on order 7",
    }
    assert completion.finish_reason == "tool_calls"
    assert "".join(deltas) == completion.content == expected.content


async def test_line_separators_inside_a_token_survive(model: ScriptedModelServer) -> None:
    # JSON may carry U+2028 and U+0085 unescaped; they must not split an event.
    reply = "one\u2028two\u0085three, é and 😀"
    await model.add_rules({"match": "separators", "reply": reply})

    completion, deltas = await stream(model.base_url, "separators please")

    assert completion.content == "".join(deltas) == reply


def test_an_empty_reply_goes_back_to_the_model_as_an_empty_string() -> None:
    # Servers that follow the API refuse a null content without tool calls, and every
    # later turn of the conversation would carry it.
    empty = ChatMessage(id="a1", seq=2, role="assistant", content="")
    calling = ChatMessage(
        id="a2",
        seq=3,
        role="assistant",
        tool_calls=[ToolCall(id="c1", name="get_order", arguments="{}")],
    )

    messages = llm_gateway.to_openai_messages(SYSTEM, [empty, calling])

    assert messages[1] == {"role": "assistant", "content": ""}
    assert messages[2]["content"] is None
    assert messages[2]["tool_calls"][0]["id"] == "c1"


async def test_an_empty_reply_then_another_turn_is_answered(model: ScriptedModelServer) -> None:
    await model.add_rules({"match": "say nothing", "faults": [{"reply": ""}]})
    first, deltas = await stream(model.base_url, "say nothing")
    assert (first.content, first.finish_reason, deltas) == ("", "stop", [])

    history = [
        ChatMessage(id="u1", seq=1, role="user", content="say nothing"),
        ChatMessage(id="a1", seq=2, role="assistant", content=first.content),
        ChatMessage(id="u2", seq=3, role="user", content="and now?"),
    ]
    second = await llm_gateway.stream_completion(
        settings_for(model.base_url),
        llm_gateway.to_openai_messages(SYSTEM, history),
        tools=None,
        on_delta=Deltas(),
    )

    assert "“and now?”" in second.content
    assert [r["status"] for r in model.request_log] == [200, 200]


# --- streams that end before the model finished ------------------------------------------------


def events_before_tool_call(text: str, tools: list[dict[str, Any]], index: int) -> int:
    """How many events the scripted model streams before tool call `index` begins."""
    reply = reply_for(conversation(text), tools)
    for position, delta in enumerate(_deltas(reply)):
        if any(call["index"] == index for call in delta.get("tool_calls", ())):
            return 1 + position  # the role chunk comes first
    raise AssertionError(f"the reply has no tool call {index}")


async def test_a_stream_that_ends_without_a_finish_reason_is_broken(
    model: ScriptedModelServer,
) -> None:
    await model.add_rules(
        {"match": "early", "faults": [{"end_after_chunks": 3}], "reply": "alpha beta gamma delta"}
    )

    deltas = Deltas()
    with pytest.raises(llm_gateway.IncompleteStreamError) as caught:
        await llm_gateway.stream_completion(
            settings_for(model.base_url), conversation("ends early"), tools=None, on_delta=deltas
        )

    # Retried like a dropped connection: the activity's retryable path.
    assert isinstance(caught.value, openai.APIConnectionError)
    assert deltas == ["alpha ", "beta "]


async def test_a_finished_stream_without_done_is_whole(model: ScriptedModelServer) -> None:
    # The role chunk, four words and the finish chunk; then the body ends, no [DONE].
    await model.add_rules(
        {"match": "no done", "faults": [{"end_after_chunks": 6}], "reply": "alpha beta gamma delta"}
    )

    completion, _ = await stream(model.base_url, "no done")

    assert (completion.content, completion.finish_reason) == ("alpha beta gamma delta", "stop")


@pytest.mark.parametrize("inside_arguments", [False, True], ids=["between", "inside-arguments"])
async def test_a_stream_cut_among_tool_calls_gives_no_tool_call(
    model: ScriptedModelServer, inside_arguments: bool
) -> None:
    text = "status of order 1001 and how do I return an item"
    tools = tool_registry().openai_tools()
    cut = events_before_tool_call(text, tools, 1) + (2 if inside_arguments else 0)
    await model.add_rules({"match": text, "faults": [{"end_after_chunks": cut}]})

    with pytest.raises(llm_gateway.IncompleteStreamError):
        await stream(model.base_url, text, tools=tools)

    # The fault is used up: the whole reply has both calls.
    completion, _ = await stream(model.base_url, text, tools=tools)
    assert [call.name for call in completion.tool_calls] == ["get_order", "search_help"]


@pytest.mark.parametrize("reason", ["length", "content_filter"])
async def test_a_reply_cut_short_keeps_its_text_and_calls_no_tool(
    model: ScriptedModelServer, reason: str
) -> None:
    text = "status of order 1001 and how do I return an item"
    tools = tool_registry().openai_tools()
    # Cut inside the second call's arguments: the first call is whole, yet neither runs.
    cut = events_before_tool_call(text, tools, 1) + 2
    await model.add_rules(
        {"match": text, "faults": [{"finish_reason": reason, "end_after_chunks": cut}]}
    )

    completion, deltas = await stream(model.base_url, text, tools=tools)

    assert completion.finish_reason == reason
    assert completion.tool_calls == []
    assert completion.content == "".join(deltas) == reply_for(conversation(text), tools).content


async def test_a_reply_cut_by_length_mid_text(model: ScriptedModelServer) -> None:
    await model.add_rules(
        {
            "match": "long",
            "faults": [{"finish_reason": "length", "end_after_chunks": 3}],
            "reply": "alpha beta gamma delta",
        }
    )

    completion, _ = await stream(model.base_url, "long answer")

    assert (completion.content, completion.finish_reason) == ("alpha beta ", "length")


# --- errors: the SDK's exceptions, as the activity maps them ----------------------------------


async def test_rate_limit_raises_with_retry_after(model: ScriptedModelServer) -> None:
    await model.add_rules({"match": "busy", "faults": [{"status": 429, "retry_after": 3}]})

    with pytest.raises(openai.RateLimitError) as caught:
        await stream(model.base_url, "busy now?")

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"


async def test_content_policy_refusal_is_a_bad_request(model: ScriptedModelServer) -> None:
    await model.add_rules(
        {"match": "forbidden", "faults": [{"status": 400, "code": "content_policy_violation"}]}
    )

    with pytest.raises(openai.BadRequestError) as caught:
        await stream(model.base_url, "something forbidden")

    assert llm_gateway.is_content_policy_error(caught.value.body, caught.value.message)


async def test_server_error_raises_internal_server_error(model: ScriptedModelServer) -> None:
    await model.add_rules({"match": "broken", "faults": [{"status": 500}]})

    with pytest.raises(openai.InternalServerError) as caught:
        await stream(model.base_url, "broken today")

    assert caught.value.status_code == 500


@pytest.mark.parametrize(
    ("status", "error"),
    [(422, openai.UnprocessableEntityError), (413, openai.APIStatusError)],
)
async def test_client_errors_raise_their_status(
    model: ScriptedModelServer, status: int, error: type[openai.APIStatusError]
) -> None:
    await model.add_rules({"match": "refused", "faults": [{"status": status}]})

    with pytest.raises(error) as caught:
        await stream(model.base_url, "refused request")

    assert caught.value.status_code == status


async def test_stream_cut_short_raises_connection_error(model: ScriptedModelServer) -> None:
    await model.add_rules({"match": "cut", "faults": [{"drop_after_chunks": 4}]})

    deltas = Deltas()
    with pytest.raises(openai.APIConnectionError):
        await llm_gateway.stream_completion(
            settings_for(model.base_url), conversation("cut me off"), tools=None, on_delta=deltas
        )

    assert len(deltas) == 3  # the role chunk, then three words


async def test_a_finished_stream_hands_its_connection_back() -> None:
    # Reading stops at [DONE]; unless the rest of the body is read too, every call
    # would open a new connection (a TLS handshake, with a real provider).
    peers: list[Any] = []

    @web.middleware
    async def record_peer(request: web.Request, handler: Any) -> web.StreamResponse:
        peers.append(request.transport and request.transport.get_extra_info("peername"))
        return await handler(request)

    app = create_app()
    app.middlewares.append(record_peer)
    async with serving(app) as base_url:
        for n in range(3):
            await stream(base_url, f"hello {n}")

    assert len(peers) == 3
    assert len(set(peers)) == 1


# --- what only a bare SSE server sends ---------------------------------------------------------


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "bare",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def sse(*events: dict[str, Any] | str, newline: str = "\n") -> bytes:
    lines = (event if isinstance(event, str) else json.dumps(event) for event in events)
    return "".join(f"data: {line}{newline}{newline}" for line in lines).encode()


def bare_app(
    body: bytes, *, piece: int = 1, then: Callable[[], Awaitable[None]] | None = None
) -> web.Application:
    """An app answering every completion with `body`, written `piece` bytes at a time."""

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for start in range(0, len(body), piece):
            await response.write(body[start : start + piece])
        if then is not None:
            await then()
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free port; yields its OpenAI base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_error_event_mid_stream_raises_api_error() -> None:
    error = {"message": "The model is overloaded.", "type": "server_error", "code": "overloaded"}
    body = sse(chunk({"content": "Partial "}), chunk({"content": "answer"}), {"error": error})

    deltas = Deltas()
    async with serving(bare_app(body, piece=5)) as base_url:
        with pytest.raises(openai.APIError) as caught:
            await llm_gateway.stream_completion(
                settings_for(base_url), conversation("hi"), tools=None, on_delta=deltas
            )

    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.message == "The model is overloaded."
    assert caught.value.body == error
    assert caught.value.code == "overloaded"
    assert deltas == ["Partial ", "answer"]


async def test_crlf_events_split_anywhere_are_read_whole() -> None:
    # One event's data may span several `data:` lines, joined by a newline.
    two_lines = json.dumps(chunk({"content": ", world"}), indent=1).replace("\n", "\r\ndata: ")
    body = b": keep-alive\r\n\r\n" + sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        two_lines,
        chunk({}, "stop"),
        "[DONE]",
        newline="\r\n",
    )

    async with serving(bare_app(body, piece=1)) as base_url:
        completion, deltas = await stream(base_url, "hi")

    assert deltas == ["Hello", ", world"]
    assert (completion.content, completion.finish_reason, completion.model) == (
        "Hello, world",
        "stop",
        "bare",
    )


async def test_done_without_a_finish_reason_is_a_broken_stream() -> None:
    body = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "alpha "}), "[DONE]")

    async with serving(bare_app(body, piece=len(body))) as base_url:
        with pytest.raises(llm_gateway.IncompleteStreamError):
            await stream(base_url, "hi")


async def test_a_stream_held_open_after_done_does_not_hold_the_reply() -> None:
    body = sse(chunk({"content": "Done."}, "stop"), "[DONE]")

    held_open = serving(bare_app(body, piece=len(body), then=lambda: asyncio.sleep(5)))
    async with held_open as base_url:
        started = time.monotonic()
        completion, _ = await stream(base_url, "hi")
        elapsed = time.monotonic() - started

    assert completion.content == "Done."
    assert elapsed < 2

"""The one place that talks to the LLM provider, over the OpenAI Chat Completions API.

Temporal owns retries (`max_retries=0`); this module only turns a conversation
into a streamed completion and the stream back into plain dataclasses. A stream
that ends before the model said why it stopped (its `finish_reason`) is broken and
raises, like a dropped connection: a half answer or half a tool call never passes
for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import openai
from openai import AsyncOpenAI

from temporal_worker.contracts.conversation import ChatMessage
from temporal_worker.contracts.tools import ToolCall

# Long enough for the end of a body that follows `[DONE]` at once, short enough that a
# server which keeps the stream open does not hold up a finished reply.
DRAIN_TIMEOUT_SECONDS = 0.1

# Finish reasons of a reply the provider cut short: its text is kept (and marked for the
# user), but its tool calls may be missing or half written, so none of them run.
FINISH_LENGTH = "length"
FINISH_CONTENT_FILTER = "content_filter"
CUT_SHORT = frozenset({FINISH_LENGTH, FINISH_CONTENT_FILTER})


class IncompleteStreamError(openai.APIConnectionError):
    """The body ended before a finish reason arrived: retried like a dropped connection."""

    def __init__(self, *, request: httpx2.Request) -> None:
        super().__init__(message="The stream ended before the model finished.", request=request)


@dataclass(frozen=True)
class LlmSettings:
    base_url: str
    api_key: str
    model: str
    request_timeout: float = 120.0


@dataclass
class TokenUsage:
    """What the provider reported one call used (its last chunk, asked for with
    `stream_options.include_usage`). Filled in as the report arrives, so a call that fails
    afterwards still tells what it cost; `reported` stays False when none came."""

    reported: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Part of prompt_tokens the provider read from its prompt cache (billed lower).
    cached_tokens: int = 0
    model: str = ""

    def take(self, report: dict[str, Any], model: str) -> None:
        details = report.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        self.prompt_tokens = _count(report.get("prompt_tokens"))
        self.completion_tokens = _count(report.get("completion_tokens"))
        self.cached_tokens = min(_count(cached), self.prompt_tokens)
        self.model = model
        self.reported = True


def _count(value: object) -> int:
    """A token count as reported; anything but a non-negative integer counts as none."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass
class Completion:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = ""
    model: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)


_clients: dict[tuple[int, LlmSettings], AsyncOpenAI] = {}


def openai_client(settings: LlmSettings) -> AsyncOpenAI:
    """One client per event loop: its connection pool must not cross loops."""
    key = (id(asyncio.get_running_loop()), settings)
    client = _clients.get(key)
    if client is None:
        client = AsyncOpenAI(
            api_key=settings.api_key or "scripted-model-needs-no-key",
            base_url=settings.base_url or None,
            max_retries=0,
            timeout=settings.request_timeout,
        )
        _clients[key] = client
    return client


def to_openai_messages(system_prompt: str, context: list[ChatMessage]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    for message in context:
        if message.role == "user":
            messages.append({"role": "user", "content": message.content})
        elif message.role == "assistant":
            # Content may be null only beside tool calls: servers that follow the API
            # refuse an assistant message with neither (an empty reply is "").
            content = message.content or (None if message.tool_calls else "")
            entry: dict[str, Any] = {"role": "assistant", "content": content}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ]
            messages.append(entry)
        elif message.role == "tool":
            messages.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        # Notices are for the user, not the model.
    return messages


async def stream_completion(
    settings: LlmSettings,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None,
    on_delta: Callable[[str], Awaitable[None]],
    usage: TokenUsage | None = None,
) -> Completion:
    """Stream one completion, calling `on_delta` with each piece of text as it arrives.

    Raises `IncompleteStreamError` when the stream ends without a finish reason. The SDK
    sends the request (auth, base URL, timeouts) and raises its errors for an
    error status; the events are read here as plain JSON, because a pydantic chunk per
    token cost more than the rest of the call. `usage` (the caller's, so that a call which
    fails still tells what was reported) receives the provider's usage report.
    """
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "stream": True,
        # The provider's own count, in a last chunk with no choices.
        "stream_options": {"include_usage": True},
    }
    if tools:
        body["tools"] = tools
    # The raw `post` rather than `chat.completions.create`: create re-walks the messages
    # against its TypedDicts, a no-op for these params that costs 0.7 ms for a new
    # conversation and grows with every message (7 ms at 40). `security` is create's:
    # the API key only.
    response: httpx2.Response = await openai_client(settings).post(
        "/chat/completions",
        body=body,
        options={"security": {"bearer_auth": True}},
        cast_to=httpx2.Response,
        stream=True,
    )
    reply = _Reply(usage=usage if usage is not None else TokenUsage())
    try:
        async with contextlib.aclosing(_events(response)) as events:
            async for event in events:
                text = reply.add(event)
                if text:
                    await on_delta(text)
        if not reply.finish_reason:
            raise IncompleteStreamError(request=response.request)
    finally:
        await response.aclose()
    return reply.completion()


@dataclass
class _Reply:
    """A completion put together from its chunks; tool calls arrive in indexed pieces."""

    usage: TokenUsage
    model: str = ""
    finish_reason: str = ""
    content: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def add(self, chunk: dict[str, Any]) -> str:
        """Take in one chunk and return its text, if any."""
        self.model = chunk.get("model") or self.model
        if isinstance(chunk.get("usage"), dict):
            self.usage.take(chunk["usage"], self.model)
        if not chunk.get("choices"):
            return ""
        choice = chunk["choices"][0]
        delta = choice.get("delta") or {}
        for call in delta.get("tool_calls") or ():
            self._add_call(call)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        text: str = delta.get("content") or ""
        if text:
            self.content.append(text)
        return text

    def _add_call(self, call: dict[str, Any]) -> None:
        slot = self.calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
        function = call.get("function") or {}
        if call.get("id"):
            slot["id"] = call["id"]
        if function.get("name"):
            slot["name"] += function["name"]
        if function.get("arguments"):
            slot["arguments"] += function["arguments"]

    def completion(self) -> Completion:
        calls = {} if self.finish_reason in CUT_SHORT else self.calls
        return Completion(
            content="".join(self.content),
            tool_calls=[
                ToolCall(id=slot["id"], name=slot["name"], arguments=slot["arguments"] or "{}")
                for _, slot in sorted(calls.items())
            ],
            finish_reason=self.finish_reason,
            model=self.model,
            usage=self.usage,
        )


async def _events(response: httpx2.Response) -> AsyncGenerator[dict[str, Any]]:
    """The stream's events as JSON, up to `[DONE]`."""
    parser = _SseParser()
    async with contextlib.aclosing(_body(response)) as body:
        async for chunk in body:
            for data in parser.feed(chunk):
                if data.startswith(b"[DONE]"):
                    await _drain(body)
                    return
                yield _event(data, response.request)


def _event(data: bytes, request: httpx2.Request) -> dict[str, Any]:
    """One event's JSON; an error event raises, as the SDK's own stream does."""
    event = json.loads(data)
    if isinstance(event, dict) and event.get("error"):
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise openai.APIError(message, request, body=error)
    return cast(dict[str, Any], event)


async def _body(response: httpx2.Response) -> AsyncGenerator[bytes]:
    """The body as it arrives; a broken or stalled connection raises the SDK's errors."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx2.TimeoutException as err:
        raise openai.APITimeoutError(request=response.request) from err
    except httpx2.RequestError as err:
        raise openai.APIConnectionError(request=response.request) from err


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read what follows `[DONE]` (normally just the end of the body): an HTTP/1.1
    connection closed with unread bytes cannot go back to the pool. A server that holds
    the stream open past `[DONE]` costs the connection, never the finished reply."""
    with contextlib.suppress(TimeoutError, openai.APIConnectionError):
        async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
            async for _ in body:
                pass


class _SseParser:
    """Server-sent events from bytes as they arrive: the data of each complete event.

    Lines are split on CR, LF or CRLF only: `str.splitlines` would also split on
    U+2028 and friends, which JSON may carry unescaped inside a token.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._pending + chunk).splitlines(keepends=True)
        # A trailing CR may be the first half of a CRLF: wait for the next byte.
        self._pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        events = []
        for line in lines:
            field_line = line.rstrip(b"\r\n")
            if not field_line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif field_line.startswith(b"data:"):
                value = field_line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        return events


def is_content_policy_error(body: object, message: str) -> bool:
    text = json.dumps(body) if not isinstance(body, str) else body
    return any(
        marker in (text + message).lower()
        for marker in ("content_policy", "content_filter", "safety system")
    )

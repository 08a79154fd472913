"""The one place that talks to the LLM provider, over the OpenAI Chat Completions API.

Temporal owns retries (`max_retries=0`); this module only turns a conversation
into a streamed completion and the stream back into plain dataclasses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI

from temporal_worker.shared import ChatMessage, ToolCall


@dataclass(frozen=True)
class LlmSettings:
    base_url: str
    api_key: str
    model: str
    request_timeout: float = 120.0


@dataclass
class Completion:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = ""
    model: str = ""


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
            entry: dict[str, Any] = {"role": "assistant", "content": message.content or None}
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
) -> Completion:
    """Stream one completion, calling `on_delta` with each piece of text as it arrives."""
    kwargs: dict[str, Any] = {}
    if tools:
        kwargs["tools"] = tools
    stream = await openai_client(settings).chat.completions.create(
        model=settings.model, messages=messages, stream=True, **kwargs
    )
    completion = Completion()
    content: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    async with stream:
        async for chunk in stream:
            completion.model = chunk.model or completion.model
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            delta = choice.delta
            if delta.content:
                content.append(delta.content)
                await on_delta(delta.content)
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] += call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            if choice.finish_reason:
                completion.finish_reason = choice.finish_reason
    completion.content = "".join(content)
    completion.tool_calls = [
        ToolCall(id=slot["id"], name=slot["name"], arguments=slot["arguments"] or "{}")
        for _, slot in sorted(calls.items())
    ]
    return completion


def is_content_policy_error(body: object, message: str) -> bool:
    text = json.dumps(body) if not isinstance(body, str) else body
    return any(
        marker in (text + message).lower()
        for marker in ("content_policy", "content_filter", "safety system")
    )

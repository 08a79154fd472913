"""The model's context window: which messages the next LLM call sees.

Pure and deterministic (the workflow calls it before every LLM step). The system
prompt is added by the LLM activity, so it always stays; the user message being
answered stays; an assistant message that asked for tools and the tool results
that answer it are kept or dropped together; otherwise the newest messages win.
"""

from __future__ import annotations

from temporal_worker.contracts.conversation import ChatMessage

CHARS_PER_TOKEN = 4  # rough, provider-independent


def message_chars(message: ChatMessage) -> int:
    return len(message.content) + sum(
        len(call.name) + len(call.arguments) for call in message.tool_calls
    )


def approx_tokens(messages: list[ChatMessage]) -> int:
    return sum(message_chars(m) for m in messages) // CHARS_PER_TOKEN + len(messages)


def _units(messages: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Group messages so a tool call and its results are never split."""
    units: list[list[ChatMessage]] = []
    for message in messages:
        if message.role == "tool":
            if units and units[-1][0].role == "assistant" and units[-1][0].tool_calls:
                units[-1].append(message)
            # A result whose call was trimmed earlier would confuse the model: drop it.
            continue
        units.append([message])
    return units


def trim_context(
    messages: list[ChatMessage], *, max_messages: int, max_tokens: int
) -> list[ChatMessage]:
    """The newest whole units that fit both budgets (at least the newest unit), plus
    the request being answered: a long turn must not forget what it was asked."""
    units = _units([m for m in messages if m.in_context and m.role != "notice"])
    request = next((u for u in reversed(units) if u[0].role == "user"), None)
    count = len(request) if request else 0
    tokens = approx_tokens(request) if request else 0
    kept: list[list[ChatMessage]] = []
    for unit in reversed(units):
        if unit is request:
            kept.append(unit)
            continue
        unit_tokens = approx_tokens(unit)
        if kept and (count + len(unit) > max_messages or tokens + unit_tokens > max_tokens):
            break
        kept.append(unit)
        count += len(unit)
        tokens += unit_tokens
    if request is not None and not any(unit is request for unit in kept):
        kept.append(request)
    return [message for unit in reversed(kept) for message in unit]

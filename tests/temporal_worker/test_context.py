"""Context trimming: a pure function of the transcript, tested without a server."""

from __future__ import annotations

from temporal_worker.context import approx_tokens, trim_context
from temporal_worker.contracts.conversation import ChatMessage
from temporal_worker.contracts.tools import ToolCall

_seq = iter(range(1, 10_000))


def msg(role: str, content: str = "x", **extra: object) -> ChatMessage:
    seq = next(_seq)
    return ChatMessage(id=f"m{seq}", seq=seq, role=role, content=content, **extra)  # type: ignore[arg-type]


def tool_step(n: int, size: int = 10) -> list[ChatMessage]:
    call = ToolCall(id=f"c{n}", name="search_orders", arguments='{"query": "q"}')
    return [
        msg("assistant", "", tool_calls=[call]),
        msg("tool", "r" * size, tool_call_id=f"c{n}", tool_name="search_orders"),
    ]


def test_newest_messages_win_within_the_message_budget() -> None:
    history = [msg("user", f"question {i}") for i in range(10)]
    kept = trim_context(history, max_messages=3, max_tokens=10_000)
    assert [m.content for m in kept] == ["question 7", "question 8", "question 9"]


def test_a_tool_call_and_its_result_are_never_split() -> None:
    history = [msg("user", "go"), *tool_step(1), *tool_step(2), *tool_step(3)]
    for budget in range(2, 8):
        kept = trim_context(history, max_messages=budget, max_tokens=10_000)
        for i, message in enumerate(kept):
            if message.role == "tool":
                assert kept[i - 1].role in ("assistant", "tool")
            if message.tool_calls:
                ids = {c.id for c in message.tool_calls}
                results = {m.tool_call_id for m in kept if m.role == "tool"}
                assert ids <= results, f"call without its result at budget {budget}"


def test_the_request_being_answered_stays_however_long_the_turn() -> None:
    request = msg("user", "[[loop 300]] please")
    history = [msg("user", "earlier"), msg("assistant", "ok"), request]
    for step in range(50):
        history += tool_step(step)
    kept = trim_context(history, max_messages=10, max_tokens=10_000)
    assert kept[0] is request
    assert "earlier" not in [m.content for m in kept]
    assert kept[-1].role == "tool"
    assert len(kept) <= 11


def test_the_token_budget_drops_old_large_results() -> None:
    history = [msg("user", "go"), *tool_step(1, size=40_000), *tool_step(2, size=400)]
    kept = trim_context(history, max_messages=100, max_tokens=1_000)
    assert [m.tool_call_id for m in kept if m.role == "tool"] == ["c2"]
    assert approx_tokens(kept) <= 1_000


def test_notices_and_refused_messages_never_reach_the_model() -> None:
    refused = msg("user", "bad")
    refused.in_context = False
    history = [refused, msg("notice", "refused"), msg("user", "fine")]
    kept = trim_context(history, max_messages=10, max_tokens=10_000)
    assert [m.content for m in kept] == ["fine"]


def test_an_orphan_tool_result_is_dropped() -> None:
    history = [msg("tool", "late", tool_call_id="gone"), msg("user", "hi")]
    assert [m.content for m in trim_context(history, max_messages=10, max_tokens=100)] == ["hi"]

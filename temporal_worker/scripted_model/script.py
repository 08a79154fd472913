"""The scripted model's reply logic: a pure, deterministic function of the request.

`reply_for(messages, tools)` decides what the scripted model answers. No I/O, no
clock, no randomness: the same messages and tools always give the same reply,
including the tool call ids, so tests and demos are reproducible.

Decision order:

1. ``[[loop N]]`` in the last user message: call the first offered tool until N
   tool results follow that user message, then answer "Finished N steps.".
2. ``[[call TOOL {json}]]`` in the last user message: call the first such tool that is
   offered, with exactly these arguments (an MCP tool by its `<server>__<tool>` name).
3. The last message is a ``tool`` result: summarise the results, one bullet per tool;
   after a hand-off, the new agent greets the user and takes up the last user message
   again with its own tools (steps 2 and 4, hand-offs left out).
4. Tool phrases in the last user message (see `PHRASES`), for offered tools only: a
   phrase for `check_stock` also calls an offered MCP tool `<server>__check_stock`, and
   "talk to <agent>" calls an offered hand-off `handoff_to_<agent>`.
   Clauses joined by " and " or ";" become several tool calls in one reply.
5. Otherwise a fixed Markdown template that echoes the user's message.

Text inside ``[[...]]`` is a directive for the server (faults, slowness) or the
script (loop); it is removed before phrases are matched or the message is echoed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Message = Mapping[str, Any]
ArgumentBuilder = Callable[[re.Match[str], str], dict[str, Any]]

DIRECTIVE_RE = re.compile(r"\[\[[^\[\]]*\]\]")
LOOP_RE = re.compile(r"\[\[\s*loop\s+(\d+)\s*\]\]", re.IGNORECASE)
# [[call TOOL {json}]]: call exactly this tool with these arguments (tests, demos).
CALL_RE = re.compile(r"\[\[\s*call\s+(\w+)\s*(\{.*?\})?\s*\]\]", re.IGNORECASE | re.DOTALL)
_STEP_RE = re.compile(r"step (\d+)")
HANDOFF_PREFIX = "handoff_to_"
MCP_SEPARATOR = "__"
# Clause separators; the capture group keeps them so merged clauses read as typed.
_CLAUSE_SPLIT_RE = re.compile(r"(\s+and\s+|\s*;\s*)", re.IGNORECASE)
_QUOTE_LIMIT = 200


@dataclass(frozen=True)
class ScriptedToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class ScriptedReply:
    content: str | None
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class ToolPhrase:
    """One taught phrase: a clause matching `pattern` calls `tool` with `build(match, clause)`."""

    tool: str
    pattern: re.Pattern[str]
    build: ArgumentBuilder
    # The match swallows the rest of the message (an email body may contain " and ").
    consumes_rest: bool = False


def _phrase(tool: str, regex: str, build: ArgumentBuilder, *, rest: bool = False) -> ToolPhrase:
    return ToolPhrase(tool, re.compile(regex, re.IGNORECASE | re.DOTALL), build, rest)


def _clean(text: str) -> str:
    return text.strip().rstrip("?!.").strip().strip("\"'").strip()


def _money(amount: str) -> str:
    return f"{Decimal(amount):.2f}"


def _order(match: re.Match[str], _clause: str) -> dict[str, Any]:
    return {"order_id": int(match["order_id"])}


def _query(match: re.Match[str], _clause: str) -> dict[str, Any]:
    return {"query": _clean(match["query"])}


_ORDER = r"order\s+(?:#\s*|no\.?\s*|number\s+)?(?P<order_id>\d+)"
_SKU = r"(?:sku\s+)?(?P<sku>[A-Za-z]{1,6}-\d{1,4})"
# A hand-off phrase names its agent; the tool is the offered `handoff_to_<agent>`.
HANDOFF_PHRASE = "handoff"

# Checked in order, first match among the offered tools wins, so the specific
# phrases come before the catch-all "order <id>". Teach a tool in one line here.
PHRASES: list[ToolPhrase] = [
    _phrase(
        "issue_refund",
        rf"\brefund\s+(?:of\s+)?(?:[$€£]\s*)?(?P<amount>\d+(?:\.\d{{1,2}})?)\s*"
        rf"(?:[$€£]|usd|eur|gbp)?\s+(?:on|for|to)\s+{_ORDER}",
        lambda m, clause: {
            "order_id": int(m["order_id"]),
            "amount": _money(m["amount"]),
            "reason": clause.strip(),
        },
    ),
    _phrase(
        "send_email",
        rf"\bemail\s+(?:the\s+)?customer\s+(?:of|for|on)\s+{_ORDER}\s*:\s*(?P<body>.+)",
        lambda m, _: {
            "order_id": int(m["order_id"]),
            "subject": f"About your order #{m['order_id']}",
            "body": m["body"].strip(),
        },
        rest=True,
    ),
    _phrase(
        "change_order_status",
        rf"\bmark\s+{_ORDER}\s+as\s+(?P<status>[\w-]+)",
        lambda m, _: {"order_id": int(m["order_id"]), "status": m["status"].lower()},
    ),
    _phrase("search_orders", r"\bsearch\s+orders\s+(?:for\s+)?(?P<query>.+)", _query),
    _phrase("search_orders", r"\bfind\s+orders\s+(?:for|by|from|of)\s+(?P<query>.+)", _query),
    _phrase("search_help", r"\bhelp\s+with\s+(?P<query>.+)", _query),
    _phrase("search_help", r"\bhow\s+do\s+i\s+(?P<query>.+)", _query),
    # The demo warehouse's MCP tools (shop/mcp_server.py).
    _phrase(
        "reserve_stock",
        rf"\breserve\s+(?P<quantity>\d+)\s+(?:units?\s+)?(?:of\s+)?{_SKU}\s+for\s+{_ORDER}",
        lambda m, _: {
            "sku": m["sku"].upper(),
            "quantity": int(m["quantity"]),
            "order_id": int(m["order_id"]),
        },
    ),
    _phrase(
        "check_stock",
        rf"\bstock\s+(?:level\s+)?(?:of|for)\s+{_SKU}",
        lambda m, _: {"sku": m["sku"].upper()},
    ),
    _phrase("list_reservations", rf"\breservations\s+(?:of|for|on)\s+{_ORDER}", _order),
    _phrase(
        HANDOFF_PHRASE,
        r"\b(?:talk|speak|transfer\s+me|hand\s+(?:me\s+)?(?:over|off))\s+to\s+(?:the\s+)?"
        r"(?P<agent>[A-Za-z][\w-]*)",
        lambda m, _: {"reason": "The user asked for this agent."},
    ),
    # Also covers "status of order N".
    _phrase("get_order", rf"\b{_ORDER}\b", _order),
]


# --- message helpers (also used by the server) ------------------------------


def message_text(message: Message) -> str:
    """The text of a message whose content is a string, a list of parts, or null."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def _last_index(messages: Sequence[Message], role: str) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == role:
            return index
    return None


def last_user_text(messages: Sequence[Message]) -> str:
    index = _last_index(messages, "user")
    return "" if index is None else message_text(messages[index])


def first_user_text(messages: Sequence[Message]) -> str:
    return next((message_text(m) for m in messages if m.get("role") == "user"), "")


def strip_directives(text: str) -> str:
    return " ".join(DIRECTIVE_RE.sub(" ", text).split())


def approx_tokens(text: str) -> int:
    return len(text) // 4 + 1


def offered_tool_names(tools: Sequence[Mapping[str, Any]] | None) -> list[str]:
    names: list[str] = []
    for tool in tools or []:
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        if isinstance(name, str) and name:
            names.append(name)
    return names


def tool_call_id(messages: Sequence[Message], index: int) -> str:
    """`call_` + 12 hex of sha256(conversation so far + index): stable across runs."""
    transcript = json.dumps(
        [[m.get("role"), message_text(m)] for m in messages], ensure_ascii=False
    )
    digest = hashlib.sha256(f"{transcript}#{index}".encode()).hexdigest()
    return f"call_{digest[:12]}"


# --- the script ---------------------------------------------------------------


def reply_for(
    messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None
) -> ScriptedReply:
    """The scripted reply to a chat completion request (see the module docstring)."""
    user_index = _last_index(messages, "user")
    user_text = "" if user_index is None else message_text(messages[user_index])

    loop = LOOP_RE.search(user_text)
    if loop is not None:
        return _loop_step(
            messages, tools, int(loop.group(1)), _loop_steps_done(messages[(user_index or 0) :])
        )

    offered = offered_tool_names(tools)
    after_tools = bool(messages) and messages[-1].get("role") == "tool"
    handed_to = _handed_off_to(messages) if after_tools else None
    if handed_to is not None:
        # The agent handed to takes the question up again, with its own tools.
        offered = [name for name in offered if not name.startswith(HANDOFF_PREFIX)]
    elif after_tools:
        return ScriptedReply(content=_summarise_tool_results(messages))

    calls = _directed_calls(messages, user_text, offered) or _phrase_calls(
        messages, strip_directives(user_text), offered
    )
    greeting = f"You are now talking to the {handed_to} agent. " if handed_to else ""
    if calls:
        return ScriptedReply(content=greeting + _tool_preamble(user_text, calls), tool_calls=calls)
    if handed_to is not None:
        return ScriptedReply(content=greeting + "How can I help?")
    return ScriptedReply(content=_plain_reply(user_text, len(offered)))


def _directed_calls(
    messages: Sequence[Message], user_text: str, offered: Sequence[str]
) -> list[ScriptedToolCall]:
    """The first ``[[call TOOL {json}]]`` of the message whose tool is offered."""
    for call in CALL_RE.finditer(user_text):
        name, arguments = call.group(1), call.group(2) or "{}"
        if name in offered:
            return [
                ScriptedToolCall(id=tool_call_id(messages, 0), name=name, arguments_json=arguments)
            ]
    return []


def _handed_off_to(messages: Sequence[Message]) -> str | None:
    """The agent's name if the tool results that end the conversation include a hand-off."""
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    names: dict[str, str] = {}
    if start > 0:
        for call in messages[start - 1].get("tool_calls") or []:
            function = call.get("function") or {}
            names[str(call.get("id"))] = str(function.get("name") or "")
    for result in messages[start:]:
        if names.get(str(result.get("tool_call_id")), "").startswith(HANDOFF_PREFIX):
            try:
                recorded = json.loads(message_text(result))
            except ValueError:
                recorded = {}
            if isinstance(recorded, Mapping) and recorded.get("handed_off_to"):
                return str(recorded.get("agent") or recorded["handed_off_to"])
    return None


def _tool_preamble(user_text: str, calls: Sequence[ScriptedToolCall]) -> str:
    """What a real model says alongside tool calls: reviewers see it as the agent's reason."""
    names = ", ".join(f"`{call.name}`" for call in calls)
    asked = _truncate(strip_directives(user_text), _QUOTE_LIMIT)
    return f"You asked: “{asked}”. To do that I will call {names}."


def _loop_steps_done(since_user: Sequence[Message]) -> int:
    """Steps taken so far, read from the newest loop call's "step k" argument, so the
    count survives a context window that no longer shows the earliest steps."""
    done = sum(1 for m in since_user if m.get("role") == "tool")
    for message in since_user:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, Mapping) else None
            arguments = function.get("arguments", "") if isinstance(function, Mapping) else ""
            found = _STEP_RE.search(str(arguments))
            if found:
                done = max(done, int(found.group(1)))
    return done


def _loop_step(
    messages: Sequence[Message],
    tools: Sequence[Mapping[str, Any]] | None,
    steps: int,
    done: int,
) -> ScriptedReply:
    if done >= steps:
        return ScriptedReply(content=f"Finished {steps} steps.")
    if not tools:
        return ScriptedReply(content=f"Cannot run {steps} steps: no tools were offered.")
    first = tools[0]
    name = next(iter(offered_tool_names([first])), "tool")
    function = first.get("function")
    schema = function.get("parameters") if isinstance(function, Mapping) else None
    # A tool that declares no parameters would reject an unexpected "query".
    takes_no_arguments = isinstance(schema, Mapping) and not schema.get("properties")
    arguments: dict[str, Any] = {} if takes_no_arguments else {"query": f"step {done + 1}"}
    call = ScriptedToolCall(
        id=tool_call_id(messages, 0), name=name, arguments_json=json.dumps(arguments)
    )
    return ScriptedReply(content=None, tool_calls=[call])


def _offered_as(tool: str, offered: Sequence[str], match: re.Match[str]) -> str | None:
    """The offered name a phrase's tool has: itself, an MCP server's `<server>__<tool>`, or
    for a hand-off phrase the offered `handoff_to_<agent>` of the agent it names."""
    if tool == HANDOFF_PHRASE:
        agent = match["agent"].lower().replace("-", "_")
        handoffs = [name for name in offered if name.startswith(HANDOFF_PREFIX)]
        exact = f"{HANDOFF_PREFIX}{agent}"
        if exact in handoffs:
            return exact
        return next((n for n in handoffs if n.removeprefix(HANDOFF_PREFIX).startswith(agent)), None)
    if tool in offered:
        return tool
    return next((name for name in offered if name.endswith(f"{MCP_SEPARATOR}{tool}")), None)


def _first_match(
    clause: str, offered: Sequence[str]
) -> tuple[ToolPhrase, re.Match[str], str] | None:
    for phrase in PHRASES:
        match = phrase.pattern.search(clause)
        if match is None:
            continue
        name = _offered_as(phrase.tool, offered, match)
        if name is not None:
            return phrase, match, name
    return None


def _clauses(text: str, offered: Sequence[str]) -> list[str]:
    """Split on " and " / ";", gluing back pieces that match no phrase on their own."""
    parts = _CLAUSE_SPLIT_RE.split(text)
    clauses: list[str] = []
    swallowing = False
    for position in range(0, len(parts), 2):
        piece = parts[position]
        found = _first_match(piece, offered)
        if clauses and (swallowing or found is None):
            clauses[-1] += parts[position - 1] + piece
            continue
        clauses.append(piece)
        swallowing = found is not None and found[0].consumes_rest
    return clauses


def _phrase_calls(
    messages: Sequence[Message], text: str, offered: Sequence[str]
) -> list[ScriptedToolCall]:
    if not offered or not text:
        return []
    calls: list[ScriptedToolCall] = []
    for clause in _clauses(text, offered):
        found = _first_match(clause, offered)
        if found is None:
            continue
        phrase, match, name = found
        arguments = json.dumps(phrase.build(match, clause), ensure_ascii=False)
        calls.append(
            ScriptedToolCall(
                id=tool_call_id(messages, len(calls)), name=name, arguments_json=arguments
            )
        )
    return calls


# --- tool result summary ------------------------------------------------------


def _summarise_tool_results(messages: Sequence[Message]) -> str:
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    results = messages[start:]

    names: dict[str, str] = {}
    if start > 0:
        for call in messages[start - 1].get("tool_calls") or []:
            function = call.get("function") or {}
            names[str(call.get("id"))] = str(function.get("name") or "tool")

    lines = [f"Results from {_count(len(results), 'tool call')}:", ""]
    for result in results:
        name = str(result.get("name") or names.get(str(result.get("tool_call_id")), "") or "tool")
        lines.append(f"- **{name}**{_describe_result(message_text(result))}")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _compact(value: Any, limit: int = 80) -> str:
    if isinstance(value, str):
        return _truncate(value, limit)
    return _truncate(json.dumps(value, ensure_ascii=False, separators=(",", ":")), limit)


def _rejection_reason(data: Any, raw: str) -> str | None:
    """A reviewer's reason if the result says the action was rejected, else None.

    Accepted shapes: {"status"|"decision"|"outcome": "rejected"|"denied", "reason": ...},
    {"rejected": true, ...}, {"approved": false, ...}, or plain text mentioning a rejection.
    """
    if isinstance(data, Mapping):
        verdict = {str(data.get(k, "")).lower() for k in ("status", "decision", "outcome")}
        if (
            verdict & {"rejected", "denied"}
            or data.get("rejected") is True
            or (data.get("approved") is False)
        ):
            for key in ("reason", "reviewer_reason", "comment", "note", "message"):
                if data.get(key):
                    return _compact(data[key], 200)
            return "no reason given"
        return None
    if not isinstance(data, (list, int, float)) and "rejected" in raw.lower():
        return _truncate(raw.strip(), 200)
    return None


def _describe_result(raw: str) -> str:
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw

    reason = _rejection_reason(data, raw)
    if reason is not None:
        return f" was rejected by a reviewer: {reason}"
    if isinstance(data, Mapping) and data.get("error") not in (None, "", False):
        error = data["error"]
        if isinstance(error, Mapping) and error.get("message"):
            error = error["message"]
        return f" failed: `{_compact(error, 200)}`"
    if isinstance(data, Mapping):
        facts = []
        for key, value in list(data.items())[:6]:
            if isinstance(value, list):
                facts.append(f"{key}: {_count(len(value), 'item')}")
            else:
                facts.append(f"{key}: {_compact(value, 60)}")
        more = f" (+{len(data) - 6} more)" if len(data) > 6 else ""
        return ": " + ("; ".join(facts) or "(empty)") + more
    if isinstance(data, list):
        first = f", first: {_compact(data[0])}" if data else ""
        return f": {_count(len(data), 'result')}{first}"
    return f": {_compact(data, 200)}"


# --- plain reply ----------------------------------------------------------------


def _plain_reply(user_text: str, tools_offered: int) -> str:
    said = strip_directives(user_text)
    fingerprint = hashlib.sha256(said.encode()).hexdigest()[:8]
    opening = (
        f"You wrote: “{_truncate(said, _QUOTE_LIMIT)}”."
        if said
        else "There was no user message to answer."
    )
    parts = [
        f"**Scripted demo model.** {opening} This reply comes from a fixed script, "
        "not a language model, so the same message always gets exactly this text. "
        "It exists to exercise streaming, rendering and tool calls end to end.",
        "\n".join(
            [
                f"- Your message has {_count(len(said.split()), 'word')} "
                f"and {_count(len(said), 'character')}.",
                f"- Its fingerprint is `{fingerprint}`.",
                f"- Tools offered: {tools_offered}; none matched a scripted phrase.",
            ]
        ),
    ]
    if "code" in said.lower():
        literal = json.dumps(_truncate(said, 60), ensure_ascii=False)
        parts.append(
            "```python\n"
            f"message = {literal}\n"
            "words = message.split()\n"
            'print(f"{len(words)} words")\n'
            "```"
        )
    parts.append(
        "Try “status of order 1001”, “help with returns” or "
        "“refund 25 on order 1001” to see tool calls."
    )
    return "\n\n".join(parts)

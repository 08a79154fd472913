"""aiohttp app speaking the OpenAI Chat Completions wire format, with fault injection.

Replies come from `script.reply_for`; this module only handles HTTP, streaming,
timing and the faults a test (or a demo message) asks for. See the package
docstring for the control API and the inline ``[[...]]`` directives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from aiohttp import web

from .script import (
    ScriptedReply,
    approx_tokens,
    first_user_text,
    last_user_text,
    message_text,
    offered_tool_names,
    reply_for,
)

MODEL_ID = "scripted"
# Tool call arguments are streamed in slices this long, like a real model does.
_ARGUMENT_SLICE = 12
_WORD_RE = re.compile(r"^\s+|\S+\s*")
_INLINE_RE = re.compile(r"\[\[\s*(fault|slow)\b([^\[\]]*)\]\]", re.IGNORECASE)


# --- faults and rules ---------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What one request suffers. status 200 with no drop is a plain (maybe slow) success."""

    status: int = 200
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    drop_after_chunks: int | None = None
    latency_ms: int = 0
    # The stream stops after this many events. Without `finish_reason` the body just
    # ends there (no finish reason, no [DONE]: a broken stream that looks clean);
    # with it, a final chunk carrying that reason and [DONE] follow (a reply the
    # provider cut short: "length", "content_filter").
    end_after_chunks: int | None = None
    finish_reason: str | None = None
    # This request's reply, e.g. "" for an empty answer.
    reply: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be an object")
        unknown = set(data) - {
            "status",
            "retry_after",
            "code",
            "message",
            "drop_after_chunks",
            "latency_ms",
            "end_after_chunks",
            "finish_reason",
            "reply",
        }
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        status = int(data.get("status", 200))
        if not 200 <= status <= 599 or 200 < status < 400:
            raise ValueError(f"fault status must be 200 or 4xx/5xx, got {status}")
        retry_after = data.get("retry_after")
        drop = data.get("drop_after_chunks")
        end = data.get("end_after_chunks")
        return cls(
            status=status,
            retry_after=None if retry_after is None else float(retry_after),
            code=None if data.get("code") is None else str(data["code"]),
            message=None if data.get("message") is None else str(data["message"]),
            drop_after_chunks=None if drop is None else max(0, int(drop)),
            latency_ms=max(0, int(data.get("latency_ms", 0))),
            end_after_chunks=None if end is None else max(0, int(end)),
            finish_reason=None if data.get("finish_reason") is None else str(data["finish_reason"]),
            reply=None if data.get("reply") is None else str(data["reply"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FaultRule:
    """Faults for requests whose last user message contains `match`, consumed in order."""

    match: str
    faults: deque[Fault] = field(default_factory=deque)
    # These apply to every matching request, also after the faults are used up.
    chunk_delay_ms: int | None = None
    first_token_delay_ms: int | None = None
    reply: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        if not isinstance(data, Mapping):
            raise ValueError("a rule must be an object")
        unknown = set(data) - {"match", "faults", "chunk_delay_ms", "first_token_delay_ms", "reply"}
        if unknown:
            raise ValueError(f"unknown rule keys: {sorted(unknown)}")
        faults = data.get("faults") or []
        if not isinstance(faults, list):
            raise ValueError("faults must be a list")
        return cls(
            match=str(data.get("match", "")),
            faults=deque(Fault.from_dict(f) for f in faults),
            chunk_delay_ms=_optional_ms(data.get("chunk_delay_ms")),
            first_token_delay_ms=_optional_ms(data.get("first_token_delay_ms")),
            reply=None if data.get("reply") is None else str(data["reply"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "faults": [f.to_dict() for f in self.faults],
            "chunk_delay_ms": self.chunk_delay_ms,
            "first_token_delay_ms": self.first_token_delay_ms,
            "reply": self.reply,
        }


def _optional_ms(value: Any) -> int | None:
    return None if value is None else max(0, int(value))


@dataclass(frozen=True)
class Plan:
    """How the server answers one request."""

    fault: Fault | None
    chunk_delay_ms: int
    first_token_delay_ms: int
    reply: str | None


def _parse_inline_fault(args: list[str]) -> tuple[Fault, int]:
    """`[[fault 429 retry_after=3 times=2]]` → (Fault, times). Raises ValueError."""
    kind, options = args[0].lower(), dict(a.split("=", 1) for a in args[1:] if "=" in a)
    times = int(options.pop("times", 1))
    if kind == "content_policy":
        fault: dict[str, Any] = {"status": 400, "code": "content_policy_violation"}
    elif kind == "drop":
        fault = {"status": 200, "drop_after_chunks": int(options.pop("after", 3))}
    elif kind == "end":
        fault = {"status": 200, "end_after_chunks": int(options.pop("after", 3))}
    elif kind in ("length", "content_filter"):
        fault = {"finish_reason": kind, "end_after_chunks": int(options.pop("after", 3))}
    elif kind == "empty":
        fault = {"reply": ""}
    elif kind == "latency":
        fault = {"latency_ms": int(options.pop("ms", 1000))}
    else:
        fault = {"status": int(kind)}
    if "retry_after" in options:
        fault["retry_after"] = options.pop("retry_after")
    if "code" in options:
        fault["code"] = options.pop("code")
    return Fault.from_dict(fault), times


class ScriptedModelState:
    """Everything the server remembers: rules, inline-directive counts, the request log."""

    def __init__(self, *, chunk_delay_ms: int = 15, first_token_delay_ms: int = 0) -> None:
        self.chunk_delay_ms = chunk_delay_ms
        self.first_token_delay_ms = first_token_delay_ms
        self.rules: list[FaultRule] = []
        self.requests: list[dict[str, Any]] = []
        # (directive, conversation fingerprint) → times fired, so `times` spans retries.
        self.inline_fired: Counter[tuple[str, str]] = Counter()

    def add_rules(self, rules: Iterable[Mapping[str, Any] | FaultRule]) -> None:
        # Validate everything before adding anything: a bad payload changes nothing.
        parsed = [r if isinstance(r, FaultRule) else FaultRule.from_dict(r) for r in rules]
        self.rules.extend(parsed)

    def clear(self) -> None:
        self.rules.clear()
        self.requests.clear()
        self.inline_fired.clear()

    def log(
        self,
        last_user: str,
        status: int,
        stream: bool,
        at: float,
        *,
        model: str = "",
        system: str = "",
        tools: Sequence[str] = (),
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "at": at,
            "last_user": last_user,
            "status": status,
            "stream": stream,
            # What the agent sent: its model, system prompt and offered tools' names.
            "model": model,
            "system": system,
            "tools": list(tools),
            # The usage report the client received (None: it got none).
            "usage": None,
        }
        self.requests.append(entry)
        return entry

    def plan(self, last_user: str, first_user: str) -> Plan:
        """Pick the fault and timing for a request. No await: consumption is atomic."""
        rule = next((r for r in self.rules if r.match in last_user), None)
        fault = rule.faults.popleft() if rule is not None and rule.faults else None
        slow: int | None = None
        fingerprint = hashlib.sha256(first_user.encode()).hexdigest()[:16]
        for kind, raw_args in _INLINE_RE.findall(last_user):
            args = raw_args.split()
            if kind.lower() == "slow":
                if args and args[0].isdigit() and slow is None:
                    slow = int(args[0])
                continue
            if fault is not None or not args:
                continue
            try:
                inline_fault, times = _parse_inline_fault(args)
            except ValueError:
                continue  # a malformed directive is just text
            key = (" ".join(args).lower(), fingerprint)
            if self.inline_fired[key] < times:
                self.inline_fired[key] += 1
                fault = inline_fault

        chunk_delay = self.chunk_delay_ms if slow is None else slow
        first_token_delay = self.first_token_delay_ms
        if rule is not None:
            if rule.chunk_delay_ms is not None:
                chunk_delay = rule.chunk_delay_ms
            if rule.first_token_delay_ms is not None:
                first_token_delay = rule.first_token_delay_ms
        return Plan(
            fault=fault,
            chunk_delay_ms=chunk_delay,
            first_token_delay_ms=first_token_delay,
            reply=rule.reply if rule is not None else None,
        )


STATE_KEY = web.AppKey("scripted_model_state", ScriptedModelState)


# --- OpenAI-shaped payloads -----------------------------------------------------------


def _error_body(fault: Fault) -> dict[str, Any]:
    code: str | None
    if fault.status == 429:
        message = "Rate limit reached for scripted model (injected fault). Please try again."
        kind, code = "rate_limit_exceeded", fault.code or "rate_limit_exceeded"
    elif fault.code == "content_policy_violation":
        message = "Your request was rejected as a result of our safety system."
        kind, code = "invalid_request_error", fault.code
    elif fault.status == 503:
        message = "The scripted model is overloaded (injected fault). Please try again later."
        kind, code = "server_error", fault.code
    elif fault.status >= 500:
        message = "The server had an error while processing your request (injected fault)."
        kind, code = "server_error", fault.code
    else:
        message = f"Injected fault: HTTP {fault.status}."
        kind, code = "invalid_request_error", fault.code
    return {
        "error": {"message": fault.message or message, "type": kind, "param": None, "code": code}
    }


def _error_response(fault: Fault) -> web.Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        value = fault.retry_after
        headers["Retry-After"] = str(int(value)) if value.is_integer() else str(value)
    return web.json_response(_error_body(fault), status=fault.status, headers=headers)


def _bad_request(message: str) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return web.json_response(body, status=400)


def _usage(messages: list[Mapping[str, Any]], reply: ScriptedReply) -> dict[str, Any]:
    """The usage report, shaped as OpenAI's (the same numbers for the same request).

    Cached tokens follow a simple deterministic rule: once a conversation has history
    (more than a system prompt and one message), every message but the last is taken as
    read from the prompt cache, as a provider caching the prefix an earlier call sent would.
    """
    texts = [message_text(m) for m in messages]
    prompt = approx_tokens("\n".join(texts))
    cached = approx_tokens("\n".join(texts[:-1])) if len(texts) > 2 else 0
    produced = (reply.content or "") + "".join(c.name + c.arguments_json for c in reply.tool_calls)
    completion = approx_tokens(produced)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _invalid_message(messages: list[dict[str, Any]]) -> str | None:
    """What a server that follows the API refuses in a request's messages, if anything: an
    assistant message's content may be null only beside tool calls."""
    for index, message in enumerate(messages):
        if (
            message.get("role") == "assistant"
            and message.get("content") is None
            and not message.get("tool_calls")
        ):
            return f"Invalid value for 'messages[{index}].content': expected a string, got null."
    return None


def _finish_reason(reply: ScriptedReply, fault: Fault | None) -> str:
    if fault is not None and fault.finish_reason:
        return fault.finish_reason
    return reply.finish_reason


def _completion_body(
    reply: ScriptedReply, model: str, usage: dict[str, Any], finish_reason: str
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "scripted",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage,
    }


def _deltas(reply: ScriptedReply) -> Iterator[dict[str, Any]]:
    """The streamed pieces of a reply: content word by word, then tool calls."""
    for word in _WORD_RE.findall(reply.content or ""):
        yield {"content": word}
    for index, call in enumerate(reply.tool_calls):
        yield {
            "tool_calls": [
                {
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
        }
        arguments = call.arguments_json
        for start in range(0, len(arguments), _ARGUMENT_SLICE):
            piece = arguments[start : start + _ARGUMENT_SLICE]
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


async def _chunk_events(
    reply: ScriptedReply, model: str, usage: dict[str, Any] | None, plan: Plan
) -> AsyncIterator[bytes]:
    """SSE events, sleeping where a real model would be generating. A fault's finish
    reason ends the reply early (after `end_after_chunks` events) with that reason."""
    fault = plan.fault
    kept: int | None = None
    if fault is not None and fault.finish_reason and fault.end_after_chunks is not None:
        kept = max(0, fault.end_after_chunks - 1)  # the role chunk is the first event
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "scripted",
            "choices": choices,
            # As the API does with include_usage: null on every chunk but the last.
            **({"usage": None} if usage is not None else {}),
            **extra,
        }
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    yield event(choice({"role": "assistant", "content": "" if reply.content else None}))
    for position, delta in enumerate(islice(_deltas(reply), kept)):
        delay_ms = plan.first_token_delay_ms if position == 0 else plan.chunk_delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        yield event(choice(delta))
    yield event(choice({}, _finish_reason(reply, fault)))
    if usage is not None:
        yield event([], usage=usage)
    yield b"data: [DONE]\n\n"


# --- handlers -------------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    arrived = time.time()
    try:
        body = await request.json()
    except ValueError:
        return _bad_request("The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _bad_request("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad_request("'messages' must be a non-empty array.")
    if not all(isinstance(m, dict) for m in messages):
        return _bad_request("Every message must be an object.")

    stream = body.get("stream") is True
    last_user = last_user_text(messages)
    # What the agent sent: its model, system prompt and the names of the tools it offered.
    seen: dict[str, Any] = {
        "model": str(body.get("model") or ""),
        "system": next((message_text(m) for m in messages if m.get("role") == "system"), ""),
        "tools": offered_tool_names(tools if isinstance(tools := body.get("tools"), list) else []),
    }
    problem = _invalid_message(messages)
    if problem is not None:
        state.log(last_user, 400, stream, arrived, **seen)
        return _bad_request(problem)
    plan = state.plan(last_user, first_user_text(messages))
    fault = plan.fault
    logged = state.log(last_user, fault.status if fault else 200, stream, arrived, **seen)

    if fault is not None and fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000)
    if fault is not None and fault.status >= 400:
        return _error_response(fault)

    tools = None if body.get("tool_choice") == "none" else body.get("tools")
    override = fault.reply if fault is not None and fault.reply is not None else plan.reply
    reply = ScriptedReply(content=override) if override is not None else reply_for(messages, tools)
    model = str(body.get("model") or MODEL_ID)
    usage = _usage(messages, reply)

    if not stream:
        # Take as long as streaming would, so both modes cost the same wall time.
        steps = sum(1 for _ in _deltas(reply))
        delay_ms = plan.first_token_delay_ms + plan.chunk_delay_ms * max(0, steps - 1)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        logged["usage"] = usage
        return web.json_response(
            _completion_body(reply, model, usage, _finish_reason(reply, fault))
        )

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    drop_after = fault.drop_after_chunks if fault is not None else None
    # With a finish reason the events themselves end early (see _chunk_events).
    end_after = fault.end_after_chunks if fault is not None and not fault.finish_reason else None

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    sent = 0
    try:
        # Inside the try: a client that left during a latency fault makes prepare() fail.
        await response.prepare(request)
        async for payload in _chunk_events(reply, model, usage if include_usage else None, plan):
            if drop_after is not None and sent >= drop_after:
                # Simulate a broken stream: the body ends without its terminating chunk.
                if request.transport is not None:
                    request.transport.close()
                return response
            if end_after is not None and sent >= end_after:
                break  # the body ends cleanly, as if the reply were done
            await response.write(payload)
            sent += 1
        else:
            # The whole stream went out, its usage chunk (when asked for) with it.
            if include_usage:
                logged["usage"] = usage
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away; nothing left to tell it
    return response


async def list_models(_request: web.Request) -> web.Response:
    model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "scripted-model"}
    return web.json_response({"object": "list", "data": [model]})


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def add_rules(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        rules = body["rules"]
        if not isinstance(rules, list):
            raise ValueError("'rules' must be a list")
        request.app[STATE_KEY].add_rules(rules)
    except (ValueError, KeyError, TypeError) as error:
        return _bad_request(f"Invalid rules: {error}")
    return web.json_response({"rules": len(request.app[STATE_KEY].rules)})


async def list_rules(request: web.Request) -> web.Response:
    return web.json_response({"rules": [r.to_dict() for r in request.app[STATE_KEY].rules]})


async def clear_rules(request: web.Request) -> web.Response:
    request.app[STATE_KEY].clear()
    return web.json_response({"rules": 0})


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].requests)


def create_app(state: ScriptedModelState | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state or ScriptedModelState()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/control/rules", add_rules)
    app.router.add_get("/control/rules", list_rules)
    app.router.add_delete("/control/rules", clear_rules)
    app.router.add_get("/control/requests", list_requests)
    return app


# --- in-process server ------------------------------------------------------------------


class ScriptedModelServer:
    """A running scripted model; point an OpenAI client at `base_url`."""

    def __init__(self, runner: web.AppRunner, state: ScriptedModelState, host: str, port: int):
        self._runner = runner
        self.state = state
        self.host = host
        self.port = port
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown_host}:{port}"
        self.base_url = f"{self.url}/v1"

    async def add_rules(self, *rules: Mapping[str, Any]) -> None:
        """Same shape as one entry of POST /control/rules' "rules" list."""
        self.state.add_rules(rules)

    async def clear(self) -> None:
        self.state.clear()

    @property
    def request_log(self) -> list[dict[str, Any]]:
        return list(self.state.requests)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> ScriptedModelServer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


async def start_scripted_model(
    host: str = "127.0.0.1",
    port: int = 0,
    chunk_delay_ms: int = 0,
    first_token_delay_ms: int = 0,
) -> ScriptedModelServer:
    """Start the server on this event loop; port 0 picks a free port."""
    state = ScriptedModelState(
        chunk_delay_ms=chunk_delay_ms, first_token_delay_ms=first_token_delay_ms
    )
    # Short shutdown timeout: an abandoned stream must not hold up stop() for a minute.
    runner = web.AppRunner(create_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    return ScriptedModelServer(runner, state, host, bound_port)

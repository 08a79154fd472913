"""Scripted model: a deterministic, OpenAI Chat Completions-compatible HTTP server.

It is the product's demo and test double at the network boundary: the real
`openai` client talks to it over real HTTP. It is a fixed script, never
presented as intelligent. Run it with::

    python -m temporal_worker.scripted_model --host 127.0.0.1 --port 8765

or in-process with ``server = await start_scripted_model()`` (``server.base_url``
ends in ``/v1``; ``await server.stop()`` when done).

Endpoints
---------
``POST /v1/chat/completions``  streaming (SSE) and non-streaming, text and tool calls.
``GET /v1/models``             lists the one model, ``scripted`` (any model name is accepted).
``GET /healthz``               ``ok``.

Control API (for tests and benchmarks)
--------------------------------------
``POST /control/rules`` ``{"rules": [{"match": str, "faults": [F, ...],
"chunk_delay_ms": int?, "first_token_delay_ms": int?, "reply": str?}]}`` appends
rules. The first rule whose ``match`` is a (case-sensitive) substring of the last
user message applies. Each fault F is used up by one matching request, in order:
``{"status": 429, "retry_after": 3}``, ``{"status": 500}``, ``{"status": 503}``,
``{"status": 400, "code": "content_policy_violation"}``,
``{"status": 200, "drop_after_chunks": 3}`` (stream 3 SSE events, then cut the
connection), ``{"end_after_chunks": 3}`` (stream 3 SSE events, then end the body
cleanly: no finish reason, no ``[DONE]``), ``{"finish_reason": "length",
"end_after_chunks": 5}`` (5 events, then a final chunk with that finish reason and
``[DONE]``: a reply cut short; ``"content_filter"`` likewise; without
``end_after_chunks`` the whole reply ends with that reason), ``{"reply": ""}`` (this
request's reply: an empty answer), ``{"latency_ms": 2000}`` (wait, then answer;
combinable with the others). Events are counted from the first (the role chunk)
and include the finish chunk, so ``end_after_chunks`` one past the last delta
gives a finished stream without ``[DONE]``; both ``*_after_chunks`` apply to
streamed requests only. The delays and ``reply`` override apply to every matching request, also
after its faults are used up. ``GET /control/rules`` shows what is left,
``DELETE /control/rules`` clears rules, directive counts and the request log, and
``GET /control/requests`` returns
``[{"at": unix_ts, "last_user": str, "status": int, "stream": bool, "model": str,
"system": str, "tools": [name, ...]}]`` (the model, system prompt and tools an agent sent).
A rule ``{"match": "", "chunk_delay_ms": 0}`` changes the pace of every request.

Inline directives (for demos typed into the chat)
-------------------------------------------------
Written anywhere in the user message; removed before the script reads it.

``[[fault 429 retry_after=3 times=2]]``  HTTP 429 with ``Retry-After: 3``, twice.
``[[fault 500 times=1]]`` / ``[[fault 503]]``  server errors (any 4xx/5xx works).
``[[fault content_policy]]``  HTTP 400, code ``content_policy_violation``.
``[[fault drop after=3]]``  cut the stream after 3 events.
``[[fault end after=3]]``  end the body after 3 events, without a finish reason.
``[[fault length after=5]]`` / ``[[fault content_filter after=5]]``  the reply stops
after 5 events with that finish reason.
``[[fault empty]]``  an empty answer.
``[[fault 422]]`` / ``[[fault 413]]``  client errors the gateway never retries.
``[[fault latency ms=2000]]``  answer after 2 s.
``[[slow 200]]``  200 ms between streamed chunks.
``[[loop N]]``  call the first offered tool until N tool results follow the user
message, then answer "Finished N steps." (drives long agent runs).
``[[call TOOL {json}]]``  call exactly this offered tool (an MCP server's as
``<server>__<tool>``, a hand-off as ``handoff_to_<agent>``) with these arguments.

Phrases call tools too (script.PHRASES): "stock of KB-01", "reserve 2 of KB-01 for
order 1001" and "reservations for order 1001" call an offered MCP tool named
``check_stock``, ``reserve_stock`` or ``list_reservations`` (any server's), and
"talk to warehouse" the offered hand-off ``handoff_to_warehouse``.

``times`` defaults to 1 and counts per (directive, conversation), the
conversation being identified by a hash of its first user message, so a retry of
the same request sees the count go down. Only the last user message's directives
are read. A control-API fault takes precedence over an inline one.

Requests are checked as servers that follow the API check them: an assistant
message whose content is null and that has no tool calls is refused with a 400.
"""

from .script import PHRASES, ScriptedReply, ScriptedToolCall, ToolPhrase, reply_for
from .server import (
    ScriptedModelServer,
    ScriptedModelState,
    create_app,
    start_scripted_model,
)

__all__ = [
    "PHRASES",
    "ScriptedModelServer",
    "ScriptedModelState",
    "ScriptedReply",
    "ScriptedToolCall",
    "ToolPhrase",
    "create_app",
    "reply_for",
    "start_scripted_model",
]

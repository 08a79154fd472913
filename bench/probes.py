"""Ports for measuring the worker's activities: timing wrappers, and stand-ins that
leave one piece out.

The activities reach the database, the approval policies, the audit table and the
channel layer only through `temporal_worker.ports.Ports`, so the bench instruments them
there: a worker built with `build_worker(..., ports=probe.ports())` runs the product's
own implementations (`product_ports()`), each call timed into `probe.spans` while it is
set and changed by the flags in `probe.flags`. Nothing in the product changes, and
product return values carry no bench data.

Flags (what the ports do instead of the product's work):

- `no_push`: live events are dropped, not published;
- `no_db`: the transcript writes nothing (the agent and its active prompt are still read);
- `no_prompt_query`: the agent is the built-in one with its code-default prompt, not
  queried (messages still written);
- `one_write`: a step's new messages are written with its reply, in one write at the
  end of the activity, as before the transcript port (the prompt is read alone first).
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench.harness import now

if TYPE_CHECKING:
    from temporal_worker.ports import Ports


class Spans:
    """Spans of the step being measured (steps run one at a time)."""

    def __init__(self) -> None:
        self.current: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
        self.marks: dict[str, float] = {}
        self.steps: list[tuple[dict[str, list[tuple[float, float]]], dict[str, float]]] = []

    def begin(self) -> None:
        self.current = collections.defaultdict(list)
        self.marks = {}

    def end(self) -> None:
        self.steps.append((self.current, self.marks))

    def add(self, name: str, started: float, ended: float) -> None:
        self.current[name].append((started, ended))

    def mark_once(self, name: str) -> None:
        self.marks.setdefault(name, now())


class Probe:
    """Switchable instrumentation for the ports one worker (or activity) was built with."""

    def __init__(self) -> None:
        self.spans: Spans | None = None
        self.flags: frozenset[str] = frozenset()

    def ports(self) -> Ports:
        """The product's ports, each wrapped to be timed and ablated through this probe."""
        from temporal_worker.ports import Ports
        from temporal_worker.worker import product_ports

        product = product_ports()
        transcript = product.transcript
        in_thread = getattr(transcript, "_step_begin_for_agent", None)
        if in_thread is not None:
            # DatabaseTranscript: its queries, timed inside Django's database thread (the
            # rest of the step's begin is the hop to that thread and back). This instance only.
            transcript._step_begin_for_agent = self.timed_sync(
                "db thread: step_begin's queries", in_thread
            )
        return Ports(
            transcript=_ProbeTranscript(self, transcript),
            policies=_Timed(self, product.policies, "db: policies"),
            audit=_Timed(self, product.audit, "db: audit"),
            live=_ProbeLive(self, product.live),
        )

    def timed_sync(self, label: str, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = now()
            try:
                return function(*args, **kwargs)
            finally:
                if self.spans is not None:
                    self.spans.add(label, started, now())

        return timed

    async def timed(self, label: str, call: Any) -> Any:
        if self.spans is None:
            return await call
        started = now()
        try:
            return await call
        finally:
            self.spans.add(label, started, now())


class _Timed:
    """Any port: each coroutine method is a span named `<label>.<method>`."""

    def __init__(self, probe: Probe, inner: Any, label: str) -> None:
        self._probe = probe
        self._inner = inner
        self._label = label

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def timed(*args: Any, **kwargs: Any) -> Any:
            return await self._probe.timed(f"{self._label}.{name}", attr(*args, **kwargs))

        return timed


class _ProbeTranscript:
    def __init__(self, probe: Probe, inner: Any) -> None:
        self._probe = probe
        self._inner = inner
        # one_write: the messages each conversation's step began with, written with the reply.
        self._held: dict[str, list[Any]] = {}

    async def step_begin(
        self, *, conversation_id: str, messages: Sequence[Any], run_id: str, prompt: str
    ) -> Any:
        from chatapp.prompts import DEFAULTS

        flags = self._probe.flags
        if "no_db" in flags:
            messages = ()
        elif "one_write" in flags:
            self._held.setdefault(conversation_id, []).extend(messages)
            messages = ()
        if "no_prompt_query" in flags:
            if messages:
                await self.record(conversation_id=conversation_id, messages=messages, run_id=run_id)
            return DEFAULTS[prompt]
        label = "db: step_begin (new messages + prompt)" if messages else "db: step_begin (prompt)"
        return await self._probe.timed(
            label,
            self._inner.step_begin(
                conversation_id=conversation_id, messages=messages, run_id=run_id, prompt=prompt
            ),
        )

    async def step_begin_for_agent(
        self, *, conversation_id: str, messages: Sequence[Any], run_id: str, agent: str
    ) -> Any:
        from chatapp.agents import FALLBACK_NAME
        from chatapp.prompts import AGENT_SYSTEM_PROMPT, DEFAULTS
        from temporal_worker.ports import AgentProfile

        flags = self._probe.flags
        if "no_db" in flags:
            messages = ()
        elif "one_write" in flags:
            self._held.setdefault(conversation_id, []).extend(messages)
            messages = ()
        if "no_prompt_query" in flags:
            if messages:
                await self.record(conversation_id=conversation_id, messages=messages, run_id=run_id)
            return AgentProfile(slug="", name=FALLBACK_NAME, prompt=DEFAULTS[AGENT_SYSTEM_PROMPT])
        label = "db: step_begin (new messages + agent)" if messages else "db: step_begin (agent)"
        return await self._probe.timed(
            label,
            self._inner.step_begin_for_agent(
                conversation_id=conversation_id, messages=messages, run_id=run_id, agent=agent
            ),
        )

    async def record(self, *, conversation_id: str, messages: Sequence[Any], run_id: str) -> None:
        if "no_db" in self._probe.flags:
            return
        held = self._held.pop(conversation_id, [])
        await self._probe.timed(
            "db: record (reply)" if not held else "db: record (new messages + reply)",
            self._inner.record(
                conversation_id=conversation_id, messages=[*held, *messages], run_id=run_id
            ),
        )

    async def keep_full_tool_result(
        self, *, conversation_id: str, message_id: str, content: str
    ) -> None:
        await self._probe.timed(
            "db: keep_full_tool_result",
            self._inner.keep_full_tool_result(
                conversation_id=conversation_id, message_id=message_id, content=content
            ),
        )


class _ProbeLive:
    def __init__(self, probe: Probe, inner: Any) -> None:
        self._probe = probe
        self._inner = inner

    async def publish(self, group: str, event: Any) -> None:
        if "no_push" in self._probe.flags:
            return
        await self._probe.timed(f"push: {event.type}", self._inner.publish(group, event))

"""Where an agent step's time goes beyond the floor: an investigation tool, not part of
`make bench`.

    .venv/bin/python bench/profile_step.py breakdown [--steps 40]
        Times each piece of the LLM activity (its ports: the transcript's step_begin and
        record, live pushes, policies; tool schemas, the OpenAI client and stream,
        heartbeats, planning) and
        Temporal's side of the step (update, workflow task, activity start/complete,
        from the history's server timestamps), for the product and the floor.

    .venv/bin/python bench/profile_step.py ablation [--steps 40]
        The LLM activity function alone (no worker), timed with one piece removed
        or changed at a time: what each piece costs.

    .venv/bin/python bench/profile_step.py patches [--steps 30]
        Whole agent steps through Temporal with one proposed change applied at a time
        (through the worker's ports, per sample), next to the floor: the expected gain
        of each.

    .venv/bin/python bench/profile_step.py cprofile [--steps 40] [--top 45]
        cProfile of the whole process over many agent steps (CPU by function).

    .venv/bin/python bench/profile_step.py pyinstrument [--steps 40]
        Wall-clock call tree (needs `pip install pyinstrument`; not a dependency).

    .venv/bin/python bench/profile_step.py variants [--steps 40] [--only a,b]
        Floor and agent step under worker / server options (eager activities,
        sandbox off, pollers, DEBUG, model out of process), each on a fresh server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench import scenarios as sc  # noqa: E402
from bench.harness import now, progress, summary  # noqa: E402
from bench.probes import Probe, Spans  # noqa: E402

# --- breakdown: spans inside the LLM activity ------------------------------------------------


def instrument(spans: Spans, probe: Probe) -> Callable[[], None]:
    """Time the LLM activity's collaborators into `spans`: its ports through `probe` (the
    worker was built with `probe.ports()`), the gateway, planner, tool schemas and
    heartbeats by wrapping them. Returns a function that undoes it."""
    from temporalio import activity

    from temporal_worker import llm_gateway
    from temporal_worker.activities import llm
    from temporal_worker.scripted_model import server as model_server
    from temporal_worker.tools.registry import ToolRegistry

    undo: list[Callable[[], None]] = []

    def patch(owner: Any, attr: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, attr)
        setattr(owner, attr, make(original))
        undo.append(lambda: setattr(owner, attr, original))

    def timed_async(name: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = now()
                try:
                    return await original(*args, **kwargs)
                finally:
                    spans.add(name, started, now())

            return wrapper

        return make

    def timed_sync(name: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = now()
                try:
                    return original(*args, **kwargs)
                finally:
                    spans.add(name, started, now())

            return wrapper

        return make

    probe.spans = spans
    undo.append(lambda: setattr(probe, "spans", None))
    patch(ToolRegistry, "openai_tools", timed_sync("cpu: openai_tools() schemas"))
    patch(llm_gateway, "to_openai_messages", timed_sync("cpu: to_openai_messages"))
    patch(llm_gateway, "stream_completion", timed_async("llm: stream_completion"))
    patch(llm, "plan_calls", timed_async("cpu/db: plan_calls"))
    patch(activity, "heartbeat", timed_sync("heartbeat"))
    patch(model_server, "chat_completions", timed_async("model server: request handled"))

    original_info = activity.info

    def info() -> Any:
        result = original_info()
        if result.activity_type == "call_llm":
            spans.mark_once("activity started")
        return result

    activity.info = info
    undo.append(lambda: setattr(activity, "info", original_info))

    original_add = llm._Stream.add

    async def add(self: Any, delta: str) -> None:
        spans.mark_once("first delta")
        started = now()
        try:
            await original_add(self, delta)
        finally:
            spans.add("delta: _Stream.add (push or buffer)", started, now())

    llm._Stream.add = add  # type: ignore[method-assign]
    undo.append(lambda: setattr(llm._Stream, "add", original_add))

    original_finish = llm.LlmActivity._finish

    async def finish(self: Any, *args: Any, **kwargs: Any) -> Any:
        spans.mark_once("finish started")
        return await original_finish(self, *args, **kwargs)

    llm.LlmActivity._finish = finish  # type: ignore[method-assign]
    undo.append(lambda: setattr(llm.LlmActivity, "_finish", original_finish))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


TEMPORAL_EVENTS = [
    "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    "EVENT_TYPE_WORKFLOW_TASK_STARTED",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    "EVENT_TYPE_ACTIVITY_TASK_STARTED",
    "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
]


def temporal_timeline(
    follower: harness.HistoryFollower, first_event: int, sent_wall: float
) -> dict[str, float]:
    """Server timestamps of the step's events, relative to when the update was sent."""
    out: dict[str, float] = {}
    counts: collections.Counter[str] = collections.Counter()
    for event in follower.events:
        if event.event_id <= first_event or event.type not in TEMPORAL_EVENTS:
            continue
        counts[event.type] += 1
        short = event.type.removeprefix("EVENT_TYPE_").lower()
        key = f"{short}#{counts[event.type]}"
        out[key] = event.event_time - sent_wall
    return out


async def breakdown(stack: harness.Stack, probe: Probe, steps: int) -> None:
    spans = Spans()
    restore = instrument(spans, probe)
    timelines: dict[str, list[dict[str, float]]] = {"floor": [], "product": []}
    totals: dict[str, list[dict[str, float]]] = {"floor": [], "product": []}
    try:
        floor = await sc.FloorConversation(stack).start()
        product = await sc.ProductConversation.create(stack)
        for n in range(steps):
            if floor.steps >= sc.TURNS_PER_CONVERSATION:
                await floor.close()
                floor = await sc.FloorConversation(stack).start()
            if product.turns >= sc.TURNS_PER_CONVERSATION:
                await product.close()
                product = await sc.ProductConversation.create(stack)
            first = floor.history.events[-1].event_id
            wall = time.time()
            sample = await floor.step()
            timelines["floor"].append(temporal_timeline(floor.history, first, wall))
            totals["floor"].append(sample)

            assert product.history is not None
            first = product.history.events[-1].event_id
            spans.begin()
            wall = time.time()
            started = now()
            spans.marks["sent"] = started
            sample = await product.turn(sc.PLAIN_TEXT.format(n=n))
            spans.end()
            timelines["product"].append(temporal_timeline(product.history, first, wall))
            totals["product"].append(sample)
            # Marks relative to the send.
            _, marks = spans.steps[-1]
            for key in list(marks):
                marks[key] -= started
            marks["reply out"] = sample["reply_out"]
            marks["update RPC returned"] = sample["update_rpc"]
            marks["settled (WFT completed)"] = sample["settled"]
        await floor.close()
        await product.close()
    finally:
        restore()

    def ms(values: list[float]) -> str:
        p95 = harness.percentile(values, 0.95)
        return f"{statistics.median(values) * 1000:7.2f} {p95 * 1000:7.2f}"

    print(f"\n== breakdown over {steps} steps (median / p95 ms) ==")
    for name in ("floor", "product"):
        print(f"\n{name}: temporal server timeline (event time - update sent)")
        keys = sorted(
            {k for t in timelines[name] for k in t},
            key=lambda k: statistics.median([t[k] for t in timelines[name] if k in t]),
        )
        for key in keys:
            values = [t[key] for t in timelines[name] if key in t]
            print(f"  {key:<44}{ms(values)}  (n={len(values)})")
        for key in ("update_rpc", "reply_out", "settled"):
            print(f"  bench: {key:<37}{ms([s[key] for s in totals[name]])}")

    print("\nproduct: LLM activity marks (time since the update was sent)")
    mark_keys = sorted(
        {k for _, m in spans.steps for k in m},
        key=lambda k: statistics.median([m[k] for _, m in spans.steps if k in m]),
    )
    for key in mark_keys:
        values = [m[key] for _, m in spans.steps if key in m]
        print(f"  {key:<44}{ms(values)}")

    print("\nproduct: time inside each piece, per step (sum of spans; count per step)")
    names = sorted({k for s, _ in spans.steps for k in s})
    rows = []
    for name in names:
        per_step = [sum(e - b for b, e in s.get(name, [])) for s, _ in spans.steps]
        counts = [len(s.get(name, [])) for s, _ in spans.steps]
        rows.append((statistics.median(per_step), name, per_step, counts))
    for _, name, per_step, counts in sorted(rows, reverse=True):
        print(f"  {name:<44}{ms(per_step)}  x{statistics.median(counts):.0f}")


# --- ablation: the LLM activity alone, without one piece at a time ---------------------------


async def raw_stream_completion(
    settings: Any, messages: list[dict[str, Any]], *, tools: Any, on_delta: Any
) -> Any:
    """stream_completion without the openai SDK: aiohttp and json.loads per SSE event."""
    import json

    import aiohttp

    from temporal_worker.contracts.tools import ToolCall
    from temporal_worker.llm_gateway import Completion

    session = _RAW_SESSIONS.get(id(asyncio.get_running_loop()))
    if session is None:
        session = _RAW_SESSIONS[id(asyncio.get_running_loop())] = aiohttp.ClientSession()
    body: dict[str, Any] = {"model": settings.model, "messages": messages, "stream": True}
    if tools:
        body["tools"] = tools
    completion = Completion()
    content: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    async with session.post(
        settings.base_url.rstrip("/") + "/chat/completions",
        json=body,
        headers={"Authorization": "Bearer scripted"},
    ) as response:
        response.raise_for_status()
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            completion.model = chunk.get("model") or completion.model
            if not chunk.get("choices"):
                continue
            choice = chunk["choices"][0]
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
                await on_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                completion.finish_reason = choice["finish_reason"]
    completion.content = "".join(content)
    completion.tool_calls = [
        ToolCall(id=s["id"], name=s["name"], arguments=s["arguments"] or "{}")
        for _, s in sorted(calls.items())
    ]
    return completion


_RAW_SESSIONS: dict[int, Any] = {}


async def sdk_chunks_stream_completion(
    settings: Any, messages: Any, *, tools: Any, on_delta: Any
) -> Any:
    """stream_completion as it was before issue #6: `chat.completions.create` (which
    re-walks the messages against the SDK's TypedDicts) and a pydantic chunk per event."""
    from temporal_worker import llm_gateway
    from temporal_worker.contracts.tools import ToolCall

    kwargs: dict[str, Any] = {"tools": tools} if tools else {}
    stream: Any = await llm_gateway.openai_client(settings).chat.completions.create(
        model=settings.model, messages=messages, stream=True, **kwargs
    )
    completion = llm_gateway.Completion()
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
                slot["id"] = call.id or slot["id"]
                if call.function and call.function.name:
                    slot["name"] += call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            if choice.finish_reason:
                completion.finish_reason = choice.finish_reason
    completion.content = "".join(content)
    completion.tool_calls = [
        ToolCall(id=s["id"], name=s["name"], arguments=s["arguments"] or "{}")
        for _, s in sorted(calls.items())
    ]
    return completion


def ablation_patches(flags: set[str], probe: Probe) -> Callable[[], None]:
    """Apply `flags`: the ports' through `probe`, the model client's by swapping
    `llm_gateway.stream_completion`. Returns a function that undoes it."""
    from temporal_worker import llm_gateway

    original_stream = llm_gateway.stream_completion
    if "raw_http" in flags:
        llm_gateway.stream_completion = raw_stream_completion
    if "sdk_chunks" in flags:
        llm_gateway.stream_completion = sdk_chunks_stream_completion
    probe.flags = frozenset(flags)

    def restore() -> None:
        probe.flags = frozenset()
        llm_gateway.stream_completion = original_stream

    return restore


ABLATIONS: dict[str, set[str]] = {
    "full (as shipped)": set(),
    "without the progress pushes": {"no_push"},
    "without the DB write(s)": {"no_db"},
    "without the prompt query": {"no_prompt_query"},
    "one write (new messages with the reply)": {"one_write"},
    "SDK create + pydantic chunks (before #6)": {"sdk_chunks"},
    "raw aiohttp instead of openai SDK": {"raw_http"},
    "all removed (floor of the activity)": {
        "no_push",
        "no_db",
        "no_prompt_query",
        "raw_http",
    },
}


async def ablation(stack: harness.Stack, probe: Probe, rounds: int) -> None:
    """Runs the LLM activity itself (temporalio.testing.ActivityEnvironment, no worker) on
    the probe's ports, with one subscriber on the conversation's group like an open tab."""
    import uuid

    from temporalio.testing import ActivityEnvironment

    from temporal_worker.activities.llm import LlmActivity
    from temporal_worker.contracts.conversation import ChatMessage, LlmRequest
    from temporal_worker.tools.registry import atool_registry
    from temporal_worker.worker import llm_settings

    call_llm = LlmActivity(probe.ports(), tools=atool_registry, llm_settings=llm_settings).call_llm

    (conversation_id,) = await harness.conversations_create(stack.users.owner.pk, 1)
    watch = await harness.GroupWatch(conversation_id).start()
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *_details: None
    seq = iter(range(1, 1_000_000))

    async def once(flags: set[str]) -> float:
        user = ChatMessage(
            id=str(uuid.uuid4()), seq=next(seq), role="user", content="benchmark turn"
        )
        request = LlmRequest(
            conversation_id=conversation_id,
            reply_id=str(uuid.uuid4()),
            reply_seq=next(seq),
            context=[user],
            new_messages=[user],
        )
        restore = ablation_patches(flags, probe)
        try:
            started, cpu = now(), time.process_time()
            await env.run(call_llm, request)
            cpu_times[name_of[frozenset(flags)]].append(time.process_time() - cpu)
            return now() - started
        finally:
            restore()
            watch.drain()

    names = list(ABLATIONS)
    name_of = {frozenset(flags): name for name, flags in ABLATIONS.items()}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up
        await once(ABLATIONS[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(await once(ABLATIONS[name]))
    await watch.stop()
    for session in _RAW_SESSIONS.values():
        await session.close()
    _RAW_SESSIONS.clear()
    full = statistics.median(times[names[0]])
    full_cpu = statistics.median(cpu_times[names[0]])
    print(f"\n== the LLM activity alone, {rounds} runs each (ms; CPU = this process) ==")
    print(f"{'variant':<52}{'median':>8}{'p95':>8}{'saves':>8}{'CPU':>8}{'saves':>8}")
    for name in names:
        median = statistics.median(times[name])
        p95 = harness.percentile(times[name], 0.95)
        cpu = statistics.median(cpu_times[name])
        print(
            f"{name:<52}{median * 1000:>8.2f}{p95 * 1000:>8.2f}{(full - median) * 1000:>8.2f}"
            f"{cpu * 1000:>8.2f}{(full_cpu - cpu) * 1000:>8.2f}"
        )


STEP_PATCHES: dict[str, set[str]] = {
    "as shipped": set(),
    "SDK create + pydantic chunks (before #6)": {"sdk_chunks"},
    "prompt not queried": {"no_prompt_query"},
    "one write (new messages with the reply)": {"one_write"},
    "raw aiohttp instead of openai SDK": {"raw_http"},
}


async def step_patches(stack: harness.Stack, probe: Probe, rounds: int) -> None:
    """Whole agent steps through Temporal, each sample with one proposed change applied
    (through the worker's probe ports, or a swapped model client, for the sample),
    interleaved with the floor and the unchanged product."""
    names = list(STEP_PATCHES)
    floor = sc.rolling_floor(stack, [1])
    products = {name: sc.rolling_product(stack, sc.PLAIN_TEXT, name=name) for name in names}

    def patched(name: str) -> sc.Measure:
        measure = products[name]
        plain = measure.sample

        async def sample() -> dict[str, float]:
            restore = ablation_patches(STEP_PATCHES[name], probe)
            cpu = time.process_time()
            try:
                result = await plain()
            finally:
                restore()
            # CPU of this process (worker, model, bench; every thread) for the step: less
            # sensitive than wall time to whatever else loads the machine.
            result["cpu"] = time.process_time() - cpu
            return result

        return sc.Measure(name, sample, measure.samples)

    floor_sample = floor.sample

    async def floor_with_cpu() -> dict[str, float]:
        cpu = time.process_time()
        result = await floor_sample()
        result["cpu"] = time.process_time() - cpu
        return result

    floor.sample = floor_with_cpu
    measures = [floor, *(patched(name) for name in names)]
    await sc.interleaved(measures, 3, label="warm-up")
    for measure in measures:
        measure.samples.clear()
    await sc.interleaved(measures, rounds, label="step patches")
    for session in _RAW_SESSIONS.values():
        await session.close()
    _RAW_SESSIONS.clear()
    base = statistics.median(measures[1].series("reply_out"))
    floor_median = statistics.median(floor.series("reply_out"))
    print(f"\n== whole agent steps with one change each, {rounds} interleaved rounds (ms) ==")
    base_cpu = statistics.median(measures[1].series("cpu"))
    print(
        f"{'':<42}{'reply med':>10}{'p95':>8}{'saves':>8}{'x floor':>9}{'settled':>9}"
        f"{'CPU ms':>8}{'saves':>7}"
    )
    for measure in measures:
        reply = measure.series("reply_out")
        median = statistics.median(reply)
        cpu = statistics.median(measure.series("cpu"))
        print(
            f"{measure.name:<42}{median * 1000:>10.1f}"
            f"{harness.percentile(reply, 0.95) * 1000:>8.1f}"
            f"{(base - median) * 1000:>8.1f}{median / floor_median:>9.2f}"
            f"{statistics.median(measure.series('settled')) * 1000:>9.1f}"
            f"{cpu * 1000:>8.1f}{(base_cpu - cpu) * 1000:>7.1f}"
        )


# --- cProfile / pyinstrument ------------------------------------------------------------------


async def product_steps(stack: harness.Stack, steps: int) -> None:
    conv = await sc.ProductConversation.create(stack)
    for n in range(steps):
        if conv.turns >= sc.TURNS_PER_CONVERSATION:
            await conv.close()
            conv = await sc.ProductConversation.create(stack)
        await conv.turn(sc.PLAIN_TEXT.format(n=n))
    await conv.close()


async def cprofile(stack: harness.Stack, steps: int, top: int, sort: str) -> None:
    import cProfile
    import pstats

    await product_steps(stack, 5)
    profiler = cProfile.Profile()
    started = now()
    profiler.enable()
    await product_steps(stack, steps)
    profiler.disable()
    elapsed = now() - started
    out = Path(tempfile.gettempdir()) / "profile_step.pstats"
    profiler.dump_stats(out)
    print(f"\n== cProfile: {steps} product steps in {elapsed:.2f} s wall ==")
    stats = pstats.Stats(profiler)
    stats.sort_stats(sort).print_stats(top)
    print(f"(saved {out}; open with `python -m pstats`)")


async def pyinstrument_profile(stack: harness.Stack, steps: int) -> None:
    from pyinstrument import Profiler

    await product_steps(stack, 5)
    profiler = Profiler(async_mode="disabled", interval=0.0005)
    profiler.start()
    await product_steps(stack, steps)
    profiler.stop()
    out = Path(tempfile.gettempdir()) / "profile_step.html"
    out.write_text(profiler.output_html())
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    print(f"(saved {out})")


# --- variants -----------------------------------------------------------------------------------


def product_worker(**options: Any) -> Callable[[Any, str], Any]:
    """The product's worker as build_worker makes it, plus `options`."""
    from temporalio.worker import Worker

    from temporal_worker.worker import (
        WORKFLOWS,
        DatabaseConnectionsInterceptor,
        activities,
        product_ports,
    )

    def factory(client: Any, task_queue: str) -> Any:
        kwargs: dict[str, Any] = {
            "max_concurrent_activities": 100,
            "max_concurrent_workflow_tasks": 100,
            "max_heartbeat_throttle_interval": timedelta(seconds=1),
            "default_heartbeat_throttle_interval": timedelta(seconds=1),
            "graceful_shutdown_timeout": timedelta(seconds=10),
            **options,
        }
        return Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=activities(product_ports()),
            interceptors=[DatabaseConnectionsInterceptor()],
            **kwargs,
        )

    return factory


def variants() -> dict[str, dict[str, Any]]:
    from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner

    eager = ["--dynamic-config-value", "system.enableActivityEagerExecution=true"]
    unsandboxed = {"workflow_runner": UnsandboxedWorkflowRunner()}

    def pollers(workflow: int, activity: int) -> dict[str, Any]:
        return {
            "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(workflow),
            "activity_task_poller_behavior": PollerBehaviorSimpleMaximum(activity),
        }

    return {
        "same_as_baseline": {},
        "eager_activities": {"server_args": eager},
        "unsandboxed": {"worker": unsandboxed, "floor": unsandboxed},
        "pollers_2_1": {"worker": pollers(2, 1), "floor": pollers(2, 1)},
        "pollers_10_10": {"worker": pollers(10, 10), "floor": pollers(10, 10)},
        "no_eager_request": {
            "worker": {"disable_eager_activity_execution": True},
            "floor": {"disable_eager_activity_execution": True},
        },
        "debug_false": {"debug": False},
        "model_subprocess": {"model_subprocess": True},
    }


async def run_variant(
    var_dir: str, users: harness.Users, name: str, spec: dict[str, Any], steps: int
) -> dict[str, Any]:
    """The variant and a baseline side by side (two servers, two workers, this process),
    samples interleaved, so a change of load on the machine hits both alike."""
    with contextlib.ExitStack() as exits:
        model_url = (
            exits.enter_context(harness.model_subprocess())
            if spec.get("model_subprocess")
            else None
        )
        async with (
            harness.in_process_stack(
                tempfile.mkdtemp(prefix="base-", dir=var_dir),
                users,
                product_worker_factory=product_worker(),
                name="base",
            ) as base,
            harness.in_process_stack(
                tempfile.mkdtemp(prefix=f"{name}-", dir=var_dir),
                users,
                server_args=spec.get("server_args"),
                product_worker_factory=product_worker(**spec.get("worker", {})),
                floor_options=spec.get("floor", {}),
                model_url=model_url,
                debug=spec.get("debug"),
                name=name,
            ) as variant,
        ):
            measures = {
                "base_floor": sc.rolling_floor(base, [1]),
                "base_step": sc.rolling_product(base, sc.PLAIN_TEXT, name="base_step"),
                "base_new": sc.new_conversation(base),
                "floor": sc.rolling_floor(variant, [1]),
                "step": sc.rolling_product(variant, sc.PLAIN_TEXT, name="step"),
                "new": sc.new_conversation(variant),
            }
            await sc.interleaved(list(measures.values()), 5, label=f"{name} warm-up")
            for measure in measures.values():
                measure.samples.clear()
            await sc.interleaved(list(measures.values()), steps, label=name)
            base.activate()
            return {
                key: {k: summary(m.series(k)) for k in ("update_rpc", "reply_out", "settled")}
                for key, m in measures.items()
            }


async def run_variants(var_dir: str, users: harness.Users, steps: int, only: list[str]) -> None:
    results = {}
    for name, spec in variants().items():
        if only and name not in only:
            continue
        results[name] = await run_variant(var_dir, users, name, spec, steps)
        progress(f"{name} done")

    def cell(s: dict[str, float]) -> str:
        return f"{s['median_ms']:.1f}/{s['p95_ms']:.0f}"

    print(
        f"\n== variants vs a baseline run alongside, {steps} interleaved steps (median/p95 ms) =="
    )
    print(
        f"{'variant':<18}{'':<6}{'floor reply':>13}{'floor settled':>15}{'step RPC':>13}"
        f"{'step reply':>13}{'step settled':>15}{'step/floor':>11}{'new conv':>12}"
    )
    for name, res in results.items():
        for label, fl, st, new in (
            ("base", res["base_floor"], res["base_step"], res["base_new"]),
            ("this", res["floor"], res["step"], res["new"]),
        ):
            ratio = st["reply_out"]["median_ms"] / fl["reply_out"]["median_ms"]
            print(
                f"{name if label == 'base' else '':<18}{label:<6}{cell(fl['reply_out']):>13}"
                f"{cell(fl['settled']):>15}{cell(st['update_rpc']):>13}"
                f"{cell(st['reply_out']):>13}{cell(st['settled']):>15}{ratio:>11.2f}"
                f"{cell(new['reply_out']):>12}"
            )


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        choices=["breakdown", "ablation", "patches", "cprofile", "pyinstrument", "variants"],
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as var_dir:
        harness.django_setup(var_dir)
        users = harness.users_create()

        async def go() -> None:
            from temporal_worker.worker import build_worker

            if args.mode == "variants":
                await run_variants(
                    var_dir, users, args.steps, [x for x in args.only.split(",") if x]
                )
                return
            probe = Probe()
            # The instrumented modes run the worker on the probe's ports (the product's own,
            # timed or ablated on demand); the profilers on the product's ports as such.
            instrumented = args.mode in ("breakdown", "ablation", "patches")
            factory = (
                (lambda client, queue: build_worker(client, task_queue=queue, ports=probe.ports()))
                if instrumented
                else None
            )
            async with harness.in_process_stack(
                var_dir, users, product_worker_factory=factory
            ) as stack:
                warm = [
                    sc.rolling_floor(stack, [1]),
                    sc.rolling_product(stack, sc.PLAIN_TEXT, name="w"),
                ]
                await sc.interleaved(warm, 5, label="warm-up")
                if args.mode == "breakdown":
                    await breakdown(stack, probe, args.steps)
                elif args.mode == "ablation":
                    await ablation(stack, probe, args.steps)
                elif args.mode == "patches":
                    await step_patches(stack, probe, args.steps)
                elif args.mode == "cprofile":
                    await cprofile(stack, args.steps, args.top, args.sort)
                else:
                    await pyinstrument_profile(stack, args.steps)

        asyncio.run(go())


if __name__ == "__main__":
    main()

"""Where the time goes: the product's latencies next to Temporal's own floor and the
bare design, in one run.

    .venv/bin/python bench/run.py            # everything, about 4 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # fewer samples, 300 pending approvals max
    .venv/bin/python bench/run.py --only-step --quick   # (a)+(b) and concurrency only

One Temporal dev server is started for the run, with the product's real worker, a
floor worker, the bare design's worker (bench/bare.py), Django on a throwaway SQLite
database and the scripted model (zero latency), all in this process. Then the whole
product (`manage.py serve`, as `make run` starts it) runs once more in a subprocess for
the web-layer figures.

Measured (median and p95; product figures also as a ratio to the floor of the run):

(a) the floor: an Update to a bare workflow that runs one no-op activity per step;
(b) one agent step: message Update → LLM activity → the final `chat.message` event on the
    conversation's channel-layer group; also through the service layer the view
    calls, and through the real web server (POST → final websocket fragment). The
    anchor, measured in the same interleaved loop: the bare design (the chat a user
    would write instead: Update → one activity calling the model through one reused
    AsyncOpenAI client → the reply as the Update's result; streaming and not), with
    the agent step as a ratio to the bare streaming design (target: at most 1.2x);
(c) a step with two parallel read tools (LLM → 2 tools → LLM), next to a floor of
    the same shape;
(d) an approval round trip: the reviewer's decide Update → the workflow resumed
    (`approval.decided` pushed) → the final reply;
(e) the reviewer dashboard's list with 100 and 1,000 pending approvals
    (`approvals_pending_list`: visibility vs queries; and the page itself);
(f) progress latency: `activity.heartbeat` of a token → the websocket client has
    the fragment (in-process ASGI websocket);
(g) MCP tools: one tool built in, on an MCP server over stdio and over Streamable HTTP,
    side by side (the call, and a turn that makes it), and listing a server's tools
    cold, over an open session, and from the registry's cache;
(h) tracing: the same agent step with telemetry off and on (OTLP export to a local
    receiver, temporalio's TracingInterceptor, the product's spans and metrics), interleaved
    (`--tracing-only` runs just this section);
plus step latency by concurrency (1/4/16 conversations in parallel): floor, product and
the bare design, with the ratios.

Writes bench/results/bench.json and bench/results/latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bare, harness, report  # noqa: E402
from bench.harness import progress, summary  # noqa: E402

DEFINITIONS = {
    "reply_out": "from sending the Update (or the HTTP POST) to the first moment the result "
    "is visible outside Temporal: the product's final `chat.message` event on the conversation's "
    "channel-layer group (or the final websocket fragment); the floor's last no-op activity "
    "running. Same point of the step for both.",
    "settled": "to the history's WorkflowTaskCompleted after the step's last activity "
    "completed (long-polled from the server): the workflow has taken the result in.",
    "update_rpc": "the Update (or update-with-start) RPC alone, until it returned.",
    "x floor": "median / the floor's median, measured interleaved in the same run (ratio_to "
    "names which floor); p95 x fl likewise for p95.",
    "x shape": "median / the median of a floor with the same Temporal shape (rounds of "
    "no-op activities), shape_ratio_to names it.",
    "cpu": "time.process_time() of the bench process across the step: the worker, the "
    "in-process model and the bench itself, every thread; less sensitive to other load.",
    "bare": "the bare design (bench/bare.py): the Update carrying the message → one activity "
    "calling the model (one reused AsyncOpenAI(max_retries=0) client) → the reply returned as "
    "the Update's result; its reply_out is the Update call until the reply is back. "
    "step_vs_bare is the agent step's reply_out / the bare streaming design's (target ≤ 1.2).",
}
# The agent step's reply_out over the bare streaming design's: the target.
BARE_TARGET = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--runs", type=int, default=60, help="samples per step latency")
    parser.add_argument("--tool-runs", type=int, default=40)
    parser.add_argument("--new-runs", type=int, default=30, help="first messages timed")
    parser.add_argument("--approval-runs", type=int, default=40)
    parser.add_argument("--web-runs", type=int, default=40)
    parser.add_argument("--progress-replies", type=int, default=4)
    parser.add_argument("--dashboard", default="100,1000", help="pending approvals to list")
    parser.add_argument(
        "--dashboard-reps", type=int, default=5, help="listings timed per size (3 at most past 500)"
    )
    parser.add_argument("--mcp-runs", type=int, default=40, help="samples per MCP figure")
    parser.add_argument("--mcp-list-reps", type=int, default=5, help="cold listings per transport")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--trace-runs", type=int, default=60, help="samples of (h), on and off")
    parser.add_argument(
        "--tracing-only", action="store_true", help="only (h): a step, tracing off vs on"
    )
    parser.add_argument("--no-web", action="store_true", help="skip the web-layer stack")
    parser.add_argument(
        "--only-step",
        action="store_true",
        help="only (a)+(b) with the bare anchor and the concurrency figures "
        "(writes bench-step.json / latency-step.png unless --out / --plot say otherwise)",
    )
    parser.add_argument(
        "--model-in-process",
        action="store_true",
        help="run the scripted model inside the benchmark process (the first rounds did)",
    )
    parser.add_argument("--out")
    parser.add_argument("--plot")
    args = parser.parse_args(argv)
    # A partial run does not overwrite the full run's results.
    suffix = "-step" if args.only_step else ""
    args.out = args.out or str(report.RESULTS / f"bench{suffix}.json")
    args.plot = args.plot or str(report.RESULTS / f"latency{suffix}.png")
    if args.quick:
        args.runs, args.tool_runs, args.approval_runs, args.web_runs = 15, 10, 10, 10
        args.new_runs, args.mcp_runs, args.mcp_list_reps = 10, 10, 2
        args.progress_replies, args.dashboard_reps = 2, 2
        args.dashboard = "100,300"
    return args


async def in_process(var_dir: str, users: harness.Users, args: argparse.Namespace) -> dict:
    with contextlib.ExitStack() as exits:
        # The model runs in its own process, as with `make run` and any real provider.
        model_url = (
            None if args.model_in_process else exits.enter_context(harness.model_subprocess())
        )
        mcp_url = exits.enter_context(harness.mcp_lab_http())
        async with (
            harness.in_process_stack(var_dir, users, model_url=model_url) as stack,
            bare.worker(stack.client, bare.BARE_QUEUE, stack.model_url),
        ):
            progress("stack up: Temporal dev server, product, floor and bare workers, model")
            if args.tracing_only:
                return await _measure_tracing(stack, args)
            if args.only_step:
                return await _measure_step(stack, args)
            return {
                **await _measure(stack, args, mcp_url=mcp_url),
                **await _measure_tracing(stack, args),
            }


async def _measure_tracing(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    from bench import scenarios as sc
    from bench.tracing import traced_step, tracing_lab

    async with tracing_lab(stack) as lab:
        measures = [traced_step(lab, on=False), traced_step(lab, on=True)]
        await sc.interleaved(measures, 3, label="(h) warm-up")
        for measure in measures:
            measure.samples.clear()
        await sc.interleaved(measures, args.trace_runs, label="(h) tracing off vs on")
    # How many OTLP exports (traces and metrics) the receiver took: tracing really ran.
    return {**{m.name: m for m in measures}, "otlp_exports": stack.extra["otlp_exports"]}


def tracing_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    off = res["step_trace_off"].series("reply_out")
    on = res["step_trace_on"].series("reply_out")
    return [
        row(
            "h", "step_trace_off", "agent step, telemetry off (the default)", off, short="trace off"
        ),
        row(
            "h",
            "step_trace_on",
            "agent step, telemetry on (spans + metrics over OTLP)",
            on,
            short="trace on",
            floor=summary(off),
            ratio_to="step_trace_off",
        ),
        row(
            "h",
            "step_trace_off_cpu",
            "  its CPU time, telemetry off",
            res["step_trace_off"].series("cpu"),
        ),
        row(
            "h",
            "step_trace_on_cpu",
            "  its CPU time, telemetry on",
            res["step_trace_on"].series("cpu"),
            floor=summary(res["step_trace_off"].series("cpu")),
            ratio_to="step_trace_off_cpu",
        ),
    ]


def rolling_bare(stack: Any, *, stream: bool) -> Any:
    """The bare design, TURNS_PER_CONVERSATION turns per workflow as the floor and the
    product have, a turn timed from the Update call to the reply returned."""
    from bench import scenarios as sc

    state: dict[str, Any] = {"conversation": None, "n": 0}

    async def sample() -> sc.Sample:
        conv = state["conversation"]
        if conv is None or conv.turns >= sc.TURNS_PER_CONVERSATION:
            if conv is not None:
                await conv.close()
            conv = state["conversation"] = await bare.BareConversation(
                stack.client, bare.BARE_QUEUE, stream=stream
            ).start()
        state["n"] += 1
        return await conv.turn(sc.PLAIN_TEXT.format(n=state["n"]))

    return sc.Measure("bare_stream" if stream else "bare", sample)


async def _measure_step(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    """(a) and (b)'s agent step next to the floor and the bare design, interleaved."""
    from bench import scenarios as sc

    out: dict[str, Any] = {}
    # Warm-up: imports, connections, the sandbox's module cache, the prompt row.
    warm = [
        sc.rolling_floor(stack, [1]),
        sc.rolling_product(stack, sc.PLAIN_TEXT, name="warm"),
        rolling_bare(stack, stream=True),
        rolling_bare(stack, stream=False),
    ]
    await sc.interleaved(warm, 5, label="warm-up")

    measures = [
        sc.rolling_floor(stack, [1]),
        sc.rolling_floor(stack, [1], with_start=True),
        sc.rolling_product(stack, sc.PLAIN_TEXT, name="step"),
        sc.rolling_product(stack, sc.PLAIN_TEXT, via="service", name="step_service"),
        rolling_bare(stack, stream=True),
        rolling_bare(stack, stream=False),
    ]
    await sc.interleaved(measures, args.runs, label="(a)+(b) floor, agent step, bare design")
    out.update({m.name: m for m in measures})
    if args.only_step:
        out["concurrency"] = await _concurrency(stack, args)
    return out


async def _concurrency(stack: Any, args: argparse.Namespace) -> dict[str, dict[int, list[float]]]:
    """N conversations in parallel, each taking steps in turn, for the floor, the product
    and the bare design; at each level one after another, on the same stack."""
    from bench import scenarios as sc

    levels = [int(x) for x in args.concurrency.split(",") if x]
    progress(f"latency by concurrency {levels}")
    samples_per_level = max(20, args.runs // 2)
    names = ("floor", "product", "bare_stream", "bare")
    out: dict[str, dict[int, list[float]]] = {name: {} for name in names}

    async def floor_loop(conv: sc.FloorConversation, steps: int) -> list[float]:
        return [(await conv.step())["reply_out"] for _ in range(steps)]

    async def product_loop(conv: sc.ProductConversation, offset: int, steps: int) -> list[float]:
        texts = (sc.PLAIN_TEXT.format(n=offset * 100 + i) for i in range(steps))
        return [(await conv.turn(text))["reply_out"] for text in texts]

    async def bare_loop(conv: bare.BareConversation, offset: int, steps: int) -> list[float]:
        texts = (sc.PLAIN_TEXT.format(n=offset * 100 + i) for i in range(steps))
        return [(await conv.turn(text))["reply_out"] for text in texts]

    for level in levels:
        steps = max(2, -(-samples_per_level // level))
        floors = await asyncio.gather(*(sc.FloorConversation(stack).start() for _ in range(level)))
        convs = await asyncio.gather(*(sc.ProductConversation.create(stack) for _ in range(level)))
        bares = {
            name: await asyncio.gather(
                *(
                    bare.BareConversation(stack.client, bare.BARE_QUEUE, stream=stream).start()
                    for _ in range(level)
                )
            )
            for name, stream in (("bare_stream", True), ("bare", False))
        }
        runs = await asyncio.gather(*(floor_loop(c, steps) for c in floors))
        out["floor"][level] = [x for run in runs for x in run]
        runs = await asyncio.gather(*(product_loop(c, i, steps) for i, c in enumerate(convs)))
        out["product"][level] = [x for run in runs for x in run]
        for name, conversations in bares.items():
            runs = await asyncio.gather(
                *(bare_loop(c, i, steps) for i, c in enumerate(conversations))
            )
            out[name][level] = [x for run in runs for x in run]
        for conv in convs:
            await conv.close()
        for floor in floors:
            await floor.close()
        for conversations in bares.values():
            await asyncio.gather(*(c.close() for c in conversations))
        progress(f"concurrency {level}: {steps} steps each done")
    return out


async def _measure(stack: Any, args: argparse.Namespace, *, mcp_url: str) -> dict[str, Any]:
    from bench import scenarios as sc

    out = await _measure_step(stack, args)

    measures = [sc.new_floor(stack), sc.new_conversation(stack)]
    await sc.interleaved(measures, args.new_runs, label="(b) first message of a conversation")
    out.update({m.name: m for m in measures})

    measures = [
        sc.rolling_floor(stack, [1, 2, 1]),
        sc.rolling_product(stack, sc.TOOLS_TEXT, name="tools", activities=4),
    ]
    await sc.interleaved(measures, args.tool_runs, label="(c) two parallel tools")
    out.update({m.name: m for m in measures})

    measures = [sc.rolling_floor(stack, [1, 1, 1]), sc.approval_measure(stack)]
    await sc.interleaved(measures, args.approval_runs, label="(d) approval round trip")
    out.update({m.name: m for m in measures})

    progress("(f) progress latency, paced (20 ms per token) and burst (0 ms)")
    out["progress_paced"] = await sc.progress_latency(
        stack, replies=args.progress_replies, slow_ms=20
    )
    out["progress_burst"] = await sc.progress_latency(
        stack, replies=args.progress_replies, slow_ms=0
    )

    lab = await sc.mcp_lab_setup(stack, mcp_url)
    measures = [sc.mcp_tool_call(key) for key in sc.MCP_TOOLS]
    await sc.interleaved(measures, args.mcp_runs, label="(g) one tool call: built in vs MCP")
    out.update({m.name: m for m in measures})
    measures = [sc.mcp_turn(stack, lab, key) for key in sc.MCP_TOOLS]
    await sc.interleaved(measures, args.mcp_runs, label="(g) a turn with one tool call")
    out.update({m.name: m for m in measures})
    progress("(g) listing an MCP server's tools")
    out["mcp_listing"] = await sc.mcp_listing(lab, args.mcp_list_reps)

    out["concurrency"] = await _concurrency(stack, args)

    out["dashboard"] = []
    for size in [int(x) for x in args.dashboard.split(",") if x]:
        progress(f"(e) dashboard: growing to {size} pending approvals, then listing")
        reps = args.dashboard_reps if size <= 500 else min(3, args.dashboard_reps)
        out["dashboard"].append(await sc.dashboard_listing(stack, size, reps))
    return out


def row(
    section: str,
    key: str,
    label: str,
    values: list[float],
    *,
    short: str = "",
    floor: dict[str, float] | None = None,
    shape: dict[str, float] | None = None,
    plot: bool = False,
    is_floor: bool = False,
    ratio_to: str = "floor",
    shape_of: str = "",
) -> dict[str, Any]:
    stats = summary(values)
    entry: dict[str, Any] = {
        "section": section,
        "key": key,
        "label": label,
        "short": short or key,
        "plot": plot,
        "is_floor": is_floor,
        **stats,
    }
    if floor and stats["n"]:
        entry["ratio"] = round(stats["median_ms"] / floor["median_ms"], 2)
        entry["ratio_p95"] = round(stats["p95_ms"] / floor["p95_ms"], 2)
        entry["ratio_to"] = ratio_to
    if shape and stats["n"]:
        entry["shape_ratio"] = round(stats["median_ms"] / shape["median_ms"], 2)
        entry["shape_ratio_to"] = shape_of or ratio_to
    return entry


def step_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """(a) and (b)'s agent step with the bare design next to it (all of --only-step)."""
    rows: list[dict[str, Any]] = []
    floor_m = res["floor"]
    floor = summary(floor_m.series("reply_out"))
    rows.append(
        row(
            "a",
            "floor",
            "floor: Update → no-op activity ran",
            floor_m.series("reply_out"),
            short="floor",
            plot=True,
            is_floor=True,
        )
    )
    rows.append(
        row(
            "a",
            "floor_update_rpc",
            "floor: the Update RPC alone (returned)",
            floor_m.series("update_rpc"),
        )
    )
    rows.append(
        row(
            "a",
            "floor_settled",
            "floor: Update → step recorded (history: WFT completed)",
            floor_m.series("settled"),
        )
    )
    uws = res["floor_uws"]
    rows.append(
        row(
            "a",
            "floor_uws",
            "floor, sent as update-with-start (as the product does)",
            uws.series("reply_out"),
            short="floor uws",
            floor=floor,
            plot=True,
            is_floor=True,
        )
    )
    step = res["step"]
    rows.append(
        row(
            "b",
            "step",
            "agent step: message_send → final `chat.message` event",
            step.series("reply_out"),
            short="step",
            floor=floor,
            shape=floor,
            plot=True,
        )
    )
    rows.append(
        row(
            "b",
            "step_update_rpc",
            "agent step: the update-with-start RPC alone",
            step.series("update_rpc"),
            floor=summary(floor_m.series("update_rpc")),
            ratio_to="floor_update_rpc",
        )
    )
    rows.append(
        row(
            "b",
            "step_settled",
            "agent step: → step recorded (history: WFT completed)",
            step.series("settled"),
            floor=summary(floor_m.series("settled")),
            ratio_to="floor_settled",
        )
    )
    rows.extend(bare_rows(res))
    return rows


def build_rows(res: dict[str, Any], web: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = step_rows(res)
    floor_m = res["floor"]
    floor = summary(floor_m.series("reply_out"))
    step = res["step"]
    new_floor = summary(res["floor_new"].series("reply_out"))
    rows.append(
        row(
            "b",
            "floor_new",
            "floor: new workflow by update-with-start → activity ran",
            res["floor_new"].series("reply_out"),
            short="floor new",
            floor=floor,
            plot=True,
            is_floor=True,
        )
    )
    rows.append(
        row(
            "b",
            "step_new",
            "first message: update-with-start creates the workflow → reply",
            res["step_new"].series("reply_out"),
            short="first message",
            floor=floor,
            shape=new_floor,
            shape_of="floor_new",
            plot=True,
        )
    )
    rows.append(
        row(
            "b",
            "step_new_update_rpc",
            "first message: the update-with-start RPC alone",
            res["step_new"].series("update_rpc"),
            floor=summary(res["floor_new"].series("update_rpc")),
            ratio_to="floor_new (update RPC)",
        )
    )
    rows.append(
        row(
            "b",
            "floor_cpu",
            "floor: CPU of this process per step (all threads)",
            floor_m.series("cpu"),
        )
    )
    rows.append(
        row(
            "b",
            "step_cpu",
            "agent step: CPU of this process per step (worker+model+bench)",
            step.series("cpu"),
            floor=summary(floor_m.series("cpu")),
            ratio_to="floor_cpu",
        )
    )
    service = res["step_service"]
    rows.append(
        row(
            "b",
            "step_service",
            "agent step via services.message_send (view's layer)",
            service.series("reply_out"),
            short="step (service)",
            floor=floor,
            plot=True,
        )
    )
    if web:
        web_floor = summary(web["web_floor"].series("reply_out"))
        rows.append(
            row(
                "b",
                "web_floor",
                "web stack's server: floor (Update → no-op activity)",
                web["web_floor"].series("reply_out"),
                short="web floor",
                plot=True,
                is_floor=True,
            )
        )
        rows.append(
            row(
                "b",
                "web_step",
                "web: HTTP POST → final websocket fragment",
                web["web_step"].series("reply_out"),
                short="web step",
                floor=web_floor,
                ratio_to="web_floor",
                shape=web_floor,
                plot=True,
            )
        )
        rows.append(
            row(
                "b",
                "web_first_token",
                "web: HTTP POST → first token on the websocket",
                web["web_step"].series("first_token"),
                floor=web_floor,
                ratio_to="web_floor",
            )
        )
        rows.append(
            row(
                "b",
                "web_http_response",
                "web: HTTP POST → response received",
                web["web_step"].series("http_response"),
                floor=web_floor,
                ratio_to="web_floor",
            )
        )
    tools_floor = summary(res["floor_[1, 2, 1]"].series("reply_out"))
    rows.append(
        row(
            "c",
            "floor_tools",
            "floor shaped [1 → 2 parallel → 1] activities",
            res["floor_[1, 2, 1]"].series("reply_out"),
            short="floor 1-2-1",
            floor=floor,
            plot=True,
            is_floor=True,
        )
    )
    rows.append(
        row(
            "c",
            "tools",
            "two parallel tools: message → LLM → 2 tools → LLM → final",
            res["tools"].series("reply_out"),
            short="2 tools",
            floor=floor,
            shape=tools_floor,
            shape_of="floor_tools",
            plot=True,
        )
    )
    approval_floor = summary(res["floor_[1, 1, 1]"].series("reply_out"))
    approval = res["approval"]
    rows.append(
        row(
            "d",
            "floor_approval",
            "floor shaped [1 → 1 → 1] activities",
            res["floor_[1, 1, 1]"].series("reply_out"),
            short="floor 1-1-1",
            floor=floor,
            plot=True,
            is_floor=True,
        )
    )
    rows.append(
        row(
            "d",
            "approval_update_rpc",
            "approval: the decide Update RPC (returned)",
            approval.series("update_rpc"),
            floor=summary(floor_m.series("update_rpc")),
            ratio_to="floor_update_rpc",
        )
    )
    rows.append(
        row(
            "d",
            "approval_resumed",
            "approval: decide → resumed (`approval.decided` pushed)",
            approval.series("resumed"),
            short="approval resumed",
            floor=floor,
            shape=floor,
            plot=True,
        )
    )
    rows.append(
        row(
            "d",
            "approval_reply",
            "approval: decide → notify, tool, LLM → final reply",
            approval.series("reply_out"),
            short="approval → reply",
            floor=floor,
            shape=approval_floor,
            shape_of="floor_approval",
            plot=True,
        )
    )
    for item in res["dashboard"]:
        size = item["size"]
        rows.append(
            row(
                "e",
                f"list_{size}",
                f"list {size:,} pending: approvals_pending_list()",
                item["total"],
            )
        )
        rows.append(
            row(
                "e",
                f"list_{size}_visibility",
                "  of which the visibility listing (memos decoded)",
                item["visibility"],
            )
        )
        rows.append(
            row(
                "e",
                f"list_{size}_queries",
                "  of which Queries (workflows without the memo)",
                item["queries"],
            )
        )
        rows.append(
            row(
                "e",
                f"page_{size}",
                f"GET /reviews/ with {size:,} pending (in-process)",
                item["page"],
            )
        )
        if item.get("more"):
            rows.append(
                row(
                    "e",
                    f"more_{size}",
                    "  its next page: GET /reviews/more/ (Show the next)",
                    item["more"],
                )
            )
    for key, label in (
        ("progress_paced", "token reaches the activity → websocket client, 20 ms/token"),
        ("progress_burst", "token reaches the activity → websocket client, 0 ms/token"),
    ):
        rows.append(
            row("f", key, label, res[key]["latencies"], short=key.replace("_", " "), plot=True)
        )
        rows.append(
            row(
                "f",
                f"{key}_push",
                "  delta event pushed → websocket client",
                res[key]["push_latencies"],
            )
        )
    rows.extend(mcp_rows(res))
    for previous, current in zip([None, *rows], rows, strict=False):
        current["first"] = previous is None or previous["section"] != current["section"]
    return rows


def bare_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The anchor: the bare design (streaming and not), and the agent step over it."""
    floor = summary(res["floor"].series("reply_out"))
    bare_stream = res["bare_stream"].series("reply_out")
    return [
        row(
            "b",
            "bare_stream",
            "bare design, streaming: Update → reply returned",
            bare_stream,
            short="bare stream",
            floor=floor,
            plot=True,
        ),
        row(
            "b",
            "bare",
            "bare design, non-streaming: Update → reply returned",
            res["bare"].series("reply_out"),
            short="bare",
            floor=floor,
            plot=True,
        ),
        row(
            "b",
            "step_vs_bare",
            f"agent step vs the bare streaming design (target ≤ {BARE_TARGET}x)",
            res["step"].series("reply_out"),
            floor=summary(bare_stream),
            ratio_to="bare_stream",
        ),
        row(
            "b",
            "step_cpu_vs_bare",
            "agent step: CPU of this process per step, vs the bare stream",
            res["step"].series("cpu"),
            floor=summary(res["bare_stream"].series("cpu")),
            ratio_to="bare_stream_cpu",
        ),
        row(
            "b",
            "bare_stream_cpu",
            "bare design, streaming: CPU of this process per step",
            res["bare_stream"].series("cpu"),
            floor=summary(res["floor"].series("cpu")),
            ratio_to="floor_cpu",
        ),
        row(
            "b",
            "bare_cpu",
            "bare design, non-streaming: CPU of this process per step",
            res["bare"].series("cpu"),
            floor=summary(res["floor"].series("cpu")),
            ratio_to="floor_cpu",
        ),
    ]


def concurrency_figures(res: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Summaries by concurrency level, and the ratios of their medians at each level."""
    concurrency = {
        name: {str(level): summary(values) for level, values in by_level.items()}
        for name, by_level in res["concurrency"].items()
    }

    def ratio(name: str, of: str, level: str) -> float | None:
        a, b = concurrency.get(name, {}).get(level), concurrency.get(of, {}).get(level)
        if not a or not b or not a["n"] or not b["n"]:
            return None
        return round(a["median_ms"] / b["median_ms"], 2)

    ratios = {
        level: {
            "product_x_floor": ratio("product", "floor", level),
            "product_x_bare_stream": ratio("product", "bare_stream", level),
            "bare_stream_x_floor": ratio("bare_stream", "floor", level),
            "bare_x_floor": ratio("bare", "floor", level),
        }
        for level in concurrency.get("floor", {})
    }
    return concurrency, ratios


def print_concurrency(concurrency: dict[str, Any], ratios: dict[str, Any]) -> None:
    print("step latency by concurrency (median / p95 ms):")
    for name, by_level in concurrency.items():
        cells = "  ".join(
            f"{level:>2}: {s['median_ms']:.0f} / {s['p95_ms']:.0f}" for level, s in by_level.items()
        )
        print(f"  {name:<12} {cells}")
    print("ratios of the medians:")
    for level, by_name in ratios.items():
        cells = "  ".join(f"{name} {report.fmt(value, 2)}" for name, value in by_name.items())
        print(f"  {level:>2}: {cells}")


def anchor(rows: list[dict[str, Any]]) -> dict[str, Any]:
    step = next((r for r in rows if r["key"] == "step_vs_bare"), {})
    ratio = step.get("ratio")
    return {
        "step_x_bare_stream": ratio,
        "step_x_bare_stream_p95": step.get("ratio_p95"),
        "target": BARE_TARGET,
        "met": None if ratio is None else ratio <= BARE_TARGET,
    }


def mcp_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """(g): each MCP figure next to the built-in tool of the same shape."""
    call = summary(res["mcp_call_builtin"].series("call"))
    turn = summary(res["mcp_turn_builtin"].series("reply_out"))
    transports = (("stdio", "stdio"), ("http", "Streamable HTTP"))
    rows = [
        row(
            "g",
            "mcp_call_builtin",
            "built-in tool: validate + run",
            res["mcp_call_builtin"].series("call"),
        ),
        *(
            row(
                "g",
                f"mcp_call_{key}",
                f"MCP tool over {label}: validate + call",
                res[f"mcp_call_{key}"].series("call"),
                floor=call,
                ratio_to="mcp_call_builtin",
            )
            for key, label in transports
        ),
        row(
            "g",
            "mcp_turn_builtin",
            "turn: message → LLM → built-in tool → LLM → final",
            res["mcp_turn_builtin"].series("reply_out"),
            short="turn, built-in tool",
            plot=True,
        ),
        *(
            row(
                "g",
                f"mcp_turn_{key}",
                f"turn: the same with the MCP tool over {label}",
                res[f"mcp_turn_{key}"].series("reply_out"),
                short=f"turn, MCP {key}",
                floor=turn,
                ratio_to="mcp_turn_builtin",
                plot=True,
            )
            for key, label in transports
        ),
    ]
    listing = res["mcp_listing"]
    for key, label in (
        ("cold_stdio", "list tools cold: start the stdio server + list"),
        ("cold_http", "list tools cold: open an HTTP session + list"),
        ("warm_stdio", "list tools over the open stdio session"),
        ("warm_http", "list tools over the open HTTP session"),
        ("catalog_read", "registry: MCP tools re-read from the database"),
        ("cached", "registry: MCP tools from this process's copy"),
    ):
        rows.append(row("g", f"mcp_list_{key}", label, listing[key]))
    return rows


def measures_json(res: dict[str, Any], web: dict[str, Any] | None) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, value in {**res, **(web or {})}.items():
        if hasattr(value, "samples"):
            keys = sorted({k for s in value.samples for k in s})
            raw[name] = {k: [round(x * 1000, 2) for x in value.series(k)] for k in keys}
    for key in ("progress_paced", "progress_burst"):
        item = res[key]
        raw[key] = {
            "latency_ms": [round(x * 1000, 2) for x in item["latencies"]],
            "push_latency_ms": [round(x * 1000, 2) for x in item["push_latencies"]],
            **{k: v for k, v in item.items() if k not in ("latencies", "push_latencies")},
        }
    raw["mcp_listing"] = {
        f"{key}_ms": [round(x * 1000, 3) for x in values]
        for key, values in res["mcp_listing"].items()
    }
    raw["dashboard"] = [
        {
            **{k: v for k, v in item.items() if not isinstance(v, list)},
            **{
                f"{k}_ms": [round(x * 1000, 1) for x in item[k]]
                for k in ("total", "visibility", "queries", "page", "more")
            },
        }
        for item in res["dashboard"]
    ]
    return raw


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as var_dir:
        harness.django_setup(var_dir)
        machine = harness.machine_info()
        users = harness.users_create()
        res = asyncio.run(in_process(var_dir, users, args))
    web = None
    if not args.no_web and not args.tracing_only and not args.only_step:
        from bench.web import run_web

        web = run_web(args.web_runs)
    machine["loadavg_end"] = harness.load_average()
    machine["bench_seconds"] = round(time.monotonic() - started, 1)

    if args.only_step:
        rows = step_rows(res)
        for previous, current in zip([None, *rows], rows, strict=False):
            current["first"] = previous is None or previous["section"] != current["section"]
        concurrency, ratios = concurrency_figures(res)
        print()
        print(report.table(rows))
        print()
        print_concurrency(concurrency, ratios)
        print(f"\nanchor: {anchor(rows)}")
        print(
            f"machine: {machine['nproc']} x {machine['cpu_model']}, "
            f"load {machine['loadavg_start']} → {machine['loadavg_end']}"
        )
        report.write_json(
            {
                "definitions": DEFINITIONS,
                "machine": machine,
                "results": {
                    r["key"]: {k: v for k, v in r.items() if k not in ("first", "plot", "short")}
                    for r in rows
                },
                "anchor": anchor(rows),
                "concurrency": concurrency,
                "concurrency_ratios": ratios,
                "samples": {
                    name: {k: [round(x * 1000, 2) for x in m.series(k)] for k in ("reply_out",)}
                    for name, m in res.items()
                    if hasattr(m, "samples")
                },
            },
            Path(args.out),
        )
        report.plot(rows, concurrency, Path(args.plot))
        print(f"wrote {args.out} and {args.plot}")
        return
    if args.tracing_only:
        rows = tracing_rows(res)
        rows[0]["first"] = True
        print()
        print(report.table(rows))
        print(f"\nOTLP exports received: {res['otlp_exports']}")
        print(f"machine: {machine['nproc']} x {machine['cpu_model']}")
        report.write_json({"machine": machine, "results": rows}, report.RESULTS / "tracing.json")
        return
    rows = build_rows(res, web) + tracing_rows(res)
    concurrency, ratios = concurrency_figures(res)
    print()
    print(report.table(rows))
    print()
    print_concurrency(concurrency, ratios)
    print(f"anchor: {anchor(rows)}")
    for key in ("progress_paced", "progress_burst"):
        item = res[key]
        print(
            f"{key}: {item['tokens_delivered']} of {item['tokens']} tokens reached the socket, "
            f"in {item['delta_frames']} frames ({item['deltas_pushed']} delta events pushed)"
        )
    print(
        f"\nmachine: {machine['nproc']} x {machine['cpu_model']}, Python {machine['python']}, "
        f"temporalio {machine['temporalio']}, load {machine['loadavg_start']} → "
        f"{machine['loadavg_end']}, {machine['bench_seconds']} s"
    )

    data = {
        "definitions": DEFINITIONS,
        "machine": machine,
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "plot")},
        "results": {
            r["key"]: {k: v for k, v in r.items() if k not in ("first", "plot", "short")}
            for r in rows
        },
        "anchor": anchor(rows),
        "concurrency": concurrency,
        "concurrency_ratios": ratios,
        "samples": measures_json(res, web),
    }
    out = Path(args.out)
    report.write_json(data, out)
    report.plot(rows, concurrency, Path(args.plot))
    print(f"wrote {out} and {args.plot}")


if __name__ == "__main__":
    main()

"""The measurements that run in this process (everything but the web layer).

Every figure is a duration from one action (an Update sent) to the first moment
the result is visible outside Temporal: for the product, the LLM activity's final
`message` event on the conversation's channel-layer group ("reply out"); for the
floor, its last no-op activity resolving a future (the same point of the step).
After each sample the bench waits, untimed, until the workflow has settled
(recorded the activity's completion), so samples never overlap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import itertools
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import (
    GroupWatch,
    HistoryFollower,
    Stack,
    conversations_create,
    is_event,
    is_final_message,
    now,
    poll_until,
    progress,
)
from temporal_worker.contracts.events import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    LiveEvent,
    MessageRecorded,
    ReplyDelta,
)

PLAIN_TEXT = "benchmark turn {n}"
TOOLS_TEXT = "status of order 1001 and how do I return an item"
# Refundable demo orders (paid, shipped or delivered); 1 EUR each time.
REFUND_ORDERS = [1001, 1002, 1003, 1005, 1009, 1011, 1012, 1013, 1014, 1015, 1019, 1020]
TURNS_PER_CONVERSATION = 10

Sample = dict[str, float]


# --- the floor ------------------------------------------------------------------------


class FloorConversation:
    """One floor workflow; steps are Updates, as a conversation's messages are."""

    def __init__(self, stack: Stack, *, with_start: bool = False) -> None:
        self.client = stack.client
        self.task_queue = stack.floor_queue
        self.workflow_id = f"bench-floor-{uuid.uuid4()}"
        self.with_start = with_start
        self.steps = 0
        self.handle: Any = None
        self.history: HistoryFollower | None = None

    async def start(self) -> FloorConversation:
        from bench.floor import FloorWorkflow

        self.handle = await self.client.start_workflow(
            FloorWorkflow.run, id=self.workflow_id, task_queue=self.task_queue
        )
        self.history = HistoryFollower(self.client, self.workflow_id).start()
        await self.step()  # warm-up, untimed
        return self

    async def _send(self, step: Any) -> None:
        from temporalio.client import WithStartWorkflowOperation
        from temporalio.common import WorkflowIDConflictPolicy

        from bench.floor import FloorWorkflow

        if not self.with_start:
            await self.handle.execute_update(FloorWorkflow.send, step)
            return
        # What the product does for every message: update-with-start on a running workflow.
        start = WithStartWorkflowOperation(
            FloorWorkflow.run,
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await self.client.execute_update_with_start_workflow(
            FloorWorkflow.send, step, start_workflow_operation=start
        )

    async def step(self, rounds: list[int] | None = None) -> Sample:
        from bench.floor import WAITERS, FloorStep

        rounds = rounds or [1]
        step_id = str(uuid.uuid4())
        done = asyncio.get_running_loop().create_future()
        WAITERS[step_id] = done
        expected = (self.history.activities_closed() if self.history else 0) + sum(rounds)
        cpu = time.process_time()
        started = now()
        await self._send(FloorStep(step_id=step_id, rounds=rounds))
        accepted = now()
        if self.history is None:
            # The first step created the workflow (update-with-start).
            self.handle = self.client.get_workflow_handle(self.workflow_id)
            self.history = HistoryFollower(self.client, self.workflow_id).start()
        reply_out = await asyncio.wait_for(done, timeout=30)
        settled_at = await self.history.settled(expected)
        self.steps += 1
        return {
            "reply_out": reply_out - started,
            "update_rpc": accepted - started,
            "settled": settled_at - started,
            "cpu": time.process_time() - cpu,
        }

    async def close(self) -> None:
        if self.history is not None:
            await self.history.stop()


# --- the product ----------------------------------------------------------------------


class ProductConversation:
    """One conversation of the product, driven through chatapp's own functions."""

    def __init__(self, stack: Stack, conversation_id: str, *, via: str = "client") -> None:
        self.stack = stack
        self.conversation_id = conversation_id
        self.via = via
        self.watch = GroupWatch(conversation_id)
        self.history: HistoryFollower | None = None
        self.turns = 0

    @classmethod
    async def create(
        cls, stack: Stack, *, via: str = "client", first_text: str = "hello"
    ) -> ProductConversation:
        (conversation_id,) = await conversations_create(stack.users.owner.pk, 1)
        conversation = cls(stack, conversation_id, via=via)
        await conversation.watch.start()
        await conversation.turn(first_text)  # starts the workflow; untimed
        return conversation

    def follow(self) -> HistoryFollower:
        from temporal_worker.contracts.conversation import conversation_workflow_id

        if self.history is None:
            self.history = HistoryFollower(
                self.stack.client, conversation_workflow_id(self.conversation_id)
            ).start()
        return self.history

    async def send(self, text: str) -> None:
        from chatapp import services
        from temporal_worker import client as temporal_client

        message_id = uuid.uuid4()
        self.stack.activate()
        if self.via == "service":
            # What the chat view calls: conversation lookup, rate limit, the Temporal
            # update, the user message's row.
            await services.message_send(
                user=self.stack.users.owner,
                conversation_id=uuid.UUID(self.conversation_id),
                message_id=message_id,
                text=text,
            )
        else:
            await temporal_client.message_send(
                conversation_id=self.conversation_id,
                owner_id=self.stack.users.owner.pk,
                message_id=str(message_id),
                text=text,
            )

    async def turn(self, text: str, activities: int = 1) -> Sample:
        """One message answered; `activities`: how many the turn runs (LLM, tools...)."""
        self.watch.drain()
        closed = self.history.activities_closed() if self.history else 0
        cpu = time.process_time()
        started = now()
        await self.send(text)
        accepted = now()
        history = self.follow()
        first_reply: float | None = None
        while True:
            event = await self.watch.wait_for(is_event(MessageRecorded))
            # The agent's first recorded reply (with tool calls, or the answer); the
            # user's own message is announced too, without a reply id.
            if first_reply is None and event.message.get("reply_id"):
                first_reply = event.at
            if is_final_message(event.message):
                break
        settled_at = await history.settled(closed + activities)
        self.turns += 1
        return {
            "reply_out": event.at - started,
            "update_rpc": accepted - started,
            "first_reply": (first_reply or event.at) - started,
            "settled": settled_at - started,
            # CPU time of this whole process (worker, model, bench) for the step.
            "cpu": time.process_time() - cpu,
        }

    async def close(self) -> None:
        await self.watch.stop()
        if self.history is not None:
            await self.history.stop()


# --- running measures side by side ---------------------------------------------------------


@dataclass
class Measure:
    """A named series of samples; `sample()` takes one."""

    name: str
    sample: Callable[[], Awaitable[Sample]]
    samples: list[Sample] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        return [s[key] for s in self.samples if key in s]


async def interleaved(measures: list[Measure], rounds: int, *, label: str) -> None:
    """Take one sample of each measure per round, rotating the order every round, so
    that a change of load on the machine hits every measure alike."""
    for round_index in range(rounds):
        shift = round_index % len(measures)
        for measure in measures[shift:] + measures[:shift]:
            measure.samples.append(await measure.sample())
        if (round_index + 1) % 10 == 0 or round_index + 1 == rounds:
            progress(f"{label}: {round_index + 1}/{rounds}")


def rolling_floor(stack: Stack, rounds: list[int], *, with_start: bool = False) -> Measure:
    state: dict[str, Any] = {"conversation": None}

    async def sample() -> Sample:
        conv = state["conversation"]
        if conv is None or conv.steps >= TURNS_PER_CONVERSATION:
            if conv is not None:
                await conv.close()
            conv = state["conversation"] = await FloorConversation(
                stack, with_start=with_start
            ).start()
        return await conv.step(rounds)

    name = "floor" + ("_uws" if with_start else "") + ("" if rounds == [1] else f"_{rounds}")
    return Measure(name, sample)


def rolling_product(
    stack: Stack, text: str, *, via: str = "client", name: str, activities: int = 1
) -> Measure:
    state: dict[str, Any] = {"conversation": None, "n": itertools.count(1)}

    async def sample() -> Sample:
        conv = state["conversation"]
        if conv is None or conv.turns >= TURNS_PER_CONVERSATION:
            if conv is not None:
                await conv.close()
            conv = state["conversation"] = await ProductConversation.create(stack, via=via)
        return await conv.turn(text.format(n=next(state["n"])), activities)

    return Measure(name, sample)


def new_floor(stack: Stack) -> Measure:
    """Each sample creates a floor workflow with its first step (update-with-start)."""

    async def sample() -> Sample:
        conv = FloorConversation(stack, with_start=True)
        try:
            return await conv.step()
        finally:
            await conv.close()

    return Measure("floor_new", sample)


def new_conversation(stack: Stack) -> Measure:
    """Each sample is a new conversation's first message: update-with-start creates the
    workflow, the agent answers."""
    counter = itertools.count(1)

    async def sample() -> Sample:
        (conversation_id,) = await conversations_create(stack.users.owner.pk, 1)
        conv = ProductConversation(stack, conversation_id)
        await conv.watch.start()
        try:
            return await conv.turn(PLAIN_TEXT.format(n=next(counter)))
        finally:
            await conv.close()

    return Measure("step_new", sample)


# --- (d) approvals -------------------------------------------------------------------------


def approval_measure(stack: Stack) -> Measure:
    from temporal_worker import client as temporal_client
    from temporal_worker.contracts.approvals import DecideApproval

    orders = itertools.cycle(REFUND_ORDERS)
    reviewer = stack.users.reviewer

    async def sample() -> Sample:
        (conversation_id,) = await conversations_create(stack.users.owner.pk, 1)
        conv = ProductConversation(stack, conversation_id)
        await conv.watch.start()
        try:
            await conv.send(f"refund 1 on order {next(orders)}")
            history = conv.follow()
            requested = await conv.watch.wait_for(is_event(ApprovalRequestedEvent))
            call_id = requested.message["call_id"]
            stack.activate()
            # The LLM step and the "requested" notification are recorded: the workflow
            # waits for the reviewer with nothing in flight.
            await history.settled(2)
            pending = await temporal_client.approval_get(
                conversation_id=conversation_id, call_id=call_id
            )
            assert pending is not None, "the approval is not pending"
            started = now()
            await temporal_client.approval_decide(
                conversation_id=conversation_id,
                decision=DecideApproval(
                    call_id=call_id,
                    action="approve",
                    reviewer_id=reviewer.pk,
                    reviewer=reviewer.get_username(),
                    arguments_hash=pending.arguments_hash,
                ),
            )
            accepted = now()
            decided = await conv.watch.wait_for(is_event(ApprovalDecidedEvent))
            final = await conv.watch.wait_for(is_final_message)
            # The "decided" notification, the refund and the LLM's answer.
            settled_at = await history.settled(2 + 3)
            return {
                "update_rpc": accepted - started,
                "resumed": decided.at - started,
                "reply_out": final.at - started,
                "settled": settled_at - started,
            }
        finally:
            await conv.close()

    return Measure("approval", sample)


# --- latency by concurrency --------------------------------------------------------------


async def _floor_loop(conv: FloorConversation, steps: int) -> list[float]:
    return [(await conv.step())["reply_out"] for _ in range(steps)]


async def _product_loop(conv: ProductConversation, offset: int, steps: int) -> list[float]:
    return [
        (await conv.turn(PLAIN_TEXT.format(n=offset * 100 + i)))["reply_out"] for i in range(steps)
    ]


async def by_concurrency(
    stack: Stack, levels: list[int], samples_per_level: int
) -> dict[str, dict[int, list[float]]]:
    """N conversations (and N floor workflows) in parallel, each taking steps in turn."""
    out: dict[str, dict[int, list[float]]] = {"floor": {}, "product": {}}
    for level in levels:
        steps = max(2, -(-samples_per_level // level))
        floors = await asyncio.gather(*(FloorConversation(stack).start() for _ in range(level)))
        convs = await asyncio.gather(*(ProductConversation.create(stack) for _ in range(level)))

        floor_runs = await asyncio.gather(*(_floor_loop(c, steps) for c in floors))
        product_runs = await asyncio.gather(
            *(_product_loop(c, i, steps) for i, c in enumerate(convs))
        )
        out["floor"][level] = [x for run in floor_runs for x in run]
        out["product"][level] = [x for run in product_runs for x in run]
        for conv in [*convs, *floors]:
            await conv.close()
        progress(f"concurrency {level}: {steps} steps each done")
    return out


# --- (f) progress latency: heartbeat -> websocket client ----------------------------------


@dataclass
class Stamps:
    # (end offset in the reply's text, when the activity got it) for the current reply
    tokens: list[tuple[int, float]] = field(default_factory=list)
    # per reply, in order: (its text's length after the delta, when the delta was pushed);
    # the consumer renders one frame per delta (the reply so far, rendered whole)
    pushes: dict[str, collections.deque[tuple[int, float]]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    pushed: int = 0


@contextlib.contextmanager
def stamped_progress() -> Any:
    """Timestamp every token as the LLM activity receives it from the model (wrapping the
    `on_delta` callback of `llm_gateway.stream_completion`), and every delta event as it
    is published (wrapping `temporal_worker.live.ChannelLayerPublisher.publish`).

    Token time is where progress starts whatever the activity does with it (heartbeat,
    coalescing, push), so "token → websocket client" stays comparable across versions.
    """
    from temporal_worker import llm_gateway
    from temporal_worker.live import ChannelLayerPublisher

    stamps = Stamps()
    original_stream = llm_gateway.stream_completion
    original_publish = ChannelLayerPublisher.publish

    async def stream_completion(
        settings: Any,
        messages: Any,
        *,
        tools: Any,
        on_delta: Callable[[str], Awaitable[None]],
        usage: Any = None,
    ) -> Any:
        stamps.tokens.clear()
        length = 0

        async def stamped(delta: str) -> None:
            nonlocal length
            length += len(delta)
            stamps.tokens.append((length, now()))
            await on_delta(delta)

        return await original_stream(settings, messages, tools=tools, on_delta=stamped, usage=usage)

    async def publish(self: ChannelLayerPublisher, group: str, event: LiveEvent) -> None:
        if isinstance(event, ReplyDelta):
            stamps.pushes[event.reply_id].append((event.offset + len(event.delta), now()))
            stamps.pushed += 1
        await original_publish(self, group, event)

    llm_gateway.stream_completion = stream_completion
    ChannelLayerPublisher.publish = publish  # type: ignore[method-assign]
    try:
        yield stamps
    finally:
        llm_gateway.stream_completion = original_stream
        ChannelLayerPublisher.publish = original_publish  # type: ignore[method-assign]


# The consumer's frame for a delta: the reply so far, rendered whole (chat/_stream_body.html).
DELTA_FRAME = re.compile(r'^\s*<div id="stream-([0-9a-f-]+)" class="body stream[^"]*" hx-swap-oob')


async def progress_latency(stack: Stack, *, replies: int, slow_ms: int) -> dict[str, Any]:
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    conv = await ProductConversation.create(stack)
    socket = WebsocketCommunicator(
        application,
        f"/ws/c/{conv.conversation_id}/",
        headers=[
            (b"origin", b"http://127.0.0.1:8000"),
            (b"host", b"127.0.0.1:8000"),
            (b"cookie", f"sessionid={stack.users.owner_session}".encode()),
        ],
    )
    connected, _ = await socket.connect(timeout=10)
    assert connected, "the websocket did not connect"
    token_latencies: list[float] = []
    push_latencies: list[float] = []
    tokens = frames = 0
    try:
        # Let the catch-up frames of the connect pass (a receive that times out would
        # cancel the application, so ask whether anything is left first).
        while not await socket.receive_nothing(timeout=0.3):
            await socket.receive_from()
        with stamped_progress() as stamps:
            for n in range(replies):
                directive = f"[[slow {slow_ms}]] " if slow_ms else ""
                await conv.send(f"{directive}progress benchmark {n}")
                delivered = 0  # characters of this reply the client has
                next_token = 0
                while True:
                    frame = await socket.receive_from(timeout=30)
                    at = now()
                    match = DELTA_FRAME.match(frame)
                    if match:
                        frames += 1
                        queue = stamps.pushes.get(match.group(1))
                        if queue:
                            # One frame per delta, in order: the client now has its text.
                            delivered, pushed_at = queue.popleft()
                            push_latencies.append(at - pushed_at)
                        while (
                            next_token < len(stamps.tokens)
                            and stamps.tokens[next_token][0] <= delivered
                        ):
                            token_latencies.append(at - stamps.tokens[next_token][1])
                            next_token += 1
                    elif 'class="msg assistant' in frame and "agent-status idle" in frame:
                        break
                tokens += len(stamps.tokens)
                assert conv.history is not None
                await conv.history.settled(n + 2)
    finally:
        await socket.disconnect()
        await conv.close()
    return {
        "latencies": token_latencies,
        "push_latencies": push_latencies,
        "tokens": tokens,
        "tokens_delivered": len(token_latencies),
        "deltas_pushed": stamps.pushed,
        "delta_frames": frames,
        "slow_ms": slow_ms,
        "replies": replies,
    }


# --- (e) the reviewer dashboard's list -------------------------------------------------------


async def pending_count(stack: Stack) -> int:
    from temporal_worker.contracts.approvals import SA_APPROVAL_PENDING

    result = await stack.client.count_workflows(
        f'{SA_APPROVAL_PENDING} = true AND ExecutionStatus = "Running"'
    )
    return int(result.count)


async def pending_grow(stack: Stack, target: int, *, concurrency: int = 24) -> float:
    """Conversations each waiting on one gated refund, until visibility counts `target`."""
    from temporal_worker import client as temporal_client

    have = await pending_count(stack)
    missing = max(0, target - have)
    started = now()
    if missing:
        ids = await conversations_create(stack.users.owner.pk, missing)
        gate = asyncio.Semaphore(concurrency)
        orders = itertools.cycle(REFUND_ORDERS)

        async def one(conversation_id: str) -> None:
            async with gate:
                await temporal_client.message_send(
                    conversation_id=conversation_id,
                    owner_id=stack.users.owner.pk,
                    message_id=str(uuid.uuid4()),
                    text=f"refund 1 on order {next(orders)}",
                )

        await asyncio.gather(*(one(i) for i in ids))
    last_report = now()

    async def reached() -> bool:
        nonlocal last_report
        count = await pending_count(stack)
        if now() - last_report > 10:
            progress(f"  {count}/{target} approvals pending")
            last_report = now()
        return count >= target

    await poll_until(reached, within=600, interval=0.5)
    return now() - started


async def dashboard_listing(stack: Stack, size: int, reps: int) -> dict[str, Any]:
    from django.test import AsyncClient

    from temporal_worker import client as temporal_client

    stack.activate()
    build_seconds = await pending_grow(stack, size)
    totals, visibility, queries, counts = [], [], [], []
    for _ in range(reps):
        started = now()
        listing = await temporal_client.approvals_pending_list()
        totals.append(now() - started)
        visibility.append(listing.visibility_seconds)
        queries.append(listing.query_seconds)
        counts.append(len(listing.entries))
    from django.conf import settings

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = AsyncClient()
    await client.aforce_login(stack.users.reviewer)
    pages, more_pages = [], []
    for _ in range(reps):
        started = now()
        response = await client.get("/reviews/")
        pages.append(now() - started)
        assert response.status_code == 200, response.status_code
        # The page shows the oldest requests; its button loads the next as many.
        more = re.search(r'hx-get="(/reviews/more/\?[^"]+)"', response.content.decode())
        if more:
            started = now()
            response = await client.get(
                html.unescape(more.group(1)), headers={"HX-Request": "true"}
            )
            more_pages.append(now() - started)
            assert response.status_code == 200, response.status_code
    return {
        "size": size,
        "build_seconds": round(build_seconds, 1),
        "total": totals,
        "visibility": visibility,
        "queries": queries,
        "page": pages,
        "more": more_pages,
        "items_min": min(counts),
        "items_max": max(counts),
    }


# --- (g) MCP tools: one tool built in, over stdio and over Streamable HTTP -----------------

MCP_TOOLS = {
    "builtin": "bench_lookup",
    "stdio": "benchstdio__lookup",
    "http": "benchhttp__lookup",
}
MCP_CALL_TEXT = '[[call {tool} {{"key": "k{n}"}}]]'


@dataclass
class McpLab:
    """The bench's lookup tool three ways, and an agent that may use all three."""

    specs: dict[str, Any]
    agent_id: int


async def mcp_lab_setup(stack: Stack, http_url: str) -> McpLab:
    """Register the bench's MCP server twice (a stdio child of the worker, and the HTTP
    process), list both as the worker does, and add the built-in twin to the registry."""
    import sys

    from asgiref.sync import sync_to_async
    from django.conf import settings

    from chatapp.mcp_catalog import McpServerTable, mcp_server_spec
    from chatapp.models import Agent, McpServer, Prompt
    from temporal_worker.tools.mcp.refresher import McpCatalogRefresher
    from temporal_worker.tools.registry import mcp_catalog_changed

    settings.AGENT_TOOL_MODULES = [*settings.AGENT_TOOL_MODULES, "bench.mcp_lab"]
    rows = {
        "stdio": await McpServer.objects.acreate(
            name="benchstdio",
            title="Bench (stdio)",
            transport=McpServer.Transport.STDIO,
            command=sys.executable,
            args=["-m", "bench.mcp_lab"],
            idempotent=True,
        ),
        "http": await McpServer.objects.acreate(
            name="benchhttp",
            title="Bench (HTTP)",
            transport=McpServer.Transport.HTTP,
            url=http_url,
            idempotent=True,
        ),
    }
    refresher = McpCatalogRefresher(
        McpServerTable(), poll_seconds=60, on_change=mcp_catalog_changed
    )
    specs = {}
    for key, row in rows.items():
        listing = await refresher.refresh(mcp_server_spec(row))
        if not listing.ok:
            raise RuntimeError(f"the bench's MCP server ({key}) was not listed: {listing.error}")
        specs[key] = mcp_server_spec(await McpServer.objects.aget(pk=row.pk))

    def agent() -> Agent:
        prompt, _ = Prompt.objects.get_or_create(name="agent-system")
        created = Agent.objects.create(
            slug="bench", name="Bench", description="", prompt=prompt, tools=["bench_lookup"]
        )
        created.mcp_servers.set(rows.values())
        return created

    return McpLab(specs=specs, agent_id=(await sync_to_async(agent)()).pk)


def mcp_tool_call(key: str) -> Measure:
    """The registry's tool run once (arguments validated, then the call): built in, or
    over the worker's open MCP session."""
    from temporal_worker.tools.base import ToolContext
    from temporal_worker.tools.registry import atool_registry

    counter = itertools.count(1)

    async def sample() -> Sample:
        n = next(counter)
        tool = (await atool_registry()).get(MCP_TOOLS[key])
        assert tool is not None, MCP_TOOLS[key]
        ctx = ToolContext(
            conversation_id="bench", workflow_id="bench-mcp", call_id=f"call_{n}", requester_id=0
        )
        started = now()
        result = await tool.run(tool.validate(f'{{"key": "k{n}"}}'), ctx)
        ended = now()
        assert result["value"] == f"the value of k{n}", result
        return {"call": ended - started}

    return Measure(f"mcp_call_{key}", sample)


def mcp_turn(stack: Stack, lab: McpLab, key: str) -> Measure:
    """A turn that calls the tool once: message → LLM → tool → LLM → final reply."""
    from chatapp.models import Conversation

    state: dict[str, Any] = {"conversation": None, "n": itertools.count(1)}

    async def sample() -> Sample:
        conv = state["conversation"]
        if conv is None or conv.turns >= TURNS_PER_CONVERSATION:
            if conv is not None:
                await conv.close()
            row = await Conversation.objects.acreate(
                id=uuid.uuid4(), owner_id=stack.users.owner.pk, title="bench", agent_id=lab.agent_id
            )
            conv = state["conversation"] = ProductConversation(stack, str(row.id))
            await conv.watch.start()
            await conv.turn("hello")  # starts the workflow; untimed
        text = MCP_CALL_TEXT.format(tool=MCP_TOOLS[key], n=next(state["n"]))
        return await conv.turn(text, activities=3)

    return Measure(f"mcp_turn_{key}", sample)


async def mcp_listing(lab: McpLab, reps: int) -> dict[str, list[float]]:
    """tools/list cold (a new session: the stdio server started, or an HTTP session
    opened), over an open session, and the registry's MCP tools re-read from the database
    or served from this process's copy."""
    from temporal_worker.tools.mcp.connections import McpPool, mcp_pool, pool_settings
    from temporal_worker.tools.registry import atool_registry, mcp_catalog_changed

    out: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(reps):
        for key in ("stdio", "http"):
            pool = McpPool(pool_settings)
            started = now()
            listed = await pool.list_tools(lab.specs[key])
            out[f"cold_{key}"].append(now() - started)
            assert [t.name for t in listed] == ["lookup"]
            await pool.close()
    for _ in range(reps * 4):
        for key in ("stdio", "http"):
            started = now()
            await mcp_pool().list_tools(lab.specs[key])
            out[f"warm_{key}"].append(now() - started)
        mcp_catalog_changed()
        started = now()
        registry = await atool_registry()
        out["catalog_read"].append(now() - started)
        assert registry.get(MCP_TOOLS["http"]) is not None
        started = now()
        await atool_registry()
        out["cached"].append(now() - started)
    return out

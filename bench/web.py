"""(b) with the web layer: the whole product as `make run` starts it (bench/stack.py),
measured from the HTTP POST to the final websocket fragment, next to a floor measured
on that stack's own Temporal server from this process.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import aiohttp

from bench.harness import FLOOR_QUEUE, HistoryFollower, floor_worker, now, progress
from bench.scenarios import TURNS_PER_CONVERSATION, FloorConversation, Measure, interleaved
from bench.stack import csrf_token, form_ids, logged_in_session


class WebConversation:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, temporal: Any) -> None:
        self.session = session
        self.base_url = base_url
        self.temporal = temporal
        self.turns = 0

    async def create(self) -> WebConversation:
        async with self.session.get("/") as response:
            ids = form_ids(await response.text())
        self.conversation_id = ids["conversation_id"]
        self.headers = {
            "X-CSRFToken": csrf_token(self.session),
            "HX-Request": "true",
            "HX-Current-URL": f"{self.base_url}/",
        }
        async with self.session.post(
            "/c/send/", data={**ids, "text": "hello"}, headers=self.headers
        ) as response:
            assert response.status == 200 and response.headers.get("HX-Redirect"), response.status
            self.headers["HX-Current-URL"] = f"{self.base_url}{response.headers['HX-Redirect']}"
        self.socket = await self.session.ws_connect(
            f"/ws/c/{self.conversation_id}/", headers={"Origin": self.base_url}
        )
        from temporal_worker.contracts.conversation import conversation_workflow_id

        self.history = HistoryFollower(
            self.temporal, conversation_workflow_id(self.conversation_id)
        ).start()
        await self._drain_until_idle()
        await self.history.settled(1)
        return self

    async def _drain_until_idle(self) -> None:
        while True:
            try:
                message = await self.socket.receive(timeout=5)
            except TimeoutError:
                return
            if "agent-status idle" in str(message.data):
                return

    async def turn(self, text: str) -> dict[str, float]:
        data = {
            "conversation_id": self.conversation_id,
            "message_id": str(uuid.uuid4()),
            "text": text,
        }
        closed = self.history.activities_closed()
        started = now()
        async with self.session.post("/c/send/", data=data, headers=self.headers) as response:
            assert response.status == 200, response.status
            await response.read()
        responded = now()
        first_token: float | None = None
        while True:
            message = await self.socket.receive(timeout=30)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            if first_token is None and 'id="stream-' in message.data:
                first_token = now()
            if 'class="msg assistant' in message.data and "agent-status idle" in message.data:
                final = now()
                break
        settled_at = await self.history.settled(closed + 1)
        self.turns += 1
        return {
            "reply_out": final - started,
            "http_response": responded - started,
            "first_token": (first_token or final) - started,
            "settled": settled_at - started,
        }

    async def close(self) -> None:
        await self.socket.close()
        await self.history.stop()


async def measure_web(base_url: str, temporal_address: str, rounds: int) -> dict[str, Measure]:
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    session = await logged_in_session(base_url)
    state: dict[str, Any] = {"conv": None, "n": 0}

    async def web_sample() -> dict[str, float]:
        conv = state["conv"]
        if conv is None or conv.turns >= TURNS_PER_CONVERSATION:
            if conv is not None:
                await conv.close()
            conv = state["conv"] = await WebConversation(session, base_url, client).create()
        state["n"] += 1
        return await conv.turn(f"benchmark turn {state['n']}")

    floor_state: dict[str, Any] = {"conv": None}
    fake_stack = SimpleNamespace(client=client, floor_queue=FLOOR_QUEUE)

    async def floor_sample() -> dict[str, float]:
        conv = floor_state["conv"]
        if conv is None or conv.steps >= TURNS_PER_CONVERSATION:
            conv = floor_state["conv"] = await FloorConversation(fake_stack).start()  # type: ignore[arg-type]
        return await conv.step()

    web = Measure("web_step", web_sample)
    floor = Measure("web_floor", floor_sample)
    try:
        async with floor_worker(client, task_queue=FLOOR_QUEUE):
            # Warm up both paths before timing.
            for _ in range(3):
                await web_sample()
                await floor_sample()
            web.samples.clear()
            await interleaved([floor, web], rounds, label="web layer")
    finally:
        if state["conv"] is not None:
            await state["conv"].close()
        await HistoryFollower.stop_all()
        await session.close()
    return {"web_floor": floor, "web_step": web}


def run_web(rounds: int) -> dict[str, Measure]:
    from bench.stack import product_stack

    progress("web layer: starting the product stack (manage.py serve) in a subprocess")
    with product_stack(
        chunk_delay_ms=0, extra_env={"CHAT_RATE_LIMIT_MESSAGES": "0", "LOG_LEVEL": "WARNING"}
    ) as stack:
        return asyncio.run(measure_web(stack.base_url, stack.temporal_address, rounds))

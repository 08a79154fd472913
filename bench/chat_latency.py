"""Chat latency through the real web server and websocket, scripted model at zero latency.

Measures, per message: HTTP POST → first streamed token on the websocket, and
POST → the final message fragment. Prints p50/p95 and writes bench/results/chat_latency.json.

    .venv/bin/python bench/chat_latency.py [--turns 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import (
    csrf_token,
    form_ids,
    logged_in_session,
    now,
    percentile,
    product_stack,
)

RESULTS = Path(__file__).resolve().parent / "results"


async def measure(base_url: str, turns: int) -> dict[str, list[float]]:
    session = await logged_in_session(base_url)
    try:
        async with session.get("/") as response:
            ids = form_ids(await response.text())
        headers = {
            "X-CSRFToken": csrf_token(session),
            "HX-Request": "true",
            "HX-Current-URL": f"{base_url}/",
        }
        async with session.post("/c/send/", data={**ids, "text": "hello"}, headers=headers) as r:
            assert r.status == 200 and r.headers.get("HX-Redirect"), r.status
        conversation_url = r.headers["HX-Redirect"]
        conversation_id = ids["conversation_id"]
        first_token: list[float] = []
        final: list[float] = []
        async with session.ws_connect(
            f"/ws/c/{conversation_id}/", headers={"Origin": base_url}
        ) as socket:
            await _drain_until_idle(socket)
            for turn in range(turns):
                data = {
                    "conversation_id": conversation_id,
                    "message_id": str(uuid.uuid4()),
                    "text": f"benchmark turn {turn}",
                }
                headers["HX-Current-URL"] = f"{base_url}{conversation_url}"
                started = now()
                async with session.post("/c/send/", data=data, headers=headers) as response:
                    assert response.status == 200, response.status
                got_token = None
                while True:
                    message = await socket.receive(timeout=30)
                    assert message.type == aiohttp.WSMsgType.TEXT, message
                    if got_token is None and 'id="stream-' in message.data:
                        got_token = now() - started
                    if (
                        'class="msg assistant' in message.data
                        and "agent-status idle" in message.data
                    ):
                        final.append(now() - started)
                        break
                first_token.append(got_token if got_token is not None else final[-1])
        return {"first_token": first_token, "final": final}
    finally:
        await session.close()


async def _drain_until_idle(socket: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        try:
            message = await socket.receive(timeout=2)
        except TimeoutError:
            return
        if "agent-status idle" in message.data:
            return


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "n": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()
    with product_stack(chunk_delay_ms=0) as stack:
        samples = asyncio.run(measure(stack.base_url, args.turns))
    result = {name: summary(values) for name, values in samples.items()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chat_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'measure':<34}{'p50 ms':>10}{'p95 ms':>10}{'n':>6}")
    for name, label in (
        ("first_token", "POST → first streamed token"),
        ("final", "POST → final message"),
    ):
        row = result[name]
        print(f"{label:<34}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['n']:>6}")


if __name__ == "__main__":
    main()

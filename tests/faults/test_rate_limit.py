"""The LLM answers 429 (Retry-After: 5) again and again, then recovers.

The agent must wait as long as the provider asks (no hot loop), tell the user it is
waiting, and answer once the provider does, once.
"""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from channels.layers import get_channel_layer

from temporal_worker.contracts.events import conversation_group
from tests.faults.support import (
    GroupListener,
    llm_attempts,
    new_user,
    rows,
    send,
    unique,
)
from tests.helpers import (
    eventually,
    history,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RETRY_AFTER = 5


@pytest.mark.parametrize("faults", [pytest.param(12, id="a-minute-of-429s")])
@pytest.mark.timeout(240)
async def test_rate_limited_model_is_waited_for_then_answers_once(
    temporal, worker, scripted_model, model_calls, fault_timings, faults
):
    text = unique("Answer me despite the rate limit")
    await scripted_model.add_rules(
        {"match": text, "faults": [{"status": 429, "retry_after": RETRY_AFTER}] * faults}
    )
    user = await new_user()
    cid = uuid.uuid4()

    async with GroupListener(get_channel_layer(), conversation_group(str(cid))) as listener:
        started = time.monotonic()
        await send(user, cid, text)

        async def outcome():
            return await rows(cid, role__in=["assistant", "notice"])

        # Real time is the point here: the provider asks for 5 s between attempts.
        [result] = await eventually(outcome, timeout=faults * RETRY_AFTER + 60, interval=0.5)
        fault_timings(
            f"{faults} x 429 (Retry-After {RETRY_AFTER} s) -> outcome", time.monotonic() - started
        )
        waiting = [
            e for e in listener.events if e["type"] == "chat.phase" and "rate limited" in e["label"]
        ]

    # The turn completes with the model's answer, once.
    assert (result.role, result.status, result.error_kind) == ("assistant", "complete", "")
    [call] = [c for c in model_calls if c.last_user == text]
    assert result.content == call.reply
    assert [m.role for m in await rows(cid)] == ["user", "assistant"]
    # No hot loop: each request waited at least Retry-After after the previous one.
    requests = [r for r in scripted_model.request_log if r["last_user"] == text]
    assert [r["status"] for r in requests] == [429] * faults + [200]
    assert len(requests) <= 13
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(requests)]
    assert min(gaps) >= RETRY_AFTER, gaps
    # The user saw that the agent was waiting, once per rate-limited attempt.
    assert len(waiting) == faults
    assert {e["label"] for e in waiting} == {
        f"The model is rate limited; trying again in {RETRY_AFTER} s…"
    }
    assert llm_attempts(await history(temporal, cid)) == [faults + 1]

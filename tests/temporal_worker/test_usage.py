"""Usage on every model call and budgets, end to end: the real workflow and worker, the
scripted model over real HTTP reporting usage as the OpenAI API does, and the rows the
admin sums and the notice the user reads.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from temporalio.client import Client

from chatapp import services, usage
from chatapp.models import Message
from chatapp.usage_models import BudgetHit, ModelCall, ModelPrice, UserBudget
from temporal_worker import client as temporal_client
from temporal_worker.scripted_model import ScriptedModelServer
from temporal_worker.workflows import NOTICE_TEXT
from tests.helpers import body, eventually, html_element, html_text, logged_in
from tests.temporal_worker.test_llm_failures import rows, send, start, turn_done

pytestmark = pytest.mark.django_db(transaction=True)


def reported(scripted_model: ScriptedModelServer, text: str) -> list[dict[str, Any] | None]:
    """The usage report of each request for `text`, as the scripted model sent it."""
    return [r["usage"] for r in scripted_model.request_log if r["last_user"] == text]


async def calls(cid: uuid.UUID) -> list[ModelCall]:
    return [c async for c in ModelCall.objects.filter(conversation_id=cid).order_by("at")]


async def test_every_attempt_is_a_call_with_what_the_provider_reported(
    worker: Any, temporal: Client, scripted_model: ScriptedModelServer
) -> None:
    # The first attempt's stream breaks after three events (before the usage chunk); the
    # retry answers. Both are calls: the broken one with nothing reported.
    text = "hello there [[fault drop after=3]]"
    user, cid = await start(text)
    await turn_done(cid)

    sent = reported(scripted_model, text)
    assert sent[0] is None and sent[1] is not None and len(sent) == 2
    first, second = await calls(cid)
    assert (first.attempt, first.outcome, first.reported) == (1, "failed", False)
    assert (first.prompt_tokens, first.completion_tokens) == (0, 0)
    assert (second.attempt, second.outcome, second.reported) == (2, "complete", True)
    assert second.prompt_tokens == sent[1]["prompt_tokens"]
    assert second.completion_tokens == sent[1]["completion_tokens"]
    assert second.user_id == user.id and second.model == "scripted"
    assert first.reply_id == second.reply_id
    reply = await Message.objects.aget(id=second.reply_id)
    assert reply.role == "assistant" and reply.status == "complete"

    # A second turn: the scripted model reads the history from its cache, and the sums
    # per conversation are the provider's figures, retries included.
    await send(user, cid, "and another thing")
    await turn_done(cid)
    later = reported(scripted_model, "and another thing")
    assert later[0] is not None and later[0]["prompt_tokens_details"]["cached_tokens"] > 0
    every = [u for u in sent + later if u is not None]
    totals = await sync_to_async(usage.conversation_cost)(cid)
    assert totals.calls == 3
    assert totals.prompt_tokens == sum(u["prompt_tokens"] for u in every)
    assert totals.completion_tokens == sum(u["completion_tokens"] for u in every)
    assert totals.cached_tokens == sum(u["prompt_tokens_details"]["cached_tokens"] for u in every)


async def test_cost_uses_the_price_in_force_at_each_call(
    worker: Any, temporal: Client, scripted_model: ScriptedModelServer, settings: Any
) -> None:
    user, cid = await start("what does this cost")
    await turn_done(cid)
    (call,) = await calls(cid)
    # A later price does not apply to an earlier call; the one in force does.
    await ModelPrice.objects.acreate(
        model="scripted",
        valid_from=call.at - timedelta(days=30),
        input_per_million=Decimal("1000"),
        output_per_million=Decimal("2000"),
        cached_per_million=Decimal("100"),
    )
    await ModelPrice.objects.acreate(
        model="scripted",
        valid_from=call.at + timedelta(seconds=1),
        input_per_million=Decimal("999999"),
        output_per_million=Decimal("999999"),
        cached_per_million=Decimal("999999"),
    )
    expected = (
        Decimal(call.prompt_tokens - call.cached_tokens) * 1000
        + Decimal(call.cached_tokens) * 100
        + Decimal(call.completion_tokens) * 2000
    ) / 1_000_000
    totals = await sync_to_async(usage.conversation_cost)(cid)
    assert totals.cost == expected.quantize(Decimal("0.000001"))
    assert totals.cost > 0

    # Its user reads it on the page only where the setting shows it.
    def cost_note(page: str) -> str | None:
        element = html_element(page, "conversation-cost")
        return None if element is None else " ".join(html_text(element).split())

    assert cost_note(body(await (await logged_in(user)).get(f"/c/{cid}/"))) is None
    settings.SHOW_CONVERSATION_COST = True
    tokens = call.prompt_tokens + call.completion_tokens
    page = body(await (await logged_in(user)).get(f"/c/{cid}/"))
    assert cost_note(page) == f"{tokens:,} tokens · ${totals.cost:.4f}"


async def test_over_the_daily_budget_the_next_message_is_refused_clearly(
    worker: Any, temporal: Client, scripted_model: ScriptedModelServer
) -> None:
    await ModelPrice.objects.acreate(
        model="scripted",
        valid_from=datetime.now(UTC) - timedelta(days=1),
        input_per_million=Decimal("1000"),
        output_per_million=Decimal("1000"),
        cached_per_million=Decimal("1000"),
    )
    # Enough for one answer, not for two.
    await UserBudget.objects.acreate(user=None, daily_limit_usd=Decimal("0.0001"))
    user, cid = await start("first question")
    await turn_done(cid)
    spent = (await sync_to_async(usage.conversation_cost)(cid)).cost
    assert spent >= Decimal("0.0001")

    message_id = uuid.uuid4()
    await services.message_send(
        user=user, conversation_id=cid, message_id=message_id, text="second question"
    )
    transcript = await turn_done(cid)
    # The message is kept, the model was never asked, and the user reads why.
    assert any(m.id == message_id and m.content == "second question" for m in transcript)
    assert reported(scripted_model, "second question") == []
    (notice,) = await rows(cid, role="notice")
    assert notice.error_kind == "budget_user"
    assert notice.content == NOTICE_TEXT["budget_user"]
    page = body(await (await logged_in(user)).get(f"/c/{cid}/"))
    assert "You have reached your daily usage limit" in " ".join(html_text(page).split())
    # The admins see who hit which limit, and when.
    hit = await BudgetHit.objects.select_related("user").aget(conversation_id=cid)
    assert (hit.user_id, hit.scope, hit.limit_usd) == (user.id, "user_day", Decimal("0.0001"))
    assert hit.spent_usd == spent
    # Only the answered call is on the books: a refused call costs nothing.
    assert len(await calls(cid)) == 1


async def test_a_stopped_call_is_kept_as_stopped(
    worker: Any, temporal: Client, scripted_model: ScriptedModelServer
) -> None:
    text = "stop me midway please"
    await scripted_model.add_rules({"match": text, "chunk_delay_ms": 100})
    user, cid = await start(text)

    await eventually(lambda: _partial(cid))
    await services.answer_stop(user=user, conversation_id=cid)
    await turn_done(cid)
    (call,) = await calls(cid)
    # Stopped before the provider's last chunk: a call, with nothing reported.
    assert (call.outcome, call.reported, call.prompt_tokens) == ("stopped", False, 0)
    reply = await Message.objects.aget(id=call.reply_id)
    assert reply.status == "stopped"


async def _partial(cid: uuid.UUID) -> bool:
    state = await temporal_client.conversation_live_state(conversation_id=str(cid))
    return state is not None and bool(state.partial_text)


async def test_the_scripted_model_reports_usage_as_the_openai_api_does(
    scripted_model: ScriptedModelServer,
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "and again"},
    ]

    async def chunks(**extra: Any) -> list[dict[str, Any]]:
        body = {"model": "scripted", "messages": messages, "stream": True, **extra}
        async with aiohttp.ClientSession() as session:
            url = f"{scripted_model.base_url}/chat/completions"
            async with session.post(url, json=body) as response:
                text = await response.text()
        data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        return [json.loads(d) for d in data[:-1]]

    asked = await chunks(stream_options={"include_usage": True})
    *streamed, last = asked
    assert all(c["usage"] is None and c["choices"] for c in streamed)
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # History is read from the cache: everything but the last message.
    assert 0 < usage["prompt_tokens_details"]["cached_tokens"] < usage["prompt_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    # Deterministic: the same request, the same report.
    assert (await chunks(stream_options={"include_usage": True}))[-1]["usage"] == usage
    # Not asked for: no usage at all.
    assert all("usage" not in c for c in await chunks())

"""The LLM activity: one streamed model call with error-class-aware retries.

Temporal owns retries. A 429 waits exactly as long as the provider asks, a content
policy refusal or another client error (4xx but 408, 409 and 429) is never retried,
and 5xx, timeouts and broken streams follow the workflow's retry policy. Progress
(phases, token deltas) is heartbeated and pushed live.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from temporal_worker import llm_gateway
from temporal_worker.contracts.conversation import (
    AGENT_BUDGET_ERROR,
    CONTENT_POLICY_ERROR,
    LLM_ACTIVITY,
    LLM_REQUEST_ERROR,
    RATE_LIMIT_ERROR,
    USER_BUDGET_ERROR,
    ChatMessage,
    LlmRequest,
    LlmResult,
)
from temporal_worker.contracts.events import (
    MessageRecorded,
    ReplyDelta,
    ReplyPhase,
    ReplySnapshot,
    conversation_group,
)
from temporal_worker.contracts.tools import PlannedCall, ToolCall, handoff_target
from temporal_worker.ports import AgentProfile, LivePublisher, ModelCallUsage, Ports
from temporal_worker.telemetry import (
    current_trace_id,
    instruments,
    model_call_span,
    record_model_call,
)
from temporal_worker.tools.agents import agent_tools
from temporal_worker.tools.planner import plan_calls
from temporal_worker.tools.registry import ToolRegistry

# Heartbeats follow progress: one when the text or phase changed (checked twice a
# second), else one every KEEPALIVE to keep the 5 s heartbeat timeout meaningful. On a
# clock alone, a turn slowed by load heartbeated (and encoded its text) more often, so
# its cost grew with the load (bench/load.py).
HEARTBEAT_EVERY_SECONDS = 0.5
HEARTBEAT_KEEPALIVE_SECONDS = 2.0
DELTA_COALESCE_SECONDS = 0.02
# A busy process pushes less often: the wait between pushes is a few times how late its
# event loop runs timers (up to a limit). A busy loop also reads the model's stream a
# chunk per turn of the loop, so with a fixed 20 ms a stream stretched by load went out
# in a push (and a render of the whole reply on each socket) per chunk: at 50 users, 80
# pushes a reply, and the cost per turn grew with the load (bench/load.py).
DELTA_COALESCE_LAG_FACTOR = 4
DELTA_COALESCE_MAX_SECONDS = 0.5
# Full-text snapshots let a socket that missed deltas (it joined late, or the
# layer dropped one) converge without a reload: at most one per half second and per
# SNAPSHOT_EVERY_PUSHES deltas, so a stream stretched by load sends no more of them.
SNAPSHOT_EVERY_SECONDS = 0.5
SNAPSHOT_EVERY_PUSHES = 8
DEFAULT_RETRY_AFTER_SECONDS = 10
# Client errors that may pass when asked again; any other 4xx would fail the same way.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 409, 429})


class _LoopLag:
    """How late this process's event loop runs timers: quick to rise, slow to fall.

    Fed by the timers the streams already run (their pauses and heartbeats), so it costs
    no task of its own."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def observe(self, late: float) -> None:
        late = max(0.0, late)
        self.seconds = late if late > self.seconds else 0.7 * self.seconds + 0.3 * late

    def coalesce_seconds(self) -> float:
        paced = DELTA_COALESCE_LAG_FACTOR * self.seconds
        return min(DELTA_COALESCE_MAX_SECONDS, max(DELTA_COALESCE_SECONDS, paced))

    async def sleep(self, seconds: float) -> None:
        asked = time.monotonic()
        await asyncio.sleep(seconds)
        self.observe(time.monotonic() - asked - seconds)


loop_lag = _LoopLag()


@dataclass
class _Stream:
    """The reply as it streams: what the heartbeat and the live page both show.

    Deltas are coalesced: the first goes out at once, later ones at most every
    DELTA_COALESCE_SECONDS (longer while the process is busy, `loop_lag`), so a fast
    model does not cost a push (and a websocket frame) per token.
    """

    live: LivePublisher
    conversation_id: str
    reply_id: str
    text: str = ""
    phase: str = "thinking"
    label: str = ""
    pushed: int = 0
    last_push: float = 0.0
    last_snapshot: float = 0.0
    pushes_since_snapshot: int = 0
    heartbeated: tuple[int, str, str] = (0, "", "")
    last_heartbeat: float = 0.0
    flush_later: asyncio.Task[None] | None = None

    def details(self) -> dict[str, Any]:
        # The label too: a page loaded (or a socket joined) mid-phase shows what the live
        # one does. A failed attempt's last details stay on the pending activity until
        # the next attempt heartbeats, so "rate limited" outlives the attempt that set it.
        return {
            "reply_id": self.reply_id,
            "text": self.text,
            "phase": self.phase,
            "label": self.label,
        }

    async def push(self, event: Any) -> None:
        await self.live.publish(conversation_group(self.conversation_id), event)

    def heartbeat(self) -> None:
        self.heartbeated = (len(self.text), self.phase, self.label)
        self.last_heartbeat = time.monotonic()
        activity.heartbeat(self.details())

    def heartbeat_if_due(self) -> None:
        changed = self.heartbeated != (len(self.text), self.phase, self.label)
        if changed or time.monotonic() - self.last_heartbeat >= HEARTBEAT_KEEPALIVE_SECONDS:
            self.heartbeat()

    async def set_phase(self, phase: str, label: str) -> None:
        self.phase, self.label = phase, label
        self.heartbeat()
        await self.push(ReplyPhase(reply_id=self.reply_id, phase=phase, label=label))

    async def add(self, delta: str) -> None:
        self.text += delta
        if self.flush_later is not None:
            return
        pause = self.last_push + loop_lag.coalesce_seconds() - time.monotonic()
        if pause <= 0:
            await self.flush()
        else:
            self.flush_later = asyncio.create_task(self._flush_after_pause(pause))

    async def _flush_after_pause(self, pause: float) -> None:
        await loop_lag.sleep(pause)
        self.flush_later = None
        await self.flush()

    async def flush(self) -> None:
        if self.pushed == len(self.text):
            return
        # Claim the text before awaiting, so a concurrent flush never sends it twice.
        offset, self.pushed = self.pushed, len(self.text)
        self.last_push = time.monotonic()
        await self.push(
            ReplyDelta(reply_id=self.reply_id, offset=offset, delta=self.text[offset : self.pushed])
        )
        self.pushes_since_snapshot += 1
        if (
            self.last_push - self.last_snapshot >= SNAPSHOT_EVERY_SECONDS
            and self.pushes_since_snapshot >= SNAPSHOT_EVERY_PUSHES
        ):
            self.last_snapshot, self.pushes_since_snapshot = self.last_push, 0
            await self.push(ReplySnapshot(reply_id=self.reply_id, text=self.text))

    async def close(self) -> None:
        """Send what is still buffered; the final message must follow every delta."""
        if self.flush_later is not None:
            self.flush_later.cancel()
            self.flush_later = None
        await self.flush()


async def _announce(stream: _Stream, attempt: int) -> None:
    """The phase event creates the live reply on the page: it precedes every delta."""
    if attempt > 1:
        # A retry starts the reply over: clear what the failed attempt streamed.
        await stream.push(ReplySnapshot(reply_id=stream.reply_id, text=""))
        await stream.set_phase("thinking", f"Trying again (attempt {attempt})…")
    else:
        await stream.set_phase("thinking", "Thinking…")


async def _heartbeat_forever(stream: _Stream) -> None:
    # The heartbeat carries the text so far (a page loaded mid-answer shows it) and
    # keeps the timeout meaningful while the model thinks before its first token.
    # set_phase has just sent the first one.
    while True:
        await loop_lag.sleep(HEARTBEAT_EVERY_SECONDS)
        stream.heartbeat_if_due()


@dataclass
class _CallMeter:
    """One model call as it goes: when it started, what the provider reported, how it ended."""

    req: LlmRequest
    agent: str
    model: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    usage: llm_gateway.TokenUsage = field(default_factory=llm_gateway.TokenUsage)
    # Until the call returns: an exception leaves it so.
    outcome: str = "failed"

    def record(self, error: BaseException | None) -> ModelCallUsage:
        failed = self.outcome == "failed"
        return ModelCallUsage(
            conversation_id=self.req.conversation_id,
            reply_id=self.req.reply_id,
            attempt=activity.info().attempt,
            agent=self.agent,
            model=self.model,
            started_at=self.started_at,
            duration_ms=round((time.monotonic() - self.started) * 1000),
            outcome=self.outcome,
            reported=self.usage.reported,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            cached_tokens=self.usage.cached_tokens,
            reported_model=self.usage.model,
            error=(str(error) or type(error).__name__)[:200] if failed and error else "",
            trace_id=current_trace_id(),
        )


class LlmActivity:
    """The model call, given the product's ports, the tools and the default provider
    settings (an agent may name another provider and model)."""

    def __init__(
        self,
        ports: Ports,
        *,
        tools: Callable[[], Awaitable[ToolRegistry]],
        llm_settings: Callable[[], llm_gateway.LlmSettings],
    ) -> None:
        self.ports = ports
        self.tools = tools
        self.llm_settings = llm_settings

    def _llm_for(self, profile: AgentProfile) -> llm_gateway.LlmSettings:
        """The default endpoint, or the agent's own provider and model."""
        default = self.llm_settings()
        choice = profile.llm
        if choice.problem:
            raise ApplicationError(choice.problem, type=LLM_REQUEST_ERROR, non_retryable=True)
        if choice.base_url:
            return llm_gateway.LlmSettings(
                base_url=choice.base_url,
                api_key=choice.api_key,
                model=choice.model,
                request_timeout=default.request_timeout,
            )
        if choice.model:
            return llm_gateway.LlmSettings(
                base_url=default.base_url,
                api_key=default.api_key,
                model=choice.model,
                request_timeout=default.request_timeout,
            )
        return default

    @activity.defn(name=LLM_ACTIVITY)
    async def call_llm(self, req: LlmRequest) -> LlmResult:
        """Stream one model reply, mirroring the step's messages into the database.

        The messages the step starts with are recorded before the model is asked (a
        page loaded meanwhile shows them); the reply is recorded when it is complete. A
        failed attempt records no reply: the workflow hands the same messages to the
        retry, or to the notice that reports the failure."""
        stream = _Stream(
            live=self.ports.live, conversation_id=req.conversation_id, reply_id=req.reply_id
        )
        # From the first moment, not from the model call: under load the step's database
        # work waits for the ORM thread, and 5 s without a heartbeat looked like a dead
        # worker, so Temporal started a second attempt doing the same work again (at 200
        # users about one extra attempt a turn: the cost per turn grew with the load).
        heartbeat = asyncio.create_task(_heartbeat_forever(stream))
        try:
            return await self._call(req, stream)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _call(self, req: LlmRequest, stream: _Stream) -> LlmResult:
        # The page hears of the reply while the step begins: neither needs the other. The
        # agent is read now, so a change in the admin applies from this call on.
        (profile, registry), _ = await asyncio.gather(
            self._begin(req), _announce(stream, activity.info().attempt)
        )
        tools = agent_tools(registry, profile)
        if activity.info().attempt == 1 and any(m.role == "user" for m in req.new_messages):
            instruments().turns.add(1, {"agent": profile.slug})
        for message in req.new_messages:
            # A message that waited behind a turn shows in its place, no longer queued; a
            # hand-off shows as the agent it handed to begins; a tool's result is announced
            # again now it is recorded (its live push may have reached no socket yet).
            if (
                message.id in req.waited_message_ids
                or handoff_target(message.tool_name)
                or message.role == "tool"
            ):
                await stream.push(MessageRecorded(message_id=message.id, reply_id="", final=False))
        llm = self._llm_for(profile)
        await self._within_budget(req, profile)
        call = _CallMeter(req=req, agent=profile.slug, model=llm.model)
        try:
            with model_call_span(llm.model, llm.base_url) as span:
                completion = await llm_gateway.stream_completion(
                    llm,
                    llm_gateway.to_openai_messages(profile.prompt.text, req.context),
                    tools=tools.openai_tools(),
                    on_delta=stream.add,
                    usage=call.usage,
                )
                span.set_attributes(
                    {
                        "gen_ai.response.model": completion.model,
                        "gen_ai.response.finish_reasons": [completion.finish_reason],
                        "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
                    }
                )
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.cancel_requested:
                call.outcome = "stopped"  # the user pressed Stop
            if details is None or not details.cancel_requested or not stream.text:
                # Worker shutdown or heartbeat timeout: Temporal retries elsewhere. Stopped
                # before the first token: the workflow records a retryable notice instead.
                raise
            return await self._finish(req, stream, profile, stopped=True)
        except openai.RateLimitError as err:
            retry_after = _retry_after_seconds(err)
            await stream.set_phase(
                "waiting", f"The model is rate limited; trying again in {retry_after} s…"
            )
            raise ApplicationError(
                f"Rate limited; retrying in {retry_after}s",
                type=RATE_LIMIT_ERROR,
                next_retry_delay=timedelta(seconds=retry_after),
                # Expected while a provider throttles: logged at DEBUG, not as a failure.
                category=ApplicationErrorCategory.BENIGN,
            ) from err
        except openai.BadRequestError as err:
            if llm_gateway.is_content_policy_error(err.body, err.message):
                raise ApplicationError(
                    "The model refused the request under its content policy.",
                    type=CONTENT_POLICY_ERROR,
                    non_retryable=True,
                    # An outcome the user is told about, not a fault: no warning, no traceback.
                    category=ApplicationErrorCategory.BENIGN,
                ) from err
            raise _request_refused(err) from err
        except openai.APIStatusError as err:
            if 400 <= err.status_code < 500 and err.status_code not in RETRYABLE_CLIENT_STATUSES:
                raise _request_refused(err) from err
            await stream.set_phase("waiting", "The model had a problem; trying again…")
            raise ApplicationError(
                f"Model call failed: {type(err).__name__} ({err.status_code})"
            ) from err
        except openai.APIError as err:
            await stream.set_phase("waiting", "The model had a problem; trying again…")
            raise ApplicationError(f"Model call failed: {type(err).__name__}") from err
        else:
            call.outcome = "complete"
        finally:
            if stream.flush_later is not None:
                stream.flush_later.cancel()
                stream.flush_later = None
            # Every attempt is a call of its own, kept with what the provider reported
            # (a failed or stopped one too).
            await self._record_call(call, sys.exc_info()[1])

        if completion.finish_reason in llm_gateway.CUT_SHORT:
            # Kept and marked for the user; asking again would be cut the same way.
            activity.logger.info("reply cut short by the provider (%s)", completion.finish_reason)
        return await self._finish(
            req,
            stream,
            profile,
            content=completion.content,
            tool_calls=completion.tool_calls,
            model=completion.model,
            finish_reason=completion.finish_reason,
            planned_calls=await plan_calls(
                completion.tool_calls,
                registry=tools,
                policies=self.ports.policies,
                overrides=profile.policy_overrides,
            ),
        )

    async def _within_budget(self, req: LlmRequest, profile: AgentProfile) -> None:
        """Refuse the call, before the model is asked, when a budget is used up."""
        refusal = await self.ports.usage.check_budget(
            conversation_id=req.conversation_id, agent=profile.slug
        )
        if refusal is None:
            return
        whose = "the user's daily" if refusal.scope == "user_day" else "the agent's monthly"
        raise ApplicationError(
            f"Over {whose} budget: spent {refusal.spent} of {refusal.limit} USD",
            type=USER_BUDGET_ERROR if refusal.scope == "user_day" else AGENT_BUDGET_ERROR,
            non_retryable=True,
            # An outcome the user is told about, not a fault.
            category=ApplicationErrorCategory.BENIGN,
        )

    async def _record_call(self, call: _CallMeter, error: BaseException | None) -> None:
        usage = call.record(error)
        record_model_call(
            model=usage.model,
            outcome=usage.outcome,
            duration_ms=usage.duration_ms,
            prompt=usage.prompt_tokens,
            completion=usage.completion_tokens,
            cached=usage.cached_tokens,
        )
        try:
            await self.ports.usage.record_call(usage)
        except Exception:
            # Never let bookkeeping fail (and so repeat) a model call that was made.
            activity.logger.exception("could not record the model call's usage")

    async def _begin(self, req: LlmRequest) -> tuple[AgentProfile, ToolRegistry]:
        """Record the step's new messages and read its agent; the tool registry meanwhile."""
        return await asyncio.gather(
            self.ports.transcript.step_begin_for_agent(
                conversation_id=req.conversation_id,
                messages=req.new_messages,
                run_id=req.run_id,
                agent=req.agent,
            ),
            self.tools(),
        )

    async def _finish(
        self,
        req: LlmRequest,
        stream: _Stream,
        profile: AgentProfile,
        *,
        stopped: bool = False,
        content: str | None = None,
        tool_calls: list[ToolCall] | None = None,
        model: str = "",
        finish_reason: str = "",
        planned_calls: list[PlannedCall] | None = None,
    ) -> LlmResult:
        prompt_version = profile.prompt.version_id
        result = LlmResult(
            reply_id=req.reply_id,
            content=stream.text if content is None else content,
            tool_calls=tool_calls or [],
            prompt_version=prompt_version,
            model=model,
            finish_reason="stopped" if stopped else finish_reason,
            stopped=stopped,
            planned_calls=planned_calls or [],
            agent=profile.slug,
            max_steps_per_turn=profile.max_steps_per_turn,
        )
        reply = ChatMessage(
            id=req.reply_id,
            seq=req.reply_seq,
            role="assistant",
            content=result.content,
            status="stopped" if stopped else "complete",
            tool_calls=result.tool_calls,
            prompt_version=prompt_version,
            # The provider's reason ("length", "content_filter" mark the reply cut short).
            finish_reason="" if stopped else finish_reason,
            agent=profile.slug,
        )
        # The last deltas go out while the reply is written; the final message, which
        # the page reads from the database, follows both.
        await asyncio.gather(
            self.ports.transcript.record(
                conversation_id=req.conversation_id, messages=[reply], run_id=req.run_id
            ),
            stream.close(),
        )
        await stream.push(
            MessageRecorded(
                message_id=req.reply_id, reply_id=req.reply_id, final=not result.tool_calls
            )
        )
        return result


def _request_refused(err: openai.APIStatusError) -> ApplicationError:
    """A client error that asking again would repeat: the turn fails with a notice."""
    if err.status_code in (401, 403, 404):
        message = (
            f"The model provider refused the request ({err.status_code}); check the LLM settings."
        )
    else:
        message = f"The model rejected the request ({err.status_code}): {err.message}"
    return ApplicationError(message, type=LLM_REQUEST_ERROR, non_retryable=True)


def _retry_after_seconds(err: openai.RateLimitError) -> int:
    header = err.response.headers.get("retry-after", "")
    try:
        return max(1, round(float(header)))
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS

"""The conversation workflow: one durable agent per conversation.

Pure and deterministic: no Django, no I/O, no wall clock. Everything that talks
to the outside world is an activity, referred to by name from its contract
(temporal_worker.contracts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from temporal_worker import trace_context
    from temporal_worker.context import trim_context
    from temporal_worker.contracts.approvals import (
        MEMO_PENDING_APPROVALS,
        NOTIFY_APPROVAL_ACTIVITY,
        PATCH_APPROVALS_MEMO,
        PATCH_CLAIM_AUDIT,
        SA_APPROVAL_PENDING,
        SA_APPROVAL_REQUESTER,
        SA_APPROVAL_TOOLS,
        ApprovalClaimed,
        ApprovalDecided,
        ApprovalEvent,
        ApprovalEventRecorded,
        ClaimApproval,
        DecideApproval,
        PendingApproval,
        PendingApprovals,
        PendingRef,
        WithdrawApproval,
        arguments_hash,
        decision_problem,
    )
    from temporal_worker.contracts.conversation import (
        AGENT_BUDGET_ERROR,
        CONTENT_POLICY_ERROR,
        LLM_ACTIVITY,
        LLM_REQUEST_ERROR,
        PATCH_ANSWER_VERSIONS,
        PATCH_IDLE_CLOSE,
        PATCH_SEQ_AT_TURN_START,
        RECORD_NOTICE_ACTIVITY,
        USER_BUDGET_ERROR,
        VERSION_NOTICE_KINDS,
        AgentState,
        ChatMessage,
        CloseConversation,
        ConversationClosed,
        ConversationInput,
        ConversationResult,
        ConversationSnapshot,
        ConversationStatus,
        EditMessage,
        LlmRequest,
        LlmResult,
        MessageAccepted,
        NoticeRecorded,
        NoticeRequest,
        RegenerateAnswer,
        RetryAccepted,
        RetryTurn,
        SendMessage,
        StopAnswer,
        StopResult,
        UnrecordedMessage,
        VersionAccepted,
        text_fingerprint,
    )
    from temporal_worker.contracts.errors import Code
    from temporal_worker.contracts.retention import (
        RETENTION_ACTIVITY,
        RETENTION_WORKFLOW,
        RetentionRequest,
        RetentionResult,
    )
    from temporal_worker.contracts.tools import (
        PATCH_AGENT_HANDOFF,
        PlannedCall,
        ToolOutcome,
        ToolRequest,
        tool_activity_name,
    )

LLM_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    # No attempt limit: a provider that rate-limits for minutes is waited for, each
    # wait as long as its Retry-After. LLM_GIVE_UP_AFTER bounds the whole effort.
    maximum_attempts=0,
    non_retryable_error_types=[CONTENT_POLICY_ERROR, LLM_REQUEST_ERROR],
)
LLM_GIVE_UP_AFTER = timedelta(minutes=15)
# Short enough that a dead worker is noticed in seconds; the activity heartbeats
# every second even while it waits for the model's first token.
LLM_HEARTBEAT_TIMEOUT = timedelta(seconds=5)
LLM_START_TO_CLOSE = timedelta(minutes=5)
SEEN_IDS_KEPT = 500
TOOL_START_TO_CLOSE = timedelta(minutes=2)
TOOL_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
TOOL_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
NOTIFY_START_TO_CLOSE = timedelta(seconds=30)
DECISIONS_KEPT = 200
RETENTION_START_TO_CLOSE = timedelta(minutes=30)

APPROVAL_PENDING = SearchAttributeKey.for_bool(SA_APPROVAL_PENDING)
APPROVAL_TOOLS = SearchAttributeKey.for_keyword_list(SA_APPROVAL_TOOLS)
APPROVAL_REQUESTER = SearchAttributeKey.for_keyword(SA_APPROVAL_REQUESTER)

NOTICE_TEXT = {
    "content_policy": "The model refused this message under its content policy. "
    "It was left out of the conversation; rephrase it and send again.",
    "llm_request": "The model could not process this request.",
    "llm_unavailable": "The model is unavailable right now; the answer failed after "
    "several attempts.",
    "stopped": "Stopped before the model answered.",
    "step_limit": "The agent stopped after too many steps without an answer.",
    "budget_user": "You have reached your daily usage limit, so the model was not asked. "
    "Your message is kept; send again tomorrow (the day ends at midnight UTC) or ask an "
    "administrator to raise the limit.",
    "budget_agent": "This agent has reached its monthly usage limit, so the model was not "
    "asked. Your message is kept; an administrator can raise the limit.",
}


@workflow.defn(name="ConversationWorkflow")
class ConversationWorkflow:
    """Answers a conversation's messages in order, durably, for as long as it is open."""

    @workflow.init
    def __init__(self, inp: ConversationInput) -> None:
        self._inp = inp
        self._state: AgentState = inp.state or AgentState()
        self._status: ConversationStatus = "idle"
        self._reply_id = ""
        self._llm_call: asyncio.Task[LlmResult] | None = None
        self._stop_requested = False
        self._run_steps = 0
        # Approvals of the current step, keyed by tool call id.
        self._pending: dict[str, PendingApproval] = {}
        self._decisions: dict[str, ApprovalDecided] = {}
        # The messages the LLM step in flight is recording (pages show them meanwhile).
        self._recording: list[ChatMessage] = []
        # Queued messages whose turn started: the next LLM step announces them.
        self._waited: list[str] = []
        self._seq_at_turn_start: bool | None = None
        # Each turn's trace (the request that asked for it; None when untraced), by
        # message id, and for the retry or new version asked for. Memory only.
        self._turn_traces: dict[str, trace_context.TurnTrace] = {}
        self._retry_trace: trace_context.TurnTrace | None = None

    # --- run -------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ConversationInput) -> ConversationResult:
        state = self._state
        if state.turn_in_progress:
            # Continued as new in the middle of a long turn: carry on where it was.
            await self._answer()
        while True:
            if not await self._wait_for_work():
                break  # idle long enough: complete, carrying the state
            if state.inbox:
                message = state.inbox.pop(0)
                if message.seq == 0:
                    message.seq = self._next_seq()
                    self._waited.append(message.id)
                state.context.append(message)
                state.unrecorded.append(message)
                trace = self._turn_traces.pop(message.id, None)
            elif state.retry_requested:
                state.retry_requested = False
                trace, self._retry_trace = self._retry_trace, None
            else:
                break
            state.turn_steps = 0
            with trace_context.turn(trace):
                await self._answer()
            if self._should_continue_as_new():
                await self._continue_as_new()
        self._status = "closed"
        await workflow.wait_condition(workflow.all_handlers_finished)
        idle_closed = not state.closed
        if idle_closed:
            state.runs += 1
            state.context = self._model_context()
        return ConversationResult(
            conversation_id=inp.conversation_id,
            messages=state.next_seq - 1,
            total_steps=state.total_steps,
            idle_closed=idle_closed,
            state=state if idle_closed else None,
        )

    async def _wait_for_work(self) -> bool:
        """Wait for a message, a retry or the archive; False when the conversation stayed
        idle for `config.idle_close_seconds` (runs from before that wait forever)."""
        state = self._state

        def work() -> bool:
            return bool(state.inbox) or state.retry_requested or state.closed

        idle_close = self._inp.config.idle_close_seconds
        # The timer is a new command: guarded, so histories from before replay unchanged.
        if not idle_close or not workflow.patched(PATCH_IDLE_CLOSE):
            await workflow.wait_condition(work)
            return True
        try:
            await workflow.wait_condition(work, timeout=timedelta(seconds=idle_close))
        except TimeoutError:
            # A message accepted at the last moment is answered, never dropped.
            await workflow.wait_condition(workflow.all_handlers_finished)
            return work()
        return True

    async def _answer(self) -> None:
        """One turn of the agent loop: call the model until it answers."""
        state = self._state
        state.turn_in_progress = True
        self._stop_requested = False
        while state.turn_steps < self._steps_per_turn():
            state.turn_steps += 1
            result = await self._call_llm()
            if result is None or result.stopped or self._stopping():
                break
            if not result.planned_calls:
                break
            await self._run_tools(result)
            if self._stopping():
                break
            if self._should_continue_as_new():
                # A safe point inside a long turn: this step's tools (and their
                # approvals) are done, and the next run resumes the turn.
                await self._continue_as_new()
        else:
            await self._record_notice("step_limit")
        state.turn_in_progress = False
        self._status = "idle"
        self._reply_id = ""

    async def _continue_as_new(self) -> None:
        """Hand the agent state to a fresh run before the history grows too large."""
        # Never hand over mid-update: an accepted message must reach the new run.
        await workflow.wait_condition(workflow.all_handlers_finished)
        state = self._state
        state.runs += 1
        # The next run needs only what the model may still see; the database keeps
        # the whole transcript.
        state.context = self._model_context()
        workflow.continue_as_new(
            ConversationInput(
                conversation_id=self._inp.conversation_id,
                owner_id=self._inp.owner_id,
                owner_name=self._inp.owner_name,
                config=self._inp.config,
                state=state,
            )
        )

    async def _call_llm(self) -> LlmResult | None:
        """Run one LLM step; None when it failed and a notice was recorded instead."""
        self._status = "thinking"
        self._reply_id = str(workflow.uuid4())
        reply_seq = self._next_seq()
        request = LlmRequest(
            conversation_id=self._inp.conversation_id,
            reply_id=self._reply_id,
            reply_seq=reply_seq,
            context=self._model_context(),
            new_messages=self._take_unrecorded(),
            run_id=workflow.info().run_id,
            agent=self._state.agent,
        )
        request.waited_message_ids = [m.id for m in request.new_messages if m.id in self._waited]
        self._waited = [i for i in self._waited if i not in request.waited_message_ids]
        self._recording = request.new_messages
        self._llm_call = workflow.start_activity(
            LLM_ACTIVITY,
            request,
            result_type=LlmResult,
            start_to_close_timeout=LLM_START_TO_CLOSE,
            schedule_to_close_timeout=LLM_GIVE_UP_AFTER,
            heartbeat_timeout=LLM_HEARTBEAT_TIMEOUT,
            retry_policy=LLM_RETRY_POLICY,
            # Stop keeps the partial text: the activity answers the cancellation
            # with what it streamed so far, and we wait for that answer.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="LLM step",
        )
        try:
            result = await self._llm_call
        except ActivityError as err:
            self._state.unrecorded = request.new_messages + self._state.unrecorded
            await self._record_notice(self._failure_kind(err))
            return None
        finally:
            self._llm_call = None
            self._recording = []
            self._state.total_steps += 1
            self._run_steps += 1
        # The agent the conversation started with, as its first step read it (a hand-off
        # changes it); its step limit as the last step read it. Both come from the
        # recorded result, so replays take the same path (older results carry neither).
        if not self._state.agent:
            self._state.agent = result.agent
        self._state.agent_max_steps = result.max_steps_per_turn
        self._state.context.append(
            ChatMessage(
                id=result.reply_id,
                seq=reply_seq,
                role="assistant",
                content=result.content,
                status="stopped" if result.stopped else "complete",
                tool_calls=result.tool_calls,
                prompt_version=result.prompt_version,
                agent=result.agent,
            )
        )
        return result

    async def _run_tools(self, result: LlmResult) -> None:
        """Run every call of one step concurrently; one failure never cancels the others."""
        self._status = "running_tools"
        # Ids and order are fixed before the calls run, whichever finishes first.
        slots = [(str(workflow.uuid4()), self._next_seq()) for _ in result.planned_calls]
        outcomes = await asyncio.gather(
            *(
                self._run_call(planned, result.content, slot)
                for planned, slot in zip(result.planned_calls, slots, strict=True)
            ),
            return_exceptions=True,
        )
        for planned, (message_id, seq), outcome in zip(
            result.planned_calls, slots, outcomes, strict=True
        ):
            if isinstance(outcome, BaseException):
                cause = outcome.cause if isinstance(outcome, ActivityError) else outcome
                outcome = ToolOutcome(
                    call_id=planned.call.id,
                    content=json.dumps({"error": f"the tool failed: {cause}"}),
                    ok=False,
                )
            self._append(
                ChatMessage(
                    id=message_id,
                    seq=seq,
                    role="tool",
                    content=outcome.content,
                    tool_call_id=planned.call.id,
                    tool_name=planned.call.name,
                    status="complete" if outcome.ok else "error",
                )
            )

    async def _run_call(
        self, planned: PlannedCall, reason: str, slot: tuple[str, int]
    ) -> ToolOutcome:
        call = planned.call
        if planned.error:
            return ToolOutcome(call.id, json.dumps({"error": planned.error}), ok=False)
        if planned.handoff and workflow.patched(PATCH_AGENT_HANDOFF):
            return self._hand_off(planned)
        arguments = planned.arguments
        if planned.approval is not None:
            decision = await self._approval_gate(planned, reason)
            if decision.outcome != "approved":
                return ToolOutcome(
                    call.id,
                    json.dumps(
                        {
                            "status": decision.outcome,
                            "decided_by": decision.decided_by,
                            "reason": decision.reason,
                            "action": planned.summary,
                        }
                    ),
                    ok=False,
                )
            arguments = decision.arguments
        return await workflow.execute_activity(
            tool_activity_name(call.name),
            ToolRequest(
                conversation_id=self._inp.conversation_id,
                workflow_id=workflow.info().workflow_id,
                call_id=call.id,
                tool=call.name,
                arguments=arguments,
                requester_id=self._inp.owner_id,
                message_id=slot[0],
                message_seq=slot[1],
                result_max_chars=self._inp.config.tool_result_max_chars,
            ),
            result_type=ToolOutcome,
            # An MCP call is bounded by its server's timeout and retried less (transport
            # failures only reach here); built-in tools keep the defaults.
            start_to_close_timeout=timedelta(seconds=planned.start_to_close_seconds)
            if planned.start_to_close_seconds
            else TOOL_START_TO_CLOSE,
            # A worker that dies mid-tool is noticed in seconds, not at the 2 min timeout.
            heartbeat_timeout=TOOL_HEARTBEAT_TIMEOUT,
            retry_policy=dataclasses.replace(
                TOOL_RETRY_POLICY, maximum_attempts=planned.max_attempts
            )
            if planned.max_attempts
            else TOOL_RETRY_POLICY,
            summary=planned.summary or call.name,
        )

    def _hand_off(self, planned: PlannedCall) -> ToolOutcome:
        """The next step runs as the other agent (its prompt, model and tools); the tool
        message records the hand-off in the transcript."""
        self._state.agent = planned.handoff
        self._state.agent_max_steps = 0
        return ToolOutcome(
            planned.call.id,
            json.dumps(
                {
                    "handed_off_to": planned.handoff,
                    "agent": planned.handoff_name,
                    "note": f"Now talking to: {planned.handoff_name}",
                }
            ),
        )

    async def _approval_gate(self, planned: PlannedCall, reason: str) -> ApprovalDecided:
        """Wait for a human (or the deadline) to decide on one call; others run on meanwhile."""
        assert planned.approval is not None
        rule = planned.approval
        call_id = planned.call.id
        now = workflow.now()
        pending = PendingApproval(
            call_id=call_id,
            conversation_id=self._inp.conversation_id,
            requester_id=self._inp.owner_id,
            tool=planned.call.name,
            arguments=planned.arguments,
            arguments_hash=arguments_hash(planned.arguments),
            summary=planned.summary,
            reason=reason,
            requested_at=now.isoformat(),
            deadline=(now + timedelta(seconds=rule.deadline_seconds)).isoformat(),
            timeout_action=rule.timeout_action,
            tool_source=planned.source,
            tool_description=planned.description,
            tool_idempotent=planned.idempotent,
        )
        self._pending[call_id] = pending
        self._update_approval_attributes()
        await self._notify(ApprovalEvent(kind="requested", approval=pending))

        waited = 0
        if 0 < rule.remind_after_seconds < rule.deadline_seconds:
            if not await self._decision_within(call_id, rule.remind_after_seconds):
                pending.reminded = True
                self._memo_pending_approvals()
                await self._notify(ApprovalEvent(kind="reminder", approval=pending))
            waited = rule.remind_after_seconds
        if call_id not in self._decisions and not await self._decision_within(
            call_id, rule.deadline_seconds - waited
        ):
            self._decisions[call_id] = ApprovalDecided(
                call_id=call_id,
                outcome="approved" if rule.timeout_action == "approve" else "rejected",
                decided_by="system",
                decided_by_id=0,
                decided_at=workflow.now().isoformat(),
                reason="No reviewer decided before the deadline; the policy's default applied.",
                arguments=pending.arguments,
                by_system=True,
            )
        decision = self._decisions[call_id]
        del self._pending[call_id]
        self._update_approval_attributes()
        await self._notify(ApprovalEvent(kind="decided", approval=pending, decision=decision))
        return decision

    async def _decision_within(self, call_id: str, seconds: int) -> bool:
        # wait_condition raises TimeoutError on expiry; it never returns False.
        try:
            await workflow.wait_condition(
                lambda: call_id in self._decisions, timeout=timedelta(seconds=seconds)
            )
        except TimeoutError:
            return False
        return True

    async def _notify(self, event: ApprovalEvent) -> None:
        await workflow.execute_activity(
            NOTIFY_APPROVAL_ACTIVITY,
            event,
            result_type=ApprovalEventRecorded,
            start_to_close_timeout=NOTIFY_START_TO_CLOSE,
        )

    def _update_approval_attributes(self) -> None:
        self._status = "waiting_approval" if self._pending else "running_tools"
        if not self._inp.config.approval_search_attributes:
            return
        workflow.upsert_search_attributes(
            [
                APPROVAL_PENDING.value_set(bool(self._pending)),
                APPROVAL_TOOLS.value_set(sorted({p.tool for p in self._pending.values()})),
                APPROVAL_REQUESTER.value_set(self._inp.owner_name or str(self._inp.owner_id)),
            ]
        )
        self._memo_pending_approvals()

    def _memo_pending_approvals(self) -> None:
        if not self._inp.config.approval_search_attributes:
            return
        if workflow.patched(PATCH_APPROVALS_MEMO):
            refs = [
                PendingRef(p.call_id, p.claimed_by_id, p.claimed_by) for p in self._pending.values()
            ]
            workflow.upsert_memo({MEMO_PENDING_APPROVALS: refs})

    def _failure_kind(self, err: ActivityError) -> str:
        cause = err.cause
        if isinstance(cause, CancelledError):
            return "stopped"
        if isinstance(cause, ApplicationError) and cause.type == CONTENT_POLICY_ERROR:
            # The refused message would make every later call fail too.
            for message in reversed(self._state.context):
                if message.role == "user":
                    message.in_context = False
                    break
            return "content_policy"
        if isinstance(cause, ApplicationError) and cause.type == LLM_REQUEST_ERROR:
            return "llm_request"
        # Budgets are checked before the model is asked (no command changes: older
        # histories never carry these types).
        if isinstance(cause, ApplicationError) and cause.type == USER_BUDGET_ERROR:
            return "budget_user"
        if isinstance(cause, ApplicationError) and cause.type == AGENT_BUDGET_ERROR:
            return "budget_agent"
        return "llm_unavailable"

    async def _record_notice(self, kind: str) -> None:
        notice = ChatMessage(
            id=str(workflow.uuid4()),
            seq=self._next_seq(),
            role="notice",
            content=NOTICE_TEXT[kind],
            status="error",
            error_kind=kind,
        )
        self._state.context.append(notice)
        await workflow.execute_local_activity(
            RECORD_NOTICE_ACTIVITY,
            NoticeRequest(
                conversation_id=self._inp.conversation_id,
                notice=notice,
                new_messages=self._take_unrecorded(),
                run_id=workflow.info().run_id,
            ),
            result_type=NoticeRecorded,
            start_to_close_timeout=timedelta(seconds=30),
        )

    def _model_context(self) -> list[ChatMessage]:
        config = self._inp.config
        return trim_context(
            self._state.context,
            max_messages=config.context_max_messages,
            max_tokens=config.context_max_tokens,
        )

    def _steps_per_turn(self) -> int:
        return self._state.agent_max_steps or self._inp.config.max_steps_per_turn

    def _should_continue_as_new(self) -> bool:
        if self._pending or self._state.closed:
            return False
        return (
            workflow.info().is_continue_as_new_suggested()
            or self._run_steps >= self._inp.config.steps_per_run
        )

    def _append(self, message: ChatMessage) -> None:
        self._state.context.append(message)
        self._state.unrecorded.append(message)

    def _take_unrecorded(self) -> list[ChatMessage]:
        taken, self._state.unrecorded = self._state.unrecorded, []
        return taken

    def _stopping(self) -> bool:
        # A method, not the attribute: the Stop update sets it while the turn awaits.
        return self._stop_requested

    def _next_seq(self) -> int:
        seq = self._state.next_seq
        self._state.next_seq += 1
        return seq

    def _numbering_at_turn_start(self) -> bool:
        """Whether this run numbers a user message when its turn starts (runs started
        before that change keep numbering it when it is accepted)."""
        if self._seq_at_turn_start is None:
            self._seq_at_turn_start = workflow.patched(PATCH_SEQ_AT_TURN_START)
        return self._seq_at_turn_start

    # --- updates ---------------------------------------------------------------

    @workflow.update
    def send_message(self, msg: SendMessage) -> MessageAccepted:
        # A repeat answers with what was first accepted under the id (the validator
        # has refused the same id with another text).
        for position, queued in enumerate(self._state.inbox):
            if queued.id == msg.message_id:
                first = text_fingerprint(queued.content)
                return MessageAccepted(
                    msg.message_id, queued.seq, position, duplicate=True, text_fingerprint=first
                )
        if msg.message_id in self._state.seen_message_ids:
            seq = next((m.seq for m in self._state.context if m.id == msg.message_id), 0)
            first = self._state.seen_text.get(msg.message_id, "")
            return MessageAccepted(msg.message_id, seq, 0, duplicate=True, text_fingerprint=first)
        fingerprint = text_fingerprint(msg.text)
        # A message that waits behind a turn is numbered when its turn starts (0 until
        # then), so it follows that turn's steps; one answered next is numbered now.
        answered_next = self._status == "idle" and not self._state.inbox
        seq = 0 if self._numbering_at_turn_start() and not answered_next else self._next_seq()
        message = ChatMessage(id=msg.message_id, seq=seq, role="user", content=msg.text)
        self._state.inbox.append(message)
        trace = trace_context.current()
        if trace is not None:
            self._turn_traces[message.id] = trace
        self._state.seen_message_ids = [*self._state.seen_message_ids, msg.message_id][
            -SEEN_IDS_KEPT:
        ]
        kept = set(self._state.seen_message_ids)
        self._state.seen_text = {
            **{k: v for k, v in self._state.seen_text.items() if k in kept},
            msg.message_id: fingerprint,
        }
        queue_position = len(self._state.inbox) - 1 + (1 if self._status == "thinking" else 0)
        return MessageAccepted(
            msg.message_id, message.seq, queue_position, text_fingerprint=fingerprint
        )

    @send_message.validator
    def _validate_send_message(self, msg: SendMessage) -> None:
        if self._state.closed:
            raise _refusal("This conversation is archived; start a new one.", Code.ARCHIVED)
        text = msg.text.strip()
        if not text:
            raise _refusal("A message cannot be empty.", Code.EMPTY_MESSAGE)
        limit = self._inp.config.max_message_chars
        if len(msg.text) > limit:
            raise _refusal(
                f"A message can be at most {limit:,} characters (this one has {len(msg.text):,}).",
                Code.MESSAGE_TOO_LONG,
            )
        if not msg.message_id or len(msg.message_id) > 64:
            raise _refusal("A message needs an id of at most 64 characters.", Code.BAD_MESSAGE_ID)
        sent_as = self._state.seen_text.get(msg.message_id)
        if sent_as is not None and sent_as != text_fingerprint(msg.text):
            raise _refusal(_DIFFERENT_TEXT, Code.MESSAGE_ID_IN_USE)

    @workflow.update
    def stop_answer(self, _: StopAnswer) -> StopResult:
        self._stop_requested = True
        if self._llm_call is not None:
            self._llm_call.cancel()
        return StopResult(reply_id=self._reply_id)

    @stop_answer.validator
    def _validate_stop_answer(self, _: StopAnswer) -> None:
        if self._status != "thinking":
            raise _refusal("The agent is not answering right now.", Code.NOT_ANSWERING)

    @workflow.update
    def retry_turn(self, req: RetryTurn) -> RetryAccepted:
        self._state.retry_requested = True
        self._retry_trace = trace_context.current()
        return RetryAccepted(notice_id=req.notice_id)

    @retry_turn.validator
    def _validate_retry_turn(self, req: RetryTurn) -> None:
        if self._state.closed:
            raise _refusal("This conversation is archived.", Code.ARCHIVED)
        if self._status != "idle" or self._state.inbox or self._state.retry_requested:
            raise _refusal("The agent is already answering.", Code.ALREADY_ANSWERING)
        last = self._state.context[-1] if self._state.context else None
        if last is None or last.id != req.notice_id or last.role != "notice":
            raise _refusal("Only the latest failed answer can be retried.", Code.NOT_RETRYABLE)
        if last.error_kind not in ("llm_unavailable", "stopped"):
            raise _refusal(
                "Retrying would fail the same way; edit the message instead.", Code.NOT_RETRYABLE
            )

    @workflow.update
    def regenerate_answer(self, req: RegenerateAnswer) -> VersionAccepted:
        if req.request_id in self._state.seen_message_ids:
            # Applied before a continue-as-new: Temporal's own dedupe is per run.
            return VersionAccepted(notice_id="")
        workflow.patched(PATCH_ANSWER_VERSIONS)
        notice = self._new_version("regenerated", keep_user_message=True)
        self._remember_id(req.request_id, "")
        # The loop answers the last message again, as after a retry.
        self._state.retry_requested = True
        self._retry_trace = trace_context.current()
        return VersionAccepted(notice_id=notice.id)

    @regenerate_answer.validator
    def _validate_regenerate_answer(self, req: RegenerateAnswer) -> None:
        if req.request_id in self._state.seen_message_ids:
            return
        self._refuse_new_version()
        last = self._state.context[-1] if self._state.context else None
        if last is None or last.role != "assistant" or last.id != req.reply_id:
            raise _refusal(
                "Only the latest answer can be regenerated; reload the page.", Code.NOT_LATEST
            )

    @workflow.update
    def edit_message(self, req: EditMessage) -> VersionAccepted:
        if req.message_id in self._state.seen_message_ids:
            seq = next((m.seq for m in self._state.context if m.id == req.message_id), 0)
            return VersionAccepted(notice_id="", message_id=req.message_id, seq=seq)
        workflow.patched(PATCH_ANSWER_VERSIONS)
        notice = self._new_version("edited", keep_user_message=False)
        # Then the new text is queued as a sent message is; the validator made sure no
        # turn runs, so it is answered next and numbered now.
        message = ChatMessage(
            id=req.message_id, seq=self._next_seq(), role="user", content=req.text
        )
        self._state.inbox.append(message)
        trace = trace_context.current()
        if trace is not None:
            self._turn_traces[message.id] = trace
        self._remember_id(req.message_id, text_fingerprint(req.text))
        return VersionAccepted(notice_id=notice.id, message_id=req.message_id, seq=message.seq)

    @edit_message.validator
    def _validate_edit_message(self, req: EditMessage) -> None:
        if req.message_id in self._state.seen_message_ids:
            return
        self._refuse_new_version()
        last_user = next((m for m in reversed(self._state.context) if m.role == "user"), None)
        if last_user is None or last_user.id != req.replaces_id:
            raise _refusal(
                "Only the latest message can be edited; reload the page.", Code.NOT_LATEST
            )
        self._validate_send_message(SendMessage(message_id=req.message_id, text=req.text))

    def _refuse_new_version(self) -> None:
        """Regenerate and edit wait for a quiet conversation: no reviewer deciding, no
        turn running or queued."""
        if self._state.closed:
            raise _refusal("This conversation is archived.", Code.ARCHIVED)
        if self._pending:
            raise _refusal(
                "A reviewer is still deciding on an action of this answer; wait for the "
                "decision (or withdraw the request) first.",
                Code.APPROVAL_PENDING,
            )
        if self._status != "idle" or self._state.inbox or self._state.retry_requested:
            raise _refusal(
                "The agent is answering; wait for the answer or stop it first.",
                Code.ALREADY_ANSWERING,
            )

    def _new_version(self, kind: str, *, keep_user_message: bool) -> ChatMessage:
        """Take the last exchange out of the model's context (the transcript keeps it,
        as an earlier version) and mark where the new version begins."""
        context = self._state.context
        start = max((i for i, m in enumerate(context) if m.role == "user"), default=0)
        for message in context[start + 1 if keep_user_message else start :]:
            message.in_context = False
        notice = ChatMessage(
            id=str(workflow.uuid4()),
            seq=self._next_seq(),
            role="notice",
            content="",
            error_kind=kind,
            in_context=False,
        )
        self._append(notice)
        return notice

    def _remember_id(self, used_id: str, fingerprint: str) -> None:
        self._state.seen_message_ids = [*self._state.seen_message_ids, used_id][-SEEN_IDS_KEPT:]
        kept = set(self._state.seen_message_ids)
        self._state.seen_text = {
            **{k: v for k, v in self._state.seen_text.items() if k in kept},
            used_id: fingerprint,
        }

    @workflow.update
    def close_conversation(self, _: CloseConversation) -> ConversationClosed:
        self._state.closed = True
        return ConversationClosed(pending_messages=len(self._state.inbox))

    @close_conversation.validator
    def _validate_close(self, _: CloseConversation) -> None:
        if self._state.closed:
            raise _refusal("This conversation is already archived.", Code.ARCHIVED)

    @workflow.update
    def decide_approval(self, req: DecideApproval) -> ApprovalDecided:
        pending = self._pending[req.call_id]
        edited = bool(req.edited_arguments) and req.edited_arguments != pending.arguments
        decided = ApprovalDecided(
            call_id=req.call_id,
            outcome="approved" if req.action == "approve" else "rejected",
            decided_by=req.reviewer,
            decided_by_id=req.reviewer_id,
            decided_at=workflow.now().isoformat(),
            reason=req.reason.strip(),
            arguments=req.edited_arguments or pending.arguments,
            edited=edited,
            summary=req.summary if edited else "",
            # Data, not a command: replaying older histories needs no patch.
            channel=req.channel,
            step_up=req.step_up,
        )
        self._record_decision(decided)
        return decided

    @decide_approval.validator
    def _validate_decide_approval(self, req: DecideApproval) -> None:
        pending = self._pending_or_refuse(req.call_id)
        if req.reviewer_id == self._inp.owner_id:
            raise _refusal("You cannot decide on your own request.", Code.OWN_REQUEST)
        if pending.claimed_by_id and pending.claimed_by_id != req.reviewer_id:
            raise _refusal("{by} has claimed this request.", Code.CLAIMED, by=pending.claimed_by)
        if req.arguments_hash != pending.arguments_hash:
            raise _refusal(
                "The arguments changed since you loaded them; reload and decide again.",
                Code.STALE_ARGUMENTS,
            )
        problem = decision_problem(
            action=req.action, reason=req.reason, edited_arguments=req.edited_arguments
        )
        if problem:
            raise _refusal(problem, Code.INVALID)

    @workflow.update
    async def claim_approval(self, req: ClaimApproval) -> ApprovalClaimed:
        pending = self._pending[req.call_id]
        pending.claimed_by_id = req.reviewer_id
        pending.claimed_by = req.reviewer
        self._memo_pending_approvals()
        if workflow.patched(PATCH_CLAIM_AUDIT):
            # The audit and every open page hear of the claim from here, so no crash
            # between the update and a write by the web leaves the audit behind.
            await self._notify(ApprovalEvent(kind="claimed", approval=pending))
        return ApprovalClaimed(call_id=req.call_id, claimed_by=req.reviewer)

    @claim_approval.validator
    def _validate_claim_approval(self, req: ClaimApproval) -> None:
        pending = self._pending_or_refuse(req.call_id)
        if req.reviewer_id == self._inp.owner_id:
            raise _refusal("You cannot review your own request.", Code.OWN_REQUEST)
        if pending.claimed_by_id and pending.claimed_by_id != req.reviewer_id:
            raise _refusal("Already claimed by {by}.", Code.CLAIMED, by=pending.claimed_by)

    @workflow.update
    def withdraw_approval(self, req: WithdrawApproval) -> ApprovalDecided:
        decided = ApprovalDecided(
            call_id=req.call_id,
            outcome="withdrawn",
            decided_by="requester",
            decided_by_id=self._inp.owner_id,
            decided_at=workflow.now().isoformat(),
            reason="Withdrawn by the user.",
            arguments=self._pending[req.call_id].arguments,
        )
        self._record_decision(decided)
        return decided

    @withdraw_approval.validator
    def _validate_withdraw_approval(self, req: WithdrawApproval) -> None:
        self._pending_or_refuse(req.call_id)

    def _pending_or_refuse(self, call_id: str) -> PendingApproval:
        decided = self._decisions.get(call_id)
        if decided is not None:
            raise _refusal(
                "Already {outcome} by {by} at {at}.",
                Code.ALREADY_DECIDED,
                outcome=decided.outcome,
                by=decided.decided_by,
                at=decided.decided_at,
                channel=decided.channel,
            )
        pending = self._pending.get(call_id)
        if pending is None:
            raise _refusal("No pending approval has this id.", Code.UNKNOWN_APPROVAL)
        if workflow.now() >= datetime.fromisoformat(pending.deadline):
            raise _refusal("This approval has expired.", Code.EXPIRED)
        return pending

    def _record_decision(self, decided: ApprovalDecided) -> None:
        self._decisions[decided.call_id] = decided
        if len(self._decisions) > DECISIONS_KEPT:
            oldest = next(iter(self._decisions))
            if oldest not in self._pending:
                del self._decisions[oldest]

    # --- queries ---------------------------------------------------------------

    @workflow.query
    def pending_approvals(self) -> PendingApprovals:
        return PendingApprovals(
            conversation_id=self._inp.conversation_id, items=list(self._pending.values())
        )

    @workflow.query
    def carried_state(self) -> AgentState:
        """What a new run of this conversation starts from: unarchiving asks the completed
        run (a query replays its history, whichever version recorded it)."""
        return self._state

    @workflow.query
    def snapshot(self) -> ConversationSnapshot:
        taken = [*self._recording, *self._state.unrecorded]
        return ConversationSnapshot(
            status=self._status,
            reply_id=self._reply_id,
            queued=len(self._state.inbox),
            closed=self._state.closed,
            total_steps=self._state.total_steps,
            run_steps=self._run_steps,
            runs=self._state.runs,
            unrecorded=[
                *(
                    UnrecordedMessage(m.id, m.content, m.seq, False)
                    for m in taken
                    if m.role == "user"
                ),
                *(UnrecordedMessage(m.id, m.content, m.seq, True) for m in self._state.inbox),
                *(
                    UnrecordedMessage(m.id, "", m.seq, False, notice_kind=m.error_kind)
                    for m in taken
                    if m.role == "notice" and m.error_kind in VERSION_NOTICE_KINDS
                ),
            ],
        )


_DIFFERENT_TEXT = "This message was already sent with different text; reload the page."


def _refusal(message: str, code: str, **details: object) -> ApplicationError:
    """A validator's refusal: the code and details travel as data (the web renders them)."""
    return ApplicationError(message, details, type=code)


@workflow.defn(name=RETENTION_WORKFLOW)
class RetentionWorkflow:
    """Started by the retention Schedule: deletes the conversations older than the setting
    (in an activity, retried until it succeeds or the next run takes over)."""

    @workflow.run
    async def run(self, req: RetentionRequest) -> RetentionResult:
        return await workflow.execute_activity(
            RETENTION_ACTIVITY,
            req,
            result_type=RetentionResult,
            start_to_close_timeout=RETENTION_START_TO_CLOSE,
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10)),
            schedule_to_close_timeout=timedelta(hours=12),
        )

"""Conversations through Temporal: send a message (update-with-start), stop, retry,
archive, and what the agent is doing now."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from temporal_worker.client import retrying
from temporal_worker.client.connection import get_client
from temporal_worker.client.errors import user_error
from temporal_worker.client.health import temporal_reachable
from temporal_worker.contracts.conversation import (
    AgentConfig,
    AgentState,
    CloseConversation,
    ConversationClosed,
    ConversationInput,
    ConversationSnapshot,
    EditMessage,
    MessageAccepted,
    RegenerateAnswer,
    RetryAccepted,
    RetryTurn,
    SendMessage,
    StopAnswer,
    StopResult,
    UnrecordedMessage,
    VersionAccepted,
    conversation_workflow_id,
)
from temporal_worker.contracts.errors import Code, Refused
from temporal_worker.workflows import ConversationWorkflow

logger = logging.getLogger(__name__)

# A page renders from the database without the live part rather than wait for Temporal.
LIVE_STATE_TIMEOUT = timedelta(seconds=2)


@dataclass
class LiveState:
    status: str
    reply_id: str
    partial_text: str
    phase: str
    queued: int
    unrecorded: list[UnrecordedMessage] = field(default_factory=list)
    # What the live page says of the phase ("Thinking…", "The model is rate limited;
    # trying again in 5 s…"); empty before the step's first heartbeat.
    phase_label: str = ""


def agent_config() -> AgentConfig:
    return AgentConfig(
        max_message_chars=settings.CHAT_MESSAGE_MAX_CHARS,
        max_steps_per_turn=settings.AGENT_MAX_STEPS_PER_TURN,
        steps_per_run=settings.AGENT_STEPS_PER_RUN,
        context_max_messages=settings.AGENT_CONTEXT_MAX_MESSAGES,
        context_max_tokens=settings.AGENT_CONTEXT_MAX_TOKENS,
        tool_result_max_chars=settings.AGENT_TOOL_RESULT_MAX_CHARS,
        approval_search_attributes=settings.AGENT_APPROVAL_SEARCH_ATTRIBUTES,
        idle_close_seconds=settings.CONVERSATION_IDLE_CLOSE_SECONDS,
    )


async def message_send(
    *, conversation_id: str, owner_id: int, message_id: str, text: str, owner_name: str = ""
) -> MessageAccepted:
    """Deliver a user message; the first one starts the workflow (update-with-start).

    The message id is the update id, so a retried or doubled request is applied once.
    """
    client = await get_client()
    workflow_id = conversation_workflow_id(conversation_id)

    async def send(carried: AgentState | None = None) -> MessageAccepted:
        start = WithStartWorkflowOperation(
            ConversationWorkflow.run,
            ConversationInput(
                conversation_id=conversation_id,
                owner_id=owner_id,
                owner_name=owner_name,
                config=agent_config(),
                state=carried,
            ),
            id=workflow_id,
            task_queue=settings.TEMPORAL_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # An archived conversation's workflow has completed and must never restart;
            # one closed for being idle goes on in a new run with the state it carried.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if carried is not None
            else WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        try:
            return await client.execute_update_with_start_workflow(
                ConversationWorkflow.send_message,
                SendMessage(message_id=message_id, text=text),
                id=message_id,
                start_workflow_operation=start,
                rpc_timeout=retrying.UPDATE_ATTEMPT_TIMEOUT,
            )
        except Exception:
            # The start operation carries the same error; read it so asyncio does not
            # report it as never retrieved.
            with contextlib.suppress(Exception):
                await start.workflow_handle()
            raise

    try:
        return await retrying.retry_update(send)
    except Exception as err:
        carried = await _idle_closed_state(client, workflow_id) if _closed(err) else None
        if carried is None:
            raise user_error(err) from err
    try:
        return await retrying.retry_update(lambda: send(carried))
    except Exception as err:
        raise user_error(err) from err


def _closed(err: Exception) -> bool:
    """The run has completed, so the start was refused (the test server says it as an
    RPC status, the real one as WorkflowAlreadyStartedError)."""
    if isinstance(err, WorkflowAlreadyStartedError):
        return True
    return isinstance(err, RPCError) and err.status == RPCStatusCode.ALREADY_EXISTS


async def _idle_closed_state(client: Client, workflow_id: str) -> AgentState | None:
    """The state the last run completed with, when it closed for being idle (None when it
    was archived, failed or ended otherwise: such a conversation does not reopen)."""
    handle = client.get_workflow_handle_for(ConversationWorkflow.run, workflow_id)
    try:
        result = await handle.result(follow_runs=False)
    except Exception as err:
        logger.info("no idle-closed state for %s: %s", workflow_id, type(err).__name__)
        return None
    if not result.idle_closed or result.state is None:
        return None
    return dataclasses.replace(result.state, closed=False, retry_requested=False)


async def answer_stop(*, conversation_id: str) -> StopResult:
    result: StopResult = await update(
        conversation_id, ConversationWorkflow.stop_answer, StopAnswer()
    )
    return result


async def turn_retry(*, conversation_id: str, notice_id: str) -> RetryAccepted:
    result: RetryAccepted = await update(
        conversation_id, ConversationWorkflow.retry_turn, RetryTurn(notice_id=notice_id)
    )
    return result


async def answer_regenerate(
    *, conversation_id: str, request_id: str, reply_id: str
) -> VersionAccepted:
    """Answer the last message again. The request id (made when the page was rendered)
    is the update id: a doubled click regenerates once."""
    result: VersionAccepted = await update(
        conversation_id,
        ConversationWorkflow.regenerate_answer,
        RegenerateAnswer(request_id=request_id, reply_id=reply_id),
        update_id=request_id,
    )
    return result


async def message_edit(
    *, conversation_id: str, message_id: str, replaces_id: str, text: str
) -> VersionAccepted:
    """Replace the last message and answer it anew; the new message id is the update id."""
    result: VersionAccepted = await update(
        conversation_id,
        ConversationWorkflow.edit_message,
        EditMessage(message_id=message_id, replaces_id=replaces_id, text=text),
        update_id=message_id,
    )
    return result


async def conversation_close(*, conversation_id: str) -> ConversationClosed | None:
    """Archive: the workflow answers what is queued, then completes. None if already gone."""
    try:
        result: ConversationClosed = await update(
            conversation_id, ConversationWorkflow.close_conversation, CloseConversation()
        )
    except Refused:
        return None
    return result


async def conversation_reopen(
    *,
    conversation_id: str,
    owner_id: int,
    owner_name: str,
    from_transcript: Callable[[], Awaitable[AgentState]],
) -> None:
    """Unarchive: start a new run of the conversation's workflow (same id) carrying the
    completed run's state, so the agent remembers the conversation and numbering goes on.

    The state comes from the completed run (a query replays its history); once Temporal's
    retention has removed that history, from the transcript the database mirrors.
    """
    client = await get_client()
    workflow_id = conversation_workflow_id(conversation_id)
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise user_error(err) from err
        state = await from_transcript()
    else:
        if description.status == WorkflowExecutionStatus.RUNNING:
            # Archived, but still answering what was queued (or already reopened).
            raise Refused(
                "This conversation is still finishing its last answer; try again in a moment.",
                code=Code.ALREADY_ANSWERING,
            )
        try:
            state = await handle.query(ConversationWorkflow.carried_state)
        except Exception as err:
            logger.info("no state from %s (%s): using the transcript", workflow_id, err)
            state = await from_transcript()
    state = dataclasses.replace(
        state, closed=False, retry_requested=False, turn_in_progress=False, turn_steps=0
    )
    try:
        await client.start_workflow(
            ConversationWorkflow.run,
            ConversationInput(
                conversation_id=conversation_id,
                owner_id=owner_id,
                owner_name=owner_name,
                config=agent_config(),
                state=state,
            ),
            id=workflow_id,
            task_queue=settings.TEMPORAL_TASK_QUEUE,
            # Only the run that archived may be followed: never a second live run.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        # A repeated click (or another tab) reopened it first: done either way.
        return
    except Exception as err:
        raise user_error(err) from err


async def conversation_live_state(*, conversation_id: str) -> LiveState | None:
    """What the agent is doing now, with the reply streamed so far (from the last heartbeat).

    None when there is no workflow to ask (never started, or Temporal is down).
    """
    if not await temporal_reachable():
        return None
    client = await get_client()
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    try:
        snapshot, description = await asyncio.gather(
            handle.query(ConversationWorkflow.snapshot, rpc_timeout=LIVE_STATE_TIMEOUT),
            handle.describe(rpc_timeout=LIVE_STATE_TIMEOUT),
        )
    except Exception as err:
        logger.info("no live state for %s: %s", conversation_id, type(err).__name__)
        return None
    return LiveState(
        status=snapshot.status,
        reply_id=snapshot.reply_id,
        queued=snapshot.queued,
        unrecorded=snapshot.unrecorded,
        **await _streamed_so_far(client, description.raw_description, snapshot),
    )


async def _streamed_so_far(
    client: Client, raw: Any, snapshot: ConversationSnapshot
) -> dict[str, str]:
    for pending in raw.pending_activities:
        if not pending.heartbeat_details.payloads:
            continue
        details = await client.data_converter.decode(pending.heartbeat_details.payloads)
        progress = details[0] if details else None
        if isinstance(progress, dict) and progress.get("reply_id") == snapshot.reply_id:
            # Between attempts these are the failed attempt's last details: the phase
            # that explains the wait ("rate limited") until the next attempt begins.
            return {
                "partial_text": str(progress.get("text", "")),
                "phase": str(progress.get("phase", "")),
                "phase_label": str(progress.get("label", "")),
            }
    return {"partial_text": "", "phase": "", "phase_label": ""}


async def update(conversation_id: str, handler: Any, arg: Any, *, update_id: str = "") -> Any:
    """Run an update on the conversation's workflow; refusals come back as UserError."""
    client = await get_client()
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    # One id for every attempt: Temporal applies an update id once, so a retry after a
    # timeout can never decide (or stop, or claim) twice.
    update_id = update_id or str(uuid.uuid4())
    try:
        return await retrying.retry_update(
            lambda: handle.execute_update(
                handler, arg, id=update_id, rpc_timeout=retrying.UPDATE_ATTEMPT_TIMEOUT
            )
        )
    except Exception as err:
        raise user_error(err) from err

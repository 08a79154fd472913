"""The one module through which Django talks to Temporal.

Views and services call these functions with plain values; Temporal's errors come
back as `ChatRejected` (a validator said no: show the reason) or `TemporalUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from temporal_worker.shared import (
    MEMO_PENDING_APPROVALS,
    SA_APPROVAL_PENDING,
    AgentConfig,
    ApprovalClaimed,
    ApprovalDecided,
    ClaimApproval,
    CloseConversation,
    ConversationClosed,
    ConversationInput,
    ConversationSnapshot,
    DecideApproval,
    MessageAccepted,
    PendingApproval,
    RetryAccepted,
    RetryTurn,
    SendMessage,
    StopAnswer,
    StopResult,
    WithdrawApproval,
    conversation_workflow_id,
)
from temporal_worker.workflows import ConversationWorkflow

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ChatRejected(Exception):
    """The workflow refused a request; the message is meant for the user."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        # The validator's error type ("AlreadyDecided", "StaleArguments", ...).
        self.kind = kind


class TemporalUnavailable(Exception):
    """Temporal could not be reached or answered with an unexpected error."""

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        # The request may still have been applied (it timed out rather than failed).
        self.outcome_unknown = outcome_unknown


@dataclass
class LiveState:
    status: str
    reply_id: str
    partial_text: str
    phase: str
    queued: int


_clients: dict[int, Client] = {}


async def get_client() -> Client:
    """A client per event loop (the web server has one; tests may have several)."""
    loop_key = id(asyncio.get_running_loop())
    client = _clients.get(loop_key)
    if client is None:
        client = await Client.connect(
            settings.TEMPORAL_ADDRESS,
            namespace=settings.TEMPORAL_NAMESPACE,
            api_key=settings.TEMPORAL_API_KEY or None,
            tls=tls_config(),
        )
        _clients[loop_key] = client
    return client


def tls_config() -> TLSConfig | bool:
    """TLS for Temporal: off, server-verified (API key), or mutual with a client certificate."""
    if not settings.TEMPORAL_TLS:
        return False
    cert, key = settings.TEMPORAL_TLS_CLIENT_CERT, settings.TEMPORAL_TLS_CLIENT_KEY
    if bool(cert) != bool(key):
        raise ImproperlyConfigured(
            "Set both TEMPORAL_TLS_CLIENT_CERT and TEMPORAL_TLS_CLIENT_KEY, or neither."
        )
    return TLSConfig(
        client_cert=_pem(cert, "TEMPORAL_TLS_CLIENT_CERT"),
        client_private_key=_pem(key, "TEMPORAL_TLS_CLIENT_KEY"),
        server_root_ca_cert=_pem(settings.TEMPORAL_TLS_SERVER_CA, "TEMPORAL_TLS_SERVER_CA"),
        domain=settings.TEMPORAL_TLS_SERVER_NAME or None,
    )


def _pem(path: str, setting: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ImproperlyConfigured(f"{setting}: cannot read {path}: {err.strerror}") from err


def set_client(client: Client) -> None:
    """Share an already connected client (the embedded worker and tests use this)."""
    _clients[id(asyncio.get_running_loop())] = client


def agent_config() -> AgentConfig:
    return AgentConfig(
        max_message_chars=settings.CHAT_MESSAGE_MAX_CHARS,
        max_steps_per_turn=settings.AGENT_MAX_STEPS_PER_TURN,
        steps_per_run=settings.AGENT_STEPS_PER_RUN,
        context_max_messages=settings.AGENT_CONTEXT_MAX_MESSAGES,
        context_max_tokens=settings.AGENT_CONTEXT_MAX_TOKENS,
        tool_result_max_chars=settings.AGENT_TOOL_RESULT_MAX_CHARS,
        approval_search_attributes=settings.AGENT_APPROVAL_SEARCH_ATTRIBUTES,
    )


async def message_send(
    *, conversation_id: str, owner_id: int, message_id: str, text: str
) -> MessageAccepted:
    """Deliver a user message; the first one starts the workflow (update-with-start).

    The message id is the update id, so a retried or doubled request is applied once.
    """
    client = await get_client()
    workflow_id = conversation_workflow_id(conversation_id)

    async def send() -> MessageAccepted:
        start = WithStartWorkflowOperation(
            ConversationWorkflow.run,
            ConversationInput(
                conversation_id=conversation_id, owner_id=owner_id, config=agent_config()
            ),
            id=workflow_id,
            task_queue=settings.TEMPORAL_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # An archived conversation's workflow has completed and must never restart.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        try:
            return await client.execute_update_with_start_workflow(
                ConversationWorkflow.send_message,
                SendMessage(message_id=message_id, text=text),
                id=message_id,
                start_workflow_operation=start,
                rpc_timeout=UPDATE_ATTEMPT_TIMEOUT,
            )
        except Exception:
            # The start operation carries the same error; read it so asyncio does not
            # report it as never retrieved.
            with contextlib.suppress(Exception):
                await start.workflow_handle()
            raise

    try:
        return await _retrying(send)
    except WorkflowAlreadyStartedError as err:
        raise ChatRejected("This conversation is archived; start a new one.") from err
    except Exception as err:
        raise _translate(err) from err


async def answer_stop(*, conversation_id: str) -> StopResult:
    return await _update(conversation_id, ConversationWorkflow.stop_answer, StopAnswer())


async def turn_retry(*, conversation_id: str, notice_id: str) -> RetryAccepted:
    return await _update(
        conversation_id, ConversationWorkflow.retry_turn, RetryTurn(notice_id=notice_id)
    )


async def conversation_close(*, conversation_id: str) -> ConversationClosed | None:
    """Archive: the workflow answers what is queued, then completes. None if already gone."""
    try:
        return await _update(
            conversation_id, ConversationWorkflow.close_conversation, CloseConversation()
        )
    except ChatRejected:
        return None


async def conversation_live_state(*, conversation_id: str) -> LiveState | None:
    """What the agent is doing now, with the reply streamed so far (from the last heartbeat).

    None when there is no workflow to ask (never started, or Temporal is down).
    """
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
            return {
                "partial_text": str(progress.get("text", "")),
                "phase": str(progress.get("phase", "")),
            }
    return {"partial_text": "", "phase": ""}


@dataclass
class PendingListing:
    items: list[PendingApproval]
    # Where the time went, for the dashboard benchmark.
    visibility_seconds: float
    query_seconds: float
    workflows: int
    # How many of them had no memo and were asked with a Query.
    queried: int = 0


QUERY_CONCURRENCY = 64
LIST_PAGE_SIZE = 1000
# A page renders from the database without the live part rather than wait for Temporal.
LIVE_STATE_TIMEOUT = timedelta(seconds=2)
# A workflow whose worker is gone would hold the whole dashboard for ~30 s.
QUERY_TIMEOUT = timedelta(seconds=3)


async def approvals_pending_list(*, limit: int | None = None) -> PendingListing:
    """Pending approvals, found through visibility.

    Each workflow keeps its pending approvals in its memo, which the listing returns,
    so a thousand rows cost one paged visibility call. A workflow without that memo
    (started before it existed) is asked with a Query instead.
    """
    client = await get_client()
    started = time.perf_counter()
    items: list[PendingApproval] = []
    to_query: list[str] = []
    listed_workflows = 0
    page_token = b""
    # The service call itself: the SDK's iterator also decodes every execution's
    # search attributes, a third of the time at 1,000 rows.
    # All of them by default: visibility lists newest first, and a cut would drop the
    # oldest requests, the closest to their deadline.
    while limit is None or listed_workflows < limit:
        page = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(
                namespace=client.namespace,
                query=f'{SA_APPROVAL_PENDING} = true AND ExecutionStatus = "Running"',
                page_size=LIST_PAGE_SIZE
                if limit is None
                else min(LIST_PAGE_SIZE, limit - listed_workflows),
                next_page_token=page_token,
            ),
            retry=True,
        )
        with_memo = []
        for execution in page.executions:
            payload = execution.memo.fields.get(MEMO_PENDING_APPROVALS)
            if payload is None:
                to_query.append(execution.execution.workflow_id)
            else:
                with_memo.append(payload)
        # One decode call for the page (it runs the payload codec, if one is configured).
        for memo in await client.data_converter.decode(with_memo):
            items.extend(_pending_from_memo(item) for item in memo)
        listed_workflows += len(page.executions)
        page_token = page.next_page_token
        if not page_token:
            break
    listed = time.perf_counter()
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def pending_of(workflow_id: str) -> list[PendingApproval]:
        async with gate:
            try:
                result = await client.get_workflow_handle(workflow_id).query(
                    ConversationWorkflow.pending_approvals, rpc_timeout=QUERY_TIMEOUT
                )
            except Exception as err:
                logger.warning("pending approvals query failed for %s: %s", workflow_id, err)
                return []
            return result.items

    for batch in await asyncio.gather(*(pending_of(wid) for wid in to_query)):
        items.extend(batch)
    items.sort(key=lambda p: p.requested_at)
    return PendingListing(
        items=items,
        visibility_seconds=listed - started,
        query_seconds=time.perf_counter() - listed,
        workflows=listed_workflows,
        queried=len(to_query),
    )


_PENDING_FIELDS = frozenset(f.name for f in fields(PendingApproval))


def _pending_from_memo(item: dict[str, Any]) -> PendingApproval:
    # Unknown keys are dropped so a newer worker may add fields to the memo.
    return PendingApproval(**{k: v for k, v in item.items() if k in _PENDING_FIELDS})


async def approval_get(*, conversation_id: str, call_id: str) -> PendingApproval | None:
    client = await get_client()
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    try:
        result = await handle.query(
            ConversationWorkflow.pending_approvals, rpc_timeout=QUERY_TIMEOUT
        )
    except Exception as err:
        raise _translate(err) from err
    return next((item for item in result.items if item.call_id == call_id), None)


async def approval_decide(*, conversation_id: str, decision: DecideApproval) -> ApprovalDecided:
    return await _update(conversation_id, ConversationWorkflow.decide_approval, decision)


async def approval_claim(*, conversation_id: str, claim: ClaimApproval) -> ApprovalClaimed:
    return await _update(conversation_id, ConversationWorkflow.claim_approval, claim)


async def approval_withdraw(*, conversation_id: str, call_id: str) -> ApprovalDecided:
    return await _update(
        conversation_id, ConversationWorkflow.withdraw_approval, WithdrawApproval(call_id=call_id)
    )


async def _update(conversation_id: str, update: Any, arg: Any) -> Any:
    client = await get_client()
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    # One id for every attempt: Temporal applies an update id once, so a retry after a
    # timeout can never decide (or stop, or claim) twice.
    update_id = str(uuid.uuid4())
    try:
        return await _retrying(
            lambda: handle.execute_update(
                update, arg, id=update_id, rpc_timeout=UPDATE_ATTEMPT_TIMEOUT
            )
        )
    except Exception as err:
        raise _translate(err) from err


UPDATE_ATTEMPT_TIMEOUT = timedelta(seconds=15)
# How long a request keeps retrying an update that timed out before telling the user.
# A busy worker can take longer than one RPC's deadline to run the workflow task.
UPDATE_RETRY_BUDGET_SECONDS = 45.0
_TRANSIENT_STATUSES = (
    RPCStatusCode.DEADLINE_EXCEEDED,
    # "No poller seen for task queue recently": workers are restarting (a deploy).
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.RESOURCE_EXHAUSTED,
)


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    return isinstance(err, RPCError) and err.status in _TRANSIENT_STATUSES


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Run an update call again while it fails for lack of time or capacity.

    Only for calls with a fixed update id: the outcome of a timed-out attempt is
    unknown, and the id is what makes trying again safe."""
    deadline = time.monotonic() + UPDATE_RETRY_BUDGET_SECONDS
    delay = 0.2
    while True:
        try:
            return await call()
        except Exception as err:
            task = asyncio.current_task()
            cancelled = task is not None and task.cancelling() > 0
            if cancelled or not _is_transient(err) or time.monotonic() + delay > deadline:
                raise
            logger.warning("update %s; trying again in %.1f s", type(err).__name__, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def _translate(err: Exception) -> Exception:
    if isinstance(err, WorkflowUpdateFailedError) and isinstance(err.cause, ApplicationError):
        return ChatRejected(err.cause.message, err.cause.type or "")
    if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
        return ChatRejected("This conversation is no longer running.")
    if isinstance(err, ChatRejected | TemporalUnavailable):
        return err
    if _is_transient(err):
        logger.warning("Temporal did not answer in time: %s", type(err).__name__)
        return TemporalUnavailable(
            "The agent service did not confirm in time. Send again: it will not be done twice.",
            outcome_unknown=True,
        )
    logger.exception("Temporal request failed")
    return TemporalUnavailable("The agent service is unavailable; try again in a moment.")

"""Approvals through Temporal: the pending list (visibility and memos), one pending
request (a Query), and decisions, claims and withdrawals (Updates)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

from temporal_worker.client.connection import get_client
from temporal_worker.client.conversations import update
from temporal_worker.client.errors import user_error
from temporal_worker.client.health import TemporalDown, temporal_reachable
from temporal_worker.contracts.approvals import (
    MEMO_PENDING_APPROVALS,
    SA_APPROVAL_PENDING,
    ApprovalClaimed,
    ApprovalDecided,
    ClaimApproval,
    DecideApproval,
    PendingApproval,
    WithdrawApproval,
)
from temporal_worker.contracts.conversation import (
    conversation_id_from_workflow_id,
    conversation_workflow_id,
)
from temporal_worker.workflows import ConversationWorkflow

logger = logging.getLogger(__name__)

QUERY_CONCURRENCY = 64
LIST_PAGE_SIZE = 1000
# A workflow whose worker is gone would hold the whole dashboard for ~30 s.
QUERY_TIMEOUT = timedelta(seconds=3)


@dataclass
class PendingEntry:
    """One pending approval as visibility lists it: ids and the claim, and the whole
    request when the workflow said it (a Query, or a memo from before PendingRef)."""

    conversation_id: str
    call_id: str
    claimed_by_id: int = 0
    claimed_by: str = ""
    approval: PendingApproval | None = None


@dataclass
class PendingListing:
    entries: list[PendingEntry]
    # Where the time went, shown in the dashboard's footer.
    visibility_seconds: float
    query_seconds: float
    workflows: int
    # How many of them had no memo and were asked with a Query.
    queried: int = 0


async def approvals_pending_list(*, limit: int | None = None) -> PendingListing:
    """Pending approvals, found through visibility.

    Each workflow keeps its pending approvals in its memo, which the listing returns,
    so a thousand rows cost one paged visibility call. A workflow without that memo
    (started before it existed) is asked with a Query instead.
    """
    if not await temporal_reachable():
        # Said at once rather than after the SDK's own ten seconds of retries.
        raise user_error(TemporalDown())
    client = await get_client()
    started = time.perf_counter()
    entries: list[PendingEntry] = []
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
        with_memo, memo_owners = [], []
        for execution in page.executions:
            payload = execution.memo.fields.get(MEMO_PENDING_APPROVALS)
            if payload is None:
                to_query.append(execution.execution.workflow_id)
            else:
                with_memo.append(payload)
                memo_owners.append(execution.execution.workflow_id)
        # One decode call for the page (it runs the payload codec, if one is configured).
        for workflow_id, memo in zip(
            memo_owners, await client.data_converter.decode(with_memo), strict=True
        ):
            conversation_id = conversation_id_from_workflow_id(workflow_id)
            entries.extend(_entry_from_memo(conversation_id, item) for item in memo)
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
        entries.extend(_entry_of(p) for p in batch)
    return PendingListing(
        entries=entries,
        visibility_seconds=listed - started,
        query_seconds=time.perf_counter() - listed,
        workflows=listed_workflows,
        queried=len(to_query),
    )


_PENDING_FIELDS = frozenset(f.name for f in fields(PendingApproval))


def _entry_of(approval: PendingApproval) -> PendingEntry:
    return PendingEntry(
        conversation_id=approval.conversation_id,
        call_id=approval.call_id,
        claimed_by_id=approval.claimed_by_id,
        claimed_by=approval.claimed_by,
        approval=approval,
    )


def _entry_from_memo(conversation_id: str, item: dict[str, Any]) -> PendingEntry:
    if "arguments_hash" in item:  # a memo written before PendingRef: the whole request
        # Unknown keys are dropped so a newer worker may add fields to the memo.
        return _entry_of(PendingApproval(**{k: v for k, v in item.items() if k in _PENDING_FIELDS}))
    return PendingEntry(
        conversation_id=conversation_id,
        call_id=str(item["call_id"]),
        claimed_by_id=int(item.get("claimed_by_id") or 0),
        claimed_by=str(item.get("claimed_by") or ""),
    )


async def approval_get(*, conversation_id: str, call_id: str) -> PendingApproval | None:
    if not await temporal_reachable():
        raise user_error(TemporalDown())
    client = await get_client()
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    try:
        result = await handle.query(
            ConversationWorkflow.pending_approvals, rpc_timeout=QUERY_TIMEOUT
        )
    except Exception as err:
        raise user_error(err) from err
    return next((item for item in result.items if item.call_id == call_id), None)


async def approval_decide(*, conversation_id: str, decision: DecideApproval) -> ApprovalDecided:
    result: ApprovalDecided = await update(
        conversation_id, ConversationWorkflow.decide_approval, decision
    )
    return result


async def approval_claim(*, conversation_id: str, claim: ClaimApproval) -> ApprovalClaimed:
    result: ApprovalClaimed = await update(
        conversation_id, ConversationWorkflow.claim_approval, claim
    )
    return result


async def approval_withdraw(*, conversation_id: str, call_id: str) -> ApprovalDecided:
    result: ApprovalDecided = await update(
        conversation_id, ConversationWorkflow.withdraw_approval, WithdrawApproval(call_id=call_id)
    )
    return result

"""Ending a conversation for good in Temporal: its pending approvals, then every run of its
workflow and their histories (DeleteWorkflowExecution). Each call may be repeated."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    ListWorkflowExecutionsRequest,
)
from temporalio.service import RPCError, RPCStatusCode

from temporal_worker.client.connection import get_client
from temporal_worker.client.errors import user_error
from temporal_worker.client.health import TemporalDown, temporal_reachable
from temporal_worker.contracts.approvals import PendingApproval
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.workflows import ConversationWorkflow

logger = logging.getLogger(__name__)

QUERY_TIMEOUT = timedelta(seconds=5)


async def conversation_pending_approvals(*, conversation_id: str) -> list[PendingApproval]:
    """What still waits for a reviewer; [] when the workflow is gone or has completed."""
    if not await temporal_reachable():
        raise user_error(TemporalDown())
    client = await get_client()
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    try:
        description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return []
        raise user_error(err) from err
    if description.close_time is not None:
        return []
    try:
        result = await handle.query(
            ConversationWorkflow.pending_approvals, rpc_timeout=QUERY_TIMEOUT
        )
    except Exception as err:
        raise user_error(err) from err
    return result.items


async def conversation_history_delete(*, conversation_id: str) -> int:
    """Terminate the conversation's workflow if it runs and delete every run's history
    (the current one and those it continued as new from). Returns how many runs were asked
    to be deleted; 0 when nothing was left, so a retry after a partial failure is safe.

    Temporal deletes asynchronously: a run may stay listed for a moment after this returns.
    """
    if not await temporal_reachable():
        raise user_error(TemporalDown())
    client = await get_client()
    workflow_id = conversation_workflow_id(conversation_id)
    run_ids: set[str] = set()
    page_token = b""
    while True:
        page = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(
                namespace=client.namespace,
                query=f'WorkflowId = "{workflow_id}"',
                next_page_token=page_token,
            ),
            retry=True,
        )
        run_ids.update(e.execution.run_id for e in page.executions)
        page_token = page.next_page_token
        if not page_token:
            break
    # The current run by id alone as well: visibility may not list a just-started run yet.
    targets = ["", *sorted(run_ids)]
    deleted = 0
    for run_id in targets:
        try:
            # A running execution is terminated by the server before it is deleted.
            await client.workflow_service.delete_workflow_execution(
                DeleteWorkflowExecutionRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                ),
                retry=True,
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                continue
            raise user_error(err) from err
        deleted += 1
    logger.info("deleted %d run(s) of %s", deleted, workflow_id)
    return deleted

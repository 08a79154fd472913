"""The one module through which Django talks to Temporal.

Views, services and consumers call these functions with plain values; refusals and
failures come back as the user-facing errors of `temporal_worker.contracts.errors`.
Split by job: connecting (connection), trying again (retrying), translating errors
(errors), and the calls themselves (conversations, approvals).
"""

from django.conf import settings

from temporal_worker.client.approvals import (
    PendingEntry,
    PendingListing,
    approval_claim,
    approval_decide,
    approval_get,
    approval_withdraw,
    approvals_pending_list,
)
from temporal_worker.client.connection import connect_when_up, get_client, set_client
from temporal_worker.client.conversations import (
    LiveState,
    agent_config,
    answer_regenerate,
    answer_stop,
    conversation_close,
    conversation_live_state,
    conversation_reopen,
    message_edit,
    message_send,
    turn_retry,
)
from temporal_worker.client.health import temporal_reachable


def workflow_ui_url(workflow_id: str, run_id: str = "") -> str:
    """The Temporal Web UI page of a conversation's workflow (or one of its runs)."""
    namespace = settings.TEMPORAL_NAMESPACE
    url = f"{settings.TEMPORAL_UI_URL}/namespaces/{namespace}/workflows/{workflow_id}"
    return f"{url}/{run_id}/history" if run_id else url


__all__ = [
    "LiveState",
    "PendingEntry",
    "PendingListing",
    "agent_config",
    "answer_regenerate",
    "answer_stop",
    "approval_claim",
    "approval_decide",
    "approval_get",
    "approval_withdraw",
    "approvals_pending_list",
    "connect_when_up",
    "conversation_close",
    "conversation_live_state",
    "conversation_reopen",
    "get_client",
    "message_edit",
    "message_send",
    "set_client",
    "temporal_reachable",
    "turn_retry",
    "workflow_ui_url",
]

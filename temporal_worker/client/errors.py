"""Temporal's errors, turned into the user-facing hierarchy (temporal_worker.contracts.errors)."""

from __future__ import annotations

import logging
from typing import Any

from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from temporal_worker.client.health import TemporalDown
from temporal_worker.contracts.errors import Code, Refused, Unavailable, UserError
from temporal_worker.contracts.errors import user_error_from as _user_error_from

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = (
    RPCStatusCode.DEADLINE_EXCEEDED,
    # "No poller seen for task queue recently": workers are restarting (a deploy).
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.RESOURCE_EXHAUSTED,
)


def is_transient(err: BaseException) -> bool:
    """Failed for lack of time or capacity: the same request may succeed later."""
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    return isinstance(err, RPCError) and err.status in TRANSIENT_STATUSES


def user_error(err: BaseException) -> UserError:
    """What to tell the person whose request failed with `err`."""
    if isinstance(err, UserError):
        return err
    if isinstance(err, TemporalDown):
        return Unavailable(
            "The agent service is unavailable right now; nothing was sent. Try again in a moment.",
            code=Code.UNAVAILABLE,
        )
    if isinstance(err, WorkflowUpdateFailedError) and isinstance(err.cause, ApplicationError):
        cause = err.cause
        details: Any = cause.details[0] if cause.details else None
        return _user_error_from(
            cause.type or Code.INVALID, cause.message, details if isinstance(details, dict) else {}
        )
    if isinstance(err, WorkflowAlreadyStartedError):
        return Refused("This conversation is archived; start a new one.", code=Code.ARCHIVED)
    if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
        # No workflow (any more): whether the conversation exists is the caller's to say.
        return Refused("This conversation is no longer running.", code=Code.NOT_RUNNING)
    if is_transient(err):
        logger.warning("Temporal did not answer in time: %s", type(err).__name__)
        return Unavailable(
            "The agent service did not confirm in time. Send again: it will not be done twice.",
            code=Code.NOT_CONFIRMED,
            outcome_unknown=True,
        )
    logger.error("Temporal request failed: %s: %s", type(err).__name__, err)
    return Unavailable(
        "The agent service is unavailable; try again in a moment.", code=Code.UNAVAILABLE
    )

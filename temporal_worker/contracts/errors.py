"""What a person may be told when a request is refused or cannot be done.

One hierarchy for every process: workflow validators raise Temporal application
errors whose `type` is one of the codes below and whose first detail is a dict; the
Temporal client turns them into these exceptions; services raise them directly; one
place in the web (config.errors) renders them for pages, htmx fragments and sockets.
Details are structured (who, when, how long), never parsed back out of sentences.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar


class Code:
    """Machine-readable reasons, shared by the workflow's validators and the web."""

    # Conversations and messages.
    ARCHIVED = "Archived"
    EMPTY_MESSAGE = "EmptyMessage"
    MESSAGE_TOO_LONG = "MessageTooLong"
    BAD_MESSAGE_ID = "BadMessageId"
    MESSAGE_ID_IN_USE = "MessageIdInUse"
    NOT_ANSWERING = "NotAnswering"
    ALREADY_ANSWERING = "AlreadyAnswering"
    NOT_RETRYABLE = "NotRetryable"
    # Regenerate and edit-and-resend: a reviewer is deciding, or the page is stale.
    APPROVAL_PENDING = "ApprovalPending"
    NOT_LATEST = "NotLatest"
    CONVERSATION_NOT_FOUND = "ConversationNotFound"
    NOT_RUNNING = "NotRunning"
    RATE_LIMITED = "RateLimited"
    # Approvals.
    ALREADY_DECIDED = "AlreadyDecided"
    UNKNOWN_APPROVAL = "UnknownApproval"
    EXPIRED = "Expired"
    OWN_REQUEST = "OwnRequest"
    CLAIMED = "Claimed"
    STALE_ARGUMENTS = "StaleArguments"
    INVALID_ARGUMENTS = "InvalidArguments"
    INVALID = "Invalid"
    # A policy asks for a fresh second factor (or the password) before approving.
    STEP_UP_REQUIRED = "StepUpRequired"
    # The agent service itself.
    UNAVAILABLE = "Unavailable"
    NOT_CONFIRMED = "NotConfirmed"


# Codes that mean "there is no such thing" rather than "not allowed now".
NOT_FOUND_CODES = frozenset({Code.CONVERSATION_NOT_FOUND})
# Detail keys that hold an ISO 8601 time (turned into datetimes on the way in).
TIME_DETAILS = frozenset({"at", "until"})


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class UserError(Exception):
    """A refusal or failure a person may read.

    `message` may name details in braces ("Already {outcome} by {by} at {at}.");
    datetimes among the details are formatted for the reader when rendered.
    """

    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, code: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: dict[str, Any] = details

    def text(self, *, format_time: Callable[[datetime], str] = _iso) -> str:
        if not self.details:
            return self.message
        values = {
            key: format_time(value) if isinstance(value, datetime) else value
            for key, value in self.details.items()
        }
        try:
            return self.message.format_map(values)
        except (KeyError, IndexError, ValueError):
            return self.message

    def __str__(self) -> str:
        return self.text()


class Refused(UserError):
    """A rule said no: archived, claimed by someone else, already decided, invalid input."""

    http_status = 409


class NotFound(UserError):
    """No such conversation or approval (or not one this person may see)."""

    http_status = 404


class RateLimited(UserError):
    """Too many requests; `retry_after` (seconds) says when to try again."""

    http_status = 429


class Unavailable(UserError):
    """The agent service cannot be reached, or did not confirm in time."""

    http_status = 503

    @property
    def outcome_unknown(self) -> bool:
        """The request may still have been applied (it timed out rather than failed)."""
        return bool(self.details.get("outcome_unknown"))


def user_error_from(code: str, message: str, details: Mapping[str, Any] | None) -> UserError:
    """The exception for a validator's refusal (`ApplicationError(message, details, type=code)`)."""
    parsed: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if key in TIME_DETAILS and isinstance(value, str):
            try:
                parsed[key] = datetime.fromisoformat(value)
                continue
            except ValueError:
                pass
        parsed[key] = value
    kind = NotFound if code in NOT_FOUND_CODES else Refused
    return kind(message, code=code, **parsed)

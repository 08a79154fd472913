"""Retention: the scheduled job that deletes conversations older than the retention
setting (a Temporal Schedule starts RetentionWorkflow, whose activity deletes them)."""

from dataclasses import dataclass

RETENTION_SCHEDULE_ID = "conversation-retention"
RETENTION_WORKFLOW = "RetentionWorkflow"
RETENTION_ACTIVITY = "delete_expired_conversations"


@dataclass
class RetentionRequest:
    # Conversations whose last message (or, without one, their creation) is older than
    # this many days are deleted.
    older_than_days: int
    # At most this many per run: the next run (or a retry) takes the rest.
    batch: int = 200


@dataclass
class RetentionResult:
    deleted: int
    # Still there because deleting them failed (Temporal unreachable, say): the activity
    # reports these as a failure, so Temporal tries again.
    failed: int = 0

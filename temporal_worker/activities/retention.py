"""The retention job's one activity: delete the conversations older than the setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from temporal_worker.contracts.retention import (
    RETENTION_ACTIVITY,
    RetentionRequest,
    RetentionResult,
)
from temporal_worker.ports import Ports


class RetentionActivity:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    @activity.defn(name=RETENTION_ACTIVITY)
    async def delete_expired(self, req: RetentionRequest) -> RetentionResult:
        """Idempotent: each conversation's deletion is (chatapp.deletion); a failure is
        raised after the others were deleted, so Temporal retries only what is left."""
        older_than = datetime.now(UTC) - timedelta(days=req.older_than_days)
        deleted, failed = await self.ports.retention.expired_delete(
            older_than=older_than, batch=req.batch
        )
        activity.logger.info("retention: %d deleted, %d failed", deleted, failed)
        if failed:
            raise ApplicationError(
                f"{failed} expired conversation(s) could not be deleted ({deleted} were)",
                type="RetentionIncomplete",
            )
        return RetentionResult(deleted=deleted, failed=failed)

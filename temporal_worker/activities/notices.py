"""Notices: what the workflow tells the user when a turn could not be answered."""

from __future__ import annotations

from temporalio import activity

from temporal_worker.contracts.conversation import (
    RECORD_NOTICE_ACTIVITY,
    NoticeRecorded,
    NoticeRequest,
)
from temporal_worker.contracts.events import MessageRecorded, conversation_group
from temporal_worker.ports import Ports


class NoticeActivity:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    @activity.defn(name=RECORD_NOTICE_ACTIVITY)
    async def record_notice(self, req: NoticeRequest) -> NoticeRecorded:
        """Persist the notice (and any messages not yet mirrored), then show it live."""
        await self.ports.transcript.record(
            conversation_id=req.conversation_id,
            messages=[*req.new_messages, req.notice],
            run_id=req.run_id,
        )
        await self.ports.live.publish(
            conversation_group(req.conversation_id),
            MessageRecorded(message_id=req.notice.id, reply_id="", final=True),
        )
        return NoticeRecorded(notice_id=req.notice.id)

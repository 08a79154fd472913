"""Notices: what the workflow tells the user when a turn could not be answered."""

from __future__ import annotations

from temporalio import activity

from chatapp.progress import progress_push
from chatapp.services import messages_record
from temporal_worker.shared import RECORD_NOTICE_ACTIVITY, NoticeRecorded, NoticeRequest


@activity.defn(name=RECORD_NOTICE_ACTIVITY)
async def record_notice(req: NoticeRequest) -> NoticeRecorded:
    """Persist the notice (and any messages not yet mirrored), then show it live."""
    await messages_record(
        conversation_id=req.conversation_id,
        messages=[*req.new_messages, req.notice],
        run_id=req.run_id,
    )
    await progress_push(
        req.conversation_id,
        {"kind": "message", "message_id": req.notice.id, "reply_id": "", "final": True},
    )
    return NoticeRecorded(notice_id=req.notice.id)

"""What a verified Slack interaction does: Approve decides at once, Reject opens a modal
for the reason, the modal's submission rejects. The clicker must be a reviewer whose
profile holds their Slack member id; anyone else is told so and nothing happens.

Decisions go through `reviews.actions.approval_decide` (the dashboard's Update and its
validator), marked as made on Slack. The message itself is updated in place by the
worker once the workflow has decided, whichever channel decided it.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from reviews import actions, selectors
from reviews.models import ReviewerProfile
from reviews.recipients import REVIEW_PERMISSION
from reviews.slack.blocks import (
    APPROVE_ACTION,
    REASON_BLOCK,
    REASON_MAX_CHARS,
    REJECT_ACTION,
    REJECT_CALLBACK,
    DecisionRef,
    reject_modal,
    slack_time,
)
from reviews.slack.client import slack_client
from temporal_worker.contracts.approvals import CHANNEL_SLACK
from temporal_worker.contracts.errors import Refused, UserError

logger = logging.getLogger(__name__)

NOT_A_REVIEWER = (
    "Your Slack account is not linked to a reviewer, so your click decides nothing. An "
    "admin can add your Slack member id ({slack_user}) to your reviewer profile."
)
NOT_UNDERSTOOD = "This button is not one this app sent; nothing was decided."
UNKNOWN_REQUEST = "This request is no longer known here; open the dashboard to see it."


@dataclass
class SlackReviewer:
    user: AbstractUser
    time_zone: str

    def local_time(self, moment: datetime) -> str:
        """For plain text (a modal's error): Slack's date tokens work in messages only."""
        try:
            zone = zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        local = timezone.localtime(moment, zone)
        return f"{local:%b} {local.day}, {local:%H:%M} {local.tzname()}"


def _reviewer_for_sync(slack_user_id: str) -> SlackReviewer | None:
    if not slack_user_id:
        return None
    profile = (
        ReviewerProfile.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    )
    if profile is None:
        return None
    user = profile.user
    if not user.is_active or not user.has_perm(REVIEW_PERMISSION):
        return None
    return SlackReviewer(user=user, time_zone=profile.time_zone)


reviewer_for = sync_to_async(_reviewer_for_sync)


async def _tell(payload: dict[str, Any], slack_user_id: str, text: str) -> None:
    """An ephemeral reply, seen by the clicker alone, where they clicked."""
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get(
        "channel_id"
    )
    if not channel:
        logger.info("slack: nowhere to tell %s: %s", slack_user_id, text)
        return
    try:
        await slack_client().chat_postEphemeral(channel=channel, user=slack_user_id, text=text)
    except Exception as err:
        logger.warning("slack: telling %s failed: %s", slack_user_id, err)


async def _decide(
    reviewer: SlackReviewer, ref: DecisionRef, *, action: str, reason: str = ""
) -> None:
    await actions.approval_decide(
        reviewer=reviewer.user,
        conversation_id=ref.conversation_id,
        call_id=ref.call_id,
        action=action,
        reason=reason,
        arguments_hash=ref.arguments_hash,
        channel=CHANNEL_SLACK,
    )


async def _block_action(payload: dict[str, Any], slack_user_id: str) -> None:
    found = payload.get("actions") or [{}]
    action = found[0] if isinstance(found[0], dict) else {}
    action_id = action.get("action_id")
    if action_id not in (APPROVE_ACTION, REJECT_ACTION):
        return  # "Open in the dashboard" is a link; Slack reports its click too
    ref = DecisionRef.parse(action.get("value"))
    if ref is None:
        await _tell(payload, slack_user_id, NOT_UNDERSTOOD)
        return
    reviewer = await reviewer_for(slack_user_id)
    if reviewer is None:
        await _tell(payload, slack_user_id, NOT_A_REVIEWER.format(slack_user=slack_user_id))
        return
    if action_id == REJECT_ACTION:
        mirror = await selectors.approval_get(
            conversation_id=ref.conversation_id, call_id=ref.call_id
        )
        if mirror is None:
            await _tell(payload, slack_user_id, UNKNOWN_REQUEST)
            return
        if mirror.status != mirror.Status.PENDING:
            # Said now rather than after the reviewer typed a reason.
            error = actions.already_decided(
                outcome=mirror.status,
                by=mirror.decided_by_label,
                at=mirror.decided_at,
                channel=mirror.decision_channel,
            )
            await _tell(payload, slack_user_id, error.text(format_time=slack_time))
            return
        try:
            await slack_client().views_open(
                trigger_id=str(payload.get("trigger_id") or ""),
                view=reject_modal(ref, mirror.summary),
            )
        except Exception as err:
            logger.warning("slack: opening the reject modal failed: %s", err)
            await _tell(payload, slack_user_id, "Slack did not open the form; try again.")
        return
    try:
        await _decide(reviewer, ref, action="approve")
    except UserError as err:
        await _tell(payload, slack_user_id, err.text(format_time=slack_time))


async def _reject_submitted(payload: dict[str, Any], slack_user_id: str) -> dict[str, Any] | None:
    view = payload.get("view") or {}
    ref = DecisionRef.parse(view.get("private_metadata"))
    if ref is None:
        return _modal_error(NOT_UNDERSTOOD)
    reviewer = await reviewer_for(slack_user_id)
    if reviewer is None:
        return _modal_error(NOT_A_REVIEWER.format(slack_user=slack_user_id))
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    reason = str((values.get(REASON_BLOCK) or {}).get("value") or "").strip()
    if len(reason) > REASON_MAX_CHARS:
        return _modal_error(f"At most {REASON_MAX_CHARS} characters.")
    try:
        await _decide(reviewer, ref, action="reject", reason=reason)
    except UserError as err:
        return _modal_error(err.text(format_time=reviewer.local_time))
    return None  # closes the modal; the message shows the outcome


def _modal_error(text: str) -> dict[str, Any]:
    return {"response_action": "errors", "errors": {REASON_BLOCK: text}}


async def interaction_handle(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Act on one interaction; a JSON body for Slack (a modal's errors) or None (200)."""
    team = (payload.get("team") or {}).get("id") or (payload.get("user") or {}).get("team_id")
    if settings.SLACK_TEAM_ID and team != settings.SLACK_TEAM_ID:
        raise Refused("This Slack workspace is not the one configured.")
    slack_user_id = str((payload.get("user") or {}).get("id") or "")
    kind = payload.get("type")
    if kind == "block_actions":
        await _block_action(payload, slack_user_id)
        return None
    if kind == "view_submission" and (payload.get("view") or {}).get("callback_id") == (
        REJECT_CALLBACK
    ):
        return await _reject_submitted(payload, slack_user_id)
    return None

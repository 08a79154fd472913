"""Reaching reviewers where they are: the emails and Slack messages of each approval event.

Implements `temporal_worker.ports.ApprovalChannels` for the worker's notify activity,
which calls it after the audit row is written. Each email or Slack message is a row
(`ApprovalDelivery`, unique per approval, kind, channel and recipient) claimed before it
is sent and marked sent after, so a retried activity sends only what was not sent yet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone
from slack_sdk.errors import SlackApiError

from reviews.approval_mail import MailToSend, approval_mail, mails_send
from reviews.models import Approval, ApprovalDelivery
from reviews.recipients import Reviewer, route_for
from reviews.slack.blocks import outcome_message, request_message
from reviews.slack.client import slack_client, slack_enabled
from temporal_worker.contracts.approvals import ApprovalDecided, ApprovalEvent
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.ports import Deliveries

logger = logging.getLogger(__name__)

Kind = ApprovalDelivery.Kind
Channel = ApprovalDelivery.Channel
Status = ApprovalDelivery.Status


@dataclass
class Planned:
    delivery: ApprovalDelivery
    time_zone: str = "UTC"


def _claim(
    approval: Approval, *, kind: str, channel: str, reviewer: Reviewer | None, recipient: str
) -> Planned:
    """The delivery's row, created once (the unique constraints make a retry find it)."""
    if reviewer is None:
        delivery, _ = ApprovalDelivery.objects.select_related("reviewer").get_or_create(
            approval=approval,
            kind=kind,
            channel=channel,
            reviewer=None,
            recipient=recipient,
        )
        return Planned(delivery)
    delivery, created = ApprovalDelivery.objects.select_related("reviewer").get_or_create(
        approval=approval,
        kind=kind,
        channel=channel,
        reviewer_id=reviewer.user_id,
        defaults={"recipient": recipient},
    )
    if created:  # with its reviewer, whose name the async caller reads
        delivery = ApprovalDelivery.objects.select_related("reviewer").get(pk=delivery.pk)
        delivery.approval = approval
    return Planned(delivery, reviewer.time_zone)


def deliveries_plan(*, approval: Approval, event_kind: str) -> list[Planned]:
    """Who this request or reminder goes to, and where, as delivery rows.

    A request goes to the route's reviewers by email, and to the policy's Slack channel
    or else to each reviewer's Slack direct messages. A reminder goes the same way to
    whoever is available now, and to the escalation group's reviewers, by email and DM.
    """
    route = route_for(
        tool=approval.tool, requester_id=approval.requester_id or 0, agent=approval.agent
    )
    kind = Kind.REQUEST if event_kind == "requested" else Kind.REMINDER
    slack = slack_enabled()
    planned: list[Planned] = []
    with transaction.atomic():
        for reviewer in route.reviewers:
            if reviewer.email:
                planned.append(
                    _claim(
                        approval,
                        kind=kind,
                        channel=Channel.EMAIL,
                        reviewer=reviewer,
                        recipient=reviewer.email,
                    )
                )
            if slack and not route.slack_channel and reviewer.slack_user_id:
                planned.append(
                    _claim(
                        approval,
                        kind=kind,
                        channel=Channel.SLACK,
                        reviewer=reviewer,
                        recipient=reviewer.slack_user_id,
                    )
                )
        if slack and route.slack_channel:
            planned.append(
                _claim(
                    approval,
                    kind=kind,
                    channel=Channel.SLACK,
                    reviewer=None,
                    recipient=route.slack_channel,
                )
            )
        if kind == Kind.REMINDER:
            asked = {reviewer.user_id for reviewer in route.reviewers}
            for reviewer in route.escalation:
                if reviewer.user_id in asked:
                    continue
                if reviewer.email:
                    planned.append(
                        _claim(
                            approval,
                            kind=Kind.ESCALATION,
                            channel=Channel.EMAIL,
                            reviewer=reviewer,
                            recipient=reviewer.email,
                        )
                    )
                if slack and reviewer.slack_user_id:
                    planned.append(
                        _claim(
                            approval,
                            kind=Kind.ESCALATION,
                            channel=Channel.SLACK,
                            reviewer=reviewer,
                            recipient=reviewer.slack_user_id,
                        )
                    )
    return planned


def _mails_send(planned: list[Planned]) -> dict[int, str]:
    """Compose and send the emails; the failures, by delivery id."""
    errors: dict[int, str] = {}
    mails: list[MailToSend] = []
    for item in planned:
        try:
            mails.append(
                MailToSend(
                    item.delivery, approval_mail(delivery=item.delivery, time_zone=item.time_zone)
                )
            )
        except Exception as err:
            logger.exception("approval email for delivery %s not composed", item.delivery.pk)
            errors[item.delivery.pk] = f"{type(err).__name__}: {err}"[:300]
    errors.update(mails_send(mails))
    return errors


async def _slack_post(approval: Approval, planned: list[Planned]) -> dict[int, str]:
    if not planned:
        return {}
    client = slack_client()
    errors: dict[int, str] = {}

    async def post(item: Planned) -> None:
        delivery = item.delivery
        text, blocks = request_message(approval, kind=delivery.kind)
        try:
            response = await client.chat_postMessage(
                channel=delivery.recipient, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as err:
            errors[delivery.pk] = _slack_error(err)
            return
        except Exception as err:
            errors[delivery.pk] = f"{type(err).__name__}: {err}"[:300]
            return
        delivery.slack_channel_id = str(response.get("channel") or "")
        delivery.slack_ts = str(response.get("ts") or "")

    await asyncio.gather(*(post(item) for item in planned))
    return errors


def _slack_error(err: SlackApiError) -> str:
    data = err.response.data
    if isinstance(data, dict) and data.get("error"):
        return f"Slack: {data['error']}"
    return f"Slack: HTTP {err.response.status_code}"


async def _record(planned: list[Planned], errors: dict[int, str]) -> None:
    now = timezone.now()
    for item in planned:
        delivery = item.delivery
        delivery.attempts += 1
        if delivery.pk in errors:
            delivery.status, delivery.error = Status.FAILED, errors[delivery.pk][:300]
        else:
            delivery.status, delivery.error, delivery.sent_at = Status.SENT, "", now
        await delivery.asave(
            update_fields=[
                "attempts",
                "status",
                "error",
                "sent_at",
                "slack_channel_id",
                "slack_ts",
            ]
        )


async def _send(approval: Approval, planned: list[Planned]) -> Deliveries:
    unsent = [item for item in planned if item.delivery.status != Status.SENT]
    emails = [item for item in unsent if item.delivery.channel == Channel.EMAIL]
    posts = [item for item in unsent if item.delivery.channel == Channel.SLACK]
    mail_errors, slack_errors = await asyncio.gather(
        sync_to_async(_mails_send)(emails) if emails else _nothing(),
        _slack_post(approval, posts),
    )
    errors = {**mail_errors, **slack_errors}
    await _record(unsent, errors)
    for item in unsent:
        if item.delivery.pk in errors:
            logger.warning(
                "approval %s: %s failed: %s",
                approval.pk,
                item.delivery.asked,
                errors[item.delivery.pk],
            )
    return Deliveries(
        asked=[item.delivery.asked for item in planned if item.delivery.pk not in errors],
        failed=[item.delivery.asked for item in planned if item.delivery.pk in errors],
    )


async def _nothing() -> dict[int, str]:
    return {}


async def _outcome_show(approval: Approval, decision: ApprovalDecided) -> Deliveries:
    """Every Slack message about the approval, decided in place (chat.update)."""
    if not slack_enabled():
        return Deliveries()
    messages = [
        delivery
        async for delivery in approval.deliveries.select_related("reviewer")
        .filter(channel=Channel.SLACK, status=Status.SENT, outcome_shown_at__isnull=True)
        .exclude(slack_ts="")
    ]
    if not messages:
        return Deliveries()
    client = slack_client()
    text, blocks = outcome_message(approval, decision)
    shown: list[str] = []
    failed: list[str] = []

    async def update(delivery: ApprovalDelivery) -> None:
        try:
            await client.chat_update(
                channel=delivery.slack_channel_id, ts=delivery.slack_ts, text=text, blocks=blocks
            )
        except Exception as err:
            logger.warning("approval %s: updating %s failed: %s", approval.pk, delivery.asked, err)
            failed.append(delivery.asked)
            return
        delivery.outcome_shown_at = timezone.now()
        await delivery.asave(update_fields=["outcome_shown_at"])
        shown.append(delivery.asked)

    await asyncio.gather(*(update(delivery) for delivery in messages))
    return Deliveries(asked=shown, failed=failed)


class ApprovalNotifier:
    """Implements `temporal_worker.ports.ApprovalChannels` with email and Slack."""

    async def deliver(self, event: ApprovalEvent) -> Deliveries:
        pending = event.approval
        approval = (
            await Approval.objects.select_related("requester")
            .filter(
                workflow_id=conversation_workflow_id(pending.conversation_id),
                call_id=pending.call_id,
            )
            .afirst()
        )
        if approval is None:  # the audit writes it first; nothing to tell without it
            return Deliveries()
        if event.kind in ("requested", "reminder"):
            planned = await sync_to_async(deliveries_plan)(approval=approval, event_kind=event.kind)
            return await _send(approval, planned)
        if event.kind == "decided" and event.decision is not None:
            return await _outcome_show(approval, event.decision)
        return Deliveries()

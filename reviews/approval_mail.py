"""Approval emails: what a reviewer reads (summary, arguments, the agent's reason,
deadline in their time zone) and the two signed links, Approve and Reject."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from reviews.email_links import link_for, link_url
from reviews.models import Approval, ApprovalDelivery
from reviews.selectors import pretty_json_value

_WHITESPACE = re.compile(r"\s+")
SUBJECT_MAX_CHARS = 150


@dataclass
class MailToSend:
    delivery: ApprovalDelivery
    message: EmailMultiAlternatives


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _message_id(delivery: ApprovalDelivery) -> str:
    # Stable per delivery: should a crash between the server's "250 OK" and our record of
    # it resend the mail, the reader's client shows one message.
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"<approval-{delivery.approval_id}.{delivery.pk}@{host}>"


def approval_mail(*, delivery: ApprovalDelivery, time_zone: str) -> EmailMultiAlternatives:
    """The email for one delivery (request, reminder or escalation) to its reviewer."""
    approval: Approval = delivery.approval
    assert delivery.reviewer_id is not None
    link = link_for(approval=approval, reviewer_id=delivery.reviewer_id)
    context = {
        "approval": approval,
        "kind": delivery.kind,
        "requester": approval.requester.get_username() if approval.requester else "",
        "arguments_pretty": pretty_json_value(approval.arguments),
        "approve_url": link_url(link, "approve"),
        "reject_url": link_url(link, "reject"),
        "dashboard_url": settings.SITE_URL
        + reverse("reviews:detail", args=[approval.conversation_id, approval.call_id]),
        "time_zone": time_zone,
    }
    with timezone.override(_zone(time_zone)):
        rendered_subject = render_to_string("reviews/email/approval_subject.txt", context)
        text = render_to_string("reviews/email/approval.txt", context)
        html = render_to_string("reviews/email/approval.html", context)
    # The summary comes from the model's arguments: one line, never a header injection.
    subject = _WHITESPACE.sub(" ", rendered_subject).strip()[:SUBJECT_MAX_CHARS]
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.APPROVAL_EMAIL_FROM,
        to=[delivery.recipient],
        headers={"Message-ID": _message_id(delivery), "Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return message


def mails_send(mails: list[MailToSend]) -> dict[int, str]:
    """Send over one connection; each mail's failure is its own. The errors, by delivery id."""
    errors: dict[int, str] = {}
    if not mails:
        return errors
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except Exception as err:
        return {mail.delivery.pk: _describe(err) for mail in mails}
    try:
        for mail in mails:
            try:
                connection.send_messages([mail.message])
            except Exception as err:
                errors[mail.delivery.pk] = _describe(err)
    finally:
        try:
            connection.close()
        except Exception:  # the mails are sent; a failed QUIT changes nothing
            pass
    return errors


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"[:300]

"""Configuration mistakes `manage.py check` (and every start) points out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


@register()
def approval_channels_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    if settings.APPROVAL_REMINDER_EMAILS:
        found.append(
            Warning(
                "APPROVAL_REMINDER_EMAILS is retired and ignored: reminders now go to the "
                "reviewers each approval was routed to.",
                hint="Give each of these people a user with the review permission (and, for "
                "another address, a reviewer profile) in the admin; an approval policy's "
                "reviewer group or escalation group names who is asked and reminded. Then "
                "unset APPROVAL_REMINDER_EMAILS.",
                id="reviews.W001",
            )
        )
    if not settings.DEBUG and (urlsplit(settings.SITE_URL).hostname or "") in LOOPBACK_HOSTS:
        found.append(
            Warning(
                f"SITE_URL is {settings.SITE_URL!r}: links in approval emails and Slack "
                "messages would point at the reviewer's own machine.",
                hint="Set SITE_URL to the site's public address, e.g. https://chat.example.com.",
                id="reviews.W002",
            )
        )
    if bool(settings.SLACK_BOT_TOKEN) != bool(settings.SLACK_SIGNING_SECRET):
        found.append(
            Warning(
                "Slack approvals are off: they need both SLACK_BOT_TOKEN and "
                "SLACK_SIGNING_SECRET (one is set).",
                id="reviews.W003",
            )
        )
    return found

"""The Slack Web API client (slack-sdk), configured from settings; off without them."""

from __future__ import annotations

from django.conf import settings
from slack_sdk.web.async_client import AsyncWebClient

# Slack answers in well under a second; a stuck call must not hold the notify activity.
SLACK_TIMEOUT_SECONDS = 10


def slack_enabled() -> bool:
    """Both the bot token and the signing secret: posting without verifying the clicks
    (or the other way round) would be half a feature."""
    return bool(settings.SLACK_BOT_TOKEN and settings.SLACK_SIGNING_SECRET)


def slack_client() -> AsyncWebClient:
    return AsyncWebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_URL,
        timeout=SLACK_TIMEOUT_SECONDS,
    )

"""Approval channels' real parts, each pointed at by the settings for one test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.reviews.channels_support import Mailbox, SlackStandIn

SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_BOT_TOKEN = "xoxb-test-0000-approvals"


@pytest.fixture
def mailbox(settings: SettingsWrapper) -> Iterator[Mailbox]:
    """A real SMTP server; Django's SMTP backend sends to it, and links point at the
    test client's host."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    box = Mailbox()
    box.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = box.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.SITE_URL = "http://testserver"
    try:
        yield box
    finally:
        box.stop()


@pytest_asyncio.fixture
async def slack(settings: SettingsWrapper) -> AsyncIterator[SlackStandIn]:
    """Slack on: the bot token and signing secret set, the Web API at the stand-in."""
    stand_in = SlackStandIn()
    await stand_in.start()
    settings.SLACK_BOT_TOKEN = SLACK_BOT_TOKEN
    settings.SLACK_SIGNING_SECRET = SLACK_SIGNING_SECRET
    settings.SLACK_API_URL = stand_in.base_url
    settings.SLACK_TEAM_ID = ""
    settings.SITE_URL = "http://testserver"
    try:
        yield stand_in
    finally:
        await stand_in.stop()

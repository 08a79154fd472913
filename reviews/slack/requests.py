"""Is this request from Slack, now, and the first time? Slack's signature over the
timestamp and body (slack-sdk's SignatureVerifier, within five minutes), then a record
of each signature, so the same request replayed inside that window is refused."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone
from slack_sdk.signature import SignatureVerifier

from reviews.models import SlackRequestSeen

# SignatureVerifier's own window; signatures are kept twice as long.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
SIGNATURE_MAX_CHARS = 80


class SlackRequestRefused(Exception):
    """Not a request Slack sent just now: the reason, for the log (Slack reads nothing)."""


async def slack_request_verify(*, body: bytes, headers: Mapping[str, str]) -> None:
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp.isdigit() or not signature or len(signature) > SIGNATURE_MAX_CHARS:
        raise SlackRequestRefused("no signature or timestamp")
    if abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS:
        raise SlackRequestRefused("stale timestamp")
    if not SignatureVerifier(settings.SLACK_SIGNING_SECRET).is_valid(body, timestamp, signature):
        raise SlackRequestRefused("bad signature")
    now = timezone.now()
    try:
        await SlackRequestSeen.objects.acreate(signature=signature, received_at=now)
    except IntegrityError as err:
        raise SlackRequestRefused("replayed") from err
    keep = dt.timedelta(seconds=2 * TIMESTAMP_TOLERANCE_SECONDS)
    await SlackRequestSeen.objects.filter(received_at__lt=now - keep).adelete()

"""Slack's interactivity endpoint: the request URL in the app's manifest."""

from __future__ import annotations

import json
import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reviews.slack.client import slack_enabled
from reviews.slack.interactions import interaction_handle
from reviews.slack.requests import SlackRequestRefused, slack_request_verify
from temporal_worker.contracts.errors import UserError

logger = logging.getLogger(__name__)


# Slack cannot send a CSRF token: its signature over the body authenticates it instead.
@csrf_exempt
@require_POST
async def slack_interactivity(request: HttpRequest) -> HttpResponse:
    if not slack_enabled():
        raise Http404("Slack approvals are off.")
    body = request.body
    try:
        await slack_request_verify(body=body, headers=request.headers)
    except SlackRequestRefused as err:
        logger.warning("slack interactivity refused: %s", err)
        return HttpResponse("Not a request from Slack.", status=401, content_type="text/plain")
    try:
        payload = json.loads(request.POST.get("payload", ""))
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return HttpResponse("No payload.", status=400, content_type="text/plain")
    try:
        answer = await interaction_handle(payload)
    except UserError as err:
        logger.warning("slack interactivity refused: %s", err)
        return HttpResponse(str(err), status=403, content_type="text/plain")
    # Slack wants an answer within three seconds: decisions are one Update (tens of ms).
    return JsonResponse(answer) if answer is not None else HttpResponse(status=200)

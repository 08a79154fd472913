"""Project-level endpoints."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from temporal_worker import client


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@require_GET
@login_required
async def service_status(request: HttpRequest) -> HttpResponse:
    """The site-wide banner: shown while Temporal is unreachable, gone when it is back."""
    down = not await client.temporal_reachable()
    return TemplateResponse(request, "_service_status.html", {"service_down": down})

"""Project-level endpoints."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})

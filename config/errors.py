"""The one place user-facing errors become responses, and the reader's time zone.

Services and the Temporal client raise `temporal_worker.contracts.errors.UserError`;
a view that has nowhere better to show it lets it propagate, and this middleware
answers: an htmx request gets the message in the page's flash region, a page gets an
error page with the error's HTTP status. Views that show an error in place (the
composer, a reviewer's result box) pass the error to their template, which renders
it with the same `user_error_text` filter. Times read in the reader's time zone,
which the browser reports in the `tz` cookie.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django_htmx.http import reswap, retarget

from temporal_worker.contracts.errors import NotFound, UserError

logger = logging.getLogger(__name__)

TIMEZONE_COOKIE = "tz"


def reader_timezone(cookies: Mapping[str, str]) -> zoneinfo.ZoneInfo | None:
    name = unquote(cookies.get(TIMEZONE_COOKIE, ""))
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def user_error_response(request: HttpRequest, error: UserError) -> HttpResponse:
    """The default rendering: the flash region for htmx, an error page otherwise."""
    if getattr(request, "htmx", False) and not isinstance(error, NotFound):
        response = TemplateResponse(
            request, "errors/_flash.html", {"error": error, "level": "error"}
        )
        # htmx ignores 4xx bodies unless told otherwise: answer 200 and place it. A
        # NotFound stays a 404 whoever asks (it never says whether the thing exists).
        return reswap(retarget(response, "#flash"), "outerHTML")
    return TemplateResponse(
        request, "errors/user_error.html", {"error": error}, status=error.http_status
    )


class ReaderTimezoneSocketMiddleware:
    """The same time zone for a websocket's whole life (the consumer's renders read it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        zone = reader_timezone(scope.get("cookies") or {})
        if zone is None:
            return await self.inner(scope, receive, send)
        with timezone.override(zone):
            return await self.inner(scope, receive, send)


class UserErrorMiddleware:
    """Renders a `UserError` that escaped a view, and activates the reader's time zone."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = reader_timezone(request.COOKIES)
        if zone is None:
            return await self.get_response(request)
        # The view and its template render inside: times in the body are the reader's.
        with timezone.override(zone):
            return await self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UserError):
            return None
        # An expected outcome (refused, not found, unavailable): one line, no traceback,
        # and Django's own "Not Found: ..." line is not added to it.
        logger.info(
            "%s %s: %s (%s)", request.method, request.path, type(exception).__name__, exception.code
        )
        response = user_error_response(request, exception)
        if isinstance(response, TemplateResponse):
            response.render()
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response

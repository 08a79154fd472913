"""Sends a session that still owes its second factor to verification or enrolment, and
refuses an approval decision from such a session outright.

It keys on URL names: the reviews app cannot import the project (config sits above it
in the import contracts), so the project names the views that move money here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from config.accounts.second_factor import Step, next_step, standing_for
from config.accounts.step_up import step_up_of
from config.errors import user_error_response
from reviews.step_up import presenting
from temporal_worker.contracts.errors import Refused

# Views whose POST decides or claims approvals: refused outright (not redirected) to a
# session that owes its second factor, checked against the database on every request.
DECISION_VIEWS = frozenset(
    {"reviews:decide", "reviews:claim", "reviews:bulk", "reviews:email_decision"}
)
# Reachable before the second factor: logging in and out, the second-factor pages and
# the passkey ceremony they use, and the probes.
OPEN_VIEWS = frozenset(
    {"login", "logout", "admin:login", "admin:logout", "healthz", "service-status"}
)
OPEN_NAMESPACES = frozenset({"accounts", "otp_webauthn"})


class SecondFactorRequired(Refused):
    http_status = 403


def _refusal(step: Step) -> SecondFactorRequired:
    if step is Step.VERIFY:
        return SecondFactorRequired(
            "Deciding approvals needs your second factor in this session: verify it on "
            "{url}, then try again.",
            code="SecondFactorRequired",
            url=reverse("accounts:verify"),
        )
    return SecondFactorRequired(
        "Your account can decide approvals, so it needs a second factor: set one up on "
        "{url}, then try again.",
        code="SecondFactorRequired",
        url=reverse("accounts:second-factor"),
    )


class SecondFactorMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        # The session's step-up, for the approvals a policy guards (reviews.step_up); the
        # email link's page reads it on GET too, to ask before the link is used.
        with presenting(await step_up_of(request)):
            return await self.get_response(request)

    async def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or match.view_name in OPEN_VIEWS or match.namespace in OPEN_NAMESPACES:
            return None
        user = await request.auser()
        if not isinstance(user, AbstractBaseUser) or not user.is_authenticated:
            return None
        decision = match.view_name in DECISION_VIEWS and request.method == "POST"
        step = next_step(user, await standing_for(request, user, fresh=decision))
        if step is not Step.PASSED and not decision:
            # What the session remembers may be out of date (a device just added).
            step = next_step(user, await standing_for(request, user, fresh=True))
        if step is Step.PASSED:
            return None
        if decision:
            return user_error_response(request, _refusal(step))
        return self._send_to(request, step)

    @staticmethod
    def _send_to(request: HttpRequest, step: Step) -> HttpResponse:
        page = reverse("accounts:verify" if step is Step.VERIFY else "accounts:second-factor")
        htmx = getattr(request, "htmx", None)
        if htmx:
            here = htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(f"{page}?{_next(here)}")
        return redirect(f"{page}?{_next(request.get_full_path())}")


def _next(path: str) -> str:
    return urlencode({"next": path})

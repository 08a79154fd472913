"""The answer to a locked-out login (site or admin): the login page, saying how long.

django-axes counts failures per username and per address (settings: AXES_*); its
middleware calls `lockout_response` when a login is refused for too many of them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from axes.attempts import get_cool_off_threshold
from axes.helpers import (
    get_client_ip_address,
    get_client_parameters,
    get_client_user_agent,
    get_client_username,
    get_cool_off,
    get_failure_limit,
)
from axes.models import AccessAttempt
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone


@dataclass(frozen=True)
class Lockout:
    until: dt.datetime
    minutes: int  # rounded up: "try again in 1 minute" is never too early


def lockout_until(request: HttpRequest, username: str | None) -> dt.datetime:
    """When this username and this address may try again: for each that is locked, the
    moment its failures since the cool-off threshold drop below the limit."""
    now = timezone.now()
    cool_off = get_cool_off(request) or dt.timedelta(0)
    credentials = {"username": username}
    limit = get_failure_limit(request, credentials)
    ip_address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    user_agent = getattr(request, "axes_user_agent", None) or get_client_user_agent(request)
    threshold = get_cool_off_threshold(request)
    until = now
    for filter_kwargs in get_client_parameters(
        username or "", ip_address or "", user_agent, request, credentials
    ):
        rows = AccessAttempt.objects.filter(**filter_kwargs, attempt_time__gte=threshold)
        failures = 0
        # A row's time is its latest failure: the newest rows are the last to expire.
        for attempt_time, count in rows.order_by("-attempt_time").values_list(
            "attempt_time", "failures_since_start"
        ):
            failures += count
            if failures >= limit:
                until = max(until, attempt_time + cool_off)
                break
    return until


def lockout_response(request: HttpRequest, *_: object) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE. axes passes (request, response, credentials) from a sync
    chain and (request, credentials) from an async one; neither is needed here."""
    username = get_client_username(request)
    until = lockout_until(request, username)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    admin_login = request.path == reverse("admin:login")
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if admin_login and not next_url:
        next_url = reverse("admin:index")
    context = {
        "form": AuthenticationForm(request, initial={"username": username or ""}),
        "next": next_url,
        "lockout": Lockout(until=until, minutes=math.ceil(seconds / 60)),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response

"""The step-up a session holds: which method proved it was the person, and when.

Written by the step-up page (config.accounts.views.step_up); read on every request by
the middleware, which presents it to the reviews app (reviews.step_up) for decisions."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from reviews.step_up import StepUpProof

STEP_UP_SESSION_KEY = "accounts.step_up"


async def step_up_record(request: HttpRequest, *, user: AbstractBaseUser, method: str) -> None:
    await request.session.aset(
        STEP_UP_SESSION_KEY,
        {"user": user.pk, "method": method, "at": timezone.now().isoformat()},
    )


async def step_up_of(request: HttpRequest) -> StepUpProof | None:
    """The session's step-up, if any (its age is judged where it is used)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    held = await session.aget(STEP_UP_SESSION_KEY)
    if not isinstance(held, dict):
        return None
    try:
        return StepUpProof(
            user_id=int(held["user"]),
            method=str(held["method"]),
            at=dt.datetime.fromisoformat(str(held["at"])),
        )
    except (KeyError, TypeError, ValueError):
        return None

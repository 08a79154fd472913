"""Step-up for large approvals: a policy (ApprovalPolicy.step_up_*) may ask the reviewer
to prove it is them again, moments before approving, whatever the channel.

The proof lives in the reviewer's session; the project's middleware
(config.accounts.middleware) presents it for the request through `presented_proof`, since
this app cannot import the project. Every decision goes through
`reviews.actions.approval_decide`, which calls `step_up_for` here: the dashboard, the bulk
form, an email link's page and Slack (which cannot ask, so it is refused) alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from reviews.models import ApprovalPolicy
from temporal_worker.contracts.approvals import CHANNEL_SLACK, STEP_UP_METHODS
from temporal_worker.contracts.errors import Code, Refused
from temporal_worker.tools.registry import tool_registry


@dataclass(frozen=True)
class StepUpProof:
    user_id: int
    method: str
    at: dt.datetime

    def fresh_for(self, user: AbstractBaseUser, now: dt.datetime | None = None) -> bool:
        age = (now or timezone.now()) - self.at
        max_age = dt.timedelta(seconds=settings.STEP_UP_MAX_AGE_SECONDS)
        return (
            self.user_id == user.pk
            and self.method in STEP_UP_METHODS
            and dt.timedelta(0) <= age <= max_age
        )


presented_proof: ContextVar[StepUpProof | None] = ContextVar("presented_step_up", default=None)


@contextlib.contextmanager
def presenting(proof: StepUpProof | None) -> Iterator[None]:
    """For the length of one request: the step-up its session holds (None: none)."""
    token = presented_proof.set(proof)
    try:
        yield
    finally:
        presented_proof.reset(token)


async def policies_ask_step_up() -> bool:
    """Whether any policy asks for step-up (otherwise a decision needs no extra Query)."""
    return await ApprovalPolicy.objects.filter(
        Q(step_up_always=True) | Q(step_up_above__isnull=False)
    ).aexists()


async def step_up_needed(*, tool: str, arguments: list[dict[str, Any]]) -> bool:
    """Whether approving `tool` with any of these arguments (the agent's, and a reviewer's
    edit) needs a fresh step-up under the tool's policy."""
    policy = await ApprovalPolicy.objects.filter(tool_name=tool).afirst()
    if policy is None:
        return False
    definition = tool_registry().get(tool)
    name = definition.threshold_argument if definition is not None else None
    return any(policy.needs_step_up(_amount(args.get(name or ""))) for args in arguments)


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except (InvalidOperation, ValueError):
        return None


def step_up_for(*, reviewer: AbstractBaseUser, channel: str, back_to: str) -> str:
    """The method of the reviewer's fresh step-up, to record with the decision; refused
    (Code.STEP_UP_REQUIRED) without one, or from Slack, which cannot ask for it."""
    if channel == CHANNEL_SLACK:
        raise Refused(
            "Approving this needs a fresh second factor, which Slack cannot ask for: "
            "approve it on the web at {url}.",
            code=Code.STEP_UP_REQUIRED,
            url=f"{settings.SITE_URL}{back_to}",
        )
    proof = presented_proof.get()
    if proof is None or not proof.fresh_for(reviewer):
        raise Refused(
            "Approving this needs you to confirm it is you (your second factor, or your "
            "password if your account has none) within the last {minutes} minutes: do it on "
            "{url}, then approve again.",
            code=Code.STEP_UP_REQUIRED,
            minutes=settings.STEP_UP_MAX_AGE_SECONDS // 60,
            url=step_up_url(back_to),
        )
    if proof.method == "password" and settings.REQUIRE_SECOND_FACTOR:
        raise Refused(
            "Approving this needs a second factor, and your account has none: set one up on "
            "{url}, then approve again.",
            code=Code.STEP_UP_REQUIRED,
            url=reverse("accounts:second-factor"),
        )
    return proof.method


def step_up_url(next_url: str) -> str:
    return f"{reverse('accounts:step-up')}?{urlencode({'next': next_url})}"

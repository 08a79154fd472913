"""Who owes a second factor, and what this session still has to do about it.

A person with a device (an authenticator app or a passkey, or recovery codes) proves it
after every password login. Reviewers and staff must have one when
`settings.REQUIRE_SECOND_FACTOR` is on. django-otp's middleware marks the session that
passed (`user.otp_device`); this module only reads the rules.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

REVIEW_PERMISSION = "reviews.review_approvals"
# The standing of the signed-in user, kept for the session: read on every request, it
# changes only through the pages below (which refresh it) or an admin (next login).
STANDING_SESSION_KEY = "accounts.standing"

User = AbstractBaseUser | AnonymousUser


class Step(enum.Enum):
    PASSED = "passed"
    VERIFY = "verify"  # has a device: prove it for this session
    ENROL = "enrol"  # must have a device and has none (or only recovery codes)


@dataclass(frozen=True)
class Standing:
    user_id: int
    # An authenticator app or a passkey.
    primary: bool
    # Unused recovery codes.
    recovery: bool
    reviewer: bool


def session_verified(user: User) -> bool:
    """Whether this session passed the second factor (django-otp's middleware says)."""
    return getattr(user, "otp_device", None) is not None


def holds_approval_power(user: User, standing: Standing) -> bool:
    """Reviewers and staff: the people a second factor is required of."""
    return bool(getattr(user, "is_staff", False)) or standing.reviewer


async def standing_read(user: AbstractBaseUser) -> Standing:
    primary = (
        await TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).aexists()
        or await WebAuthnCredential.objects.filter(user_id=user.pk, confirmed=True).aexists()
    )
    recovery = await StaticDevice.objects.filter(
        user_id=user.pk, confirmed=True, token_set__isnull=False
    ).aexists()
    reviewer = isinstance(user, PermissionsMixin) and await user.ahas_perm(REVIEW_PERMISSION)
    return Standing(user_id=user.pk, primary=primary, recovery=recovery, reviewer=reviewer)


async def standing_for(
    request: HttpRequest, user: AbstractBaseUser, *, fresh: bool = False
) -> Standing:
    """The user's standing, from the session unless `fresh` (or it belongs to someone else)."""
    if not fresh:
        kept: dict[str, Any] | None = await request.session.aget(STANDING_SESSION_KEY)
        if kept and kept.get("user_id") == user.pk:
            return Standing(**kept)
    standing = await standing_read(user)
    await request.session.aset(STANDING_SESSION_KEY, asdict(standing))
    return standing


async def standing_refresh(request: HttpRequest, user: AbstractBaseUser) -> Standing:
    return await standing_for(request, user, fresh=True)


def next_step(user: User, standing: Standing) -> Step:
    if not session_verified(user) and (standing.primary or standing.recovery):
        return Step.VERIFY
    if (
        settings.REQUIRE_SECOND_FACTOR
        and holds_approval_power(user, standing)
        and not standing.primary
    ):
        return Step.ENROL
    return Step.PASSED

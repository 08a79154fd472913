"""A person's second-factor devices: set up, check, list, remove (django-otp's models).

Checks run in one transaction with the device row locked, as django-otp's own
`verify_token` does, so two requests cannot both spend one code; its throttling (a
doubling wait after each wrong code) and TOTP's refusal of an already used code apply.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import time
from dataclasses import dataclass

import segno
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django_otp import login as otp_login
from django_otp.models import Device, VerifyNotAllowed
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key
from django_otp_webauthn.models import WebAuthnCredential

from temporal_worker.contracts.errors import Refused

RECOVERY_CODE_COUNT = 10
RECOVERY_DEVICE_NAME = "Recovery codes"
TOTP_DEVICE_NAME = "Authenticator app"


class CodeRefused(Refused):
    """A wrong or used code, or one tried too soon after a wrong one (then `wait`)."""


@dataclass(frozen=True)
class DeviceRow:
    persistent_id: str
    kind: str  # "totp" or "passkey"
    name: str
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    in_use: bool  # this session was verified with it


def _throttled(device: Device) -> CodeRefused | None:
    allowed, extra = device.verify_is_allowed()
    if allowed:
        return None
    extra = extra or {}
    if extra.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS and extra.get("locked_until"):
        wait = math.ceil((extra["locked_until"] - timezone.now()).total_seconds())
        return CodeRefused(
            "Too many wrong codes: try again in {wait}.",
            code="Throttled",
            wait=f"{wait} second{pluralize(wait)}"
            if wait < 120
            else f"{math.ceil(wait / 60)} minutes",
            until=extra["locked_until"],
        )
    return CodeRefused("This device cannot be used right now.", code="NotAllowed")


def _verify(
    request: HttpRequest,
    model: type[TOTPDevice] | type[StaticDevice],
    user: AbstractBaseUser,
    token: str,
    wrong: str,
) -> Device:
    """The user's first device of `model` that accepts `token`; the session is then
    verified with it. A refusal is raised after the transaction, which keeps the
    failure the device counted (its throttling)."""
    refusal: CodeRefused = CodeRefused(wrong, code="WrongCode")
    with transaction.atomic():
        devices = model.objects.select_for_update().filter(user_id=user.pk, confirmed=True)
        for device in devices.order_by("id"):
            throttled = _throttled(device)
            if throttled is not None:
                refusal = throttled
            elif device.verify_token(token):
                otp_login(request, device)
                return device
    raise refusal


def totp_verify(request: HttpRequest, *, user: AbstractBaseUser, code: str) -> Device:
    return _verify(
        request,
        TOTPDevice,
        user,
        code,
        "That code is not right, or was already used. Enter the code your app shows now.",
    )


def recovery_code_verify(request: HttpRequest, *, user: AbstractBaseUser, code: str) -> Device:
    """Spends one recovery code (each works once)."""
    return _verify(
        request, StaticDevice, user, code, "That recovery code is not right, or was already used."
    )


# --- the authenticator app ---------------------------------------------------------------


def totp_key_new() -> str:
    """A new secret (hex, as TOTPDevice stores it); kept in the session until confirmed."""
    return default_key()


def totp_device_unsaved(*, user: AbstractBaseUser, key: str) -> TOTPDevice:
    return TOTPDevice(user=user, name=TOTP_DEVICE_NAME, key=key)


def totp_secret(device: TOTPDevice) -> str:
    """The secret as people type it into an app (base32, in groups of four)."""
    text = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def totp_qr_svg(device: TOTPDevice) -> SafeString:
    """The otpauth:// URL as an inline SVG QR code, drawn here (no outside service)."""
    svg = segno.make(device.config_url, error="m").svg_inline(
        scale=4, border=2, dark="#111", light="#fff", title="QR code for your authenticator app"
    )
    # segno draws paths only; the title is ours.
    return mark_safe(svg)


def totp_confirm(
    request: HttpRequest, *, user: AbstractBaseUser, key: str, code: str
) -> TOTPDevice:
    """Saves the app being set up once it shows a right code (proof it holds the secret),
    and verifies the session with it. That code cannot be used again to log in. Not
    throttled: the page shows whoever reaches it the secret anyway."""
    device = totp_device_unsaved(user=user, key=key)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if not totp.verify(int(code), device.tolerance):
        raise CodeRefused(
            "That code is not right. Enter the 6 digits your app shows now.", code="WrongCode"
        )
    device.last_t = totp.t()
    device.drift = totp.drift
    device.confirmed = True
    device.save()
    otp_login(request, device)
    return device


# --- recovery codes ----------------------------------------------------------------------


def recovery_codes(*, user: AbstractBaseUser) -> list[str]:
    return list(
        StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True)
        .order_by("id")
        .values_list("token", flat=True)
    )


def recovery_codes_regenerate(*, user: AbstractBaseUser) -> list[str]:
    """New codes; the old ones stop working."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.select_for_update().get_or_create(
            user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
        )
        StaticDevice.objects.filter(user_id=user.pk).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        tokens = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=t) for t in tokens])
        if not device.confirmed:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
    return tokens


# --- listing and removing ----------------------------------------------------------------


def devices_list(*, user: AbstractBaseUser, session_device: Device | None) -> list[DeviceRow]:
    in_use = session_device.persistent_id if session_device is not None else ""
    rows = [
        DeviceRow(
            persistent_id=d.persistent_id,
            kind="totp",
            name=d.name,
            created_at=d.created_at,
            last_used_at=d.last_used_at,
            in_use=d.persistent_id == in_use,
        )
        for d in TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("id")
    ]
    rows += [
        DeviceRow(
            persistent_id=d.persistent_id,
            kind="passkey",
            name=d.name,
            created_at=d.created_at,
            last_used_at=d.last_used_at,
            in_use=d.persistent_id == in_use,
        )
        for d in WebAuthnCredential.objects.filter(user_id=user.pk, confirmed=True).order_by("id")
    ]
    return rows


def device_remove(
    *, user: AbstractBaseUser, persistent_id: str, session_device: Device | None
) -> None:
    """Removes an app or a passkey; with the last of them go the recovery codes."""
    if session_device is not None and session_device.persistent_id == persistent_id:
        raise Refused(
            "This session was verified with it: log in with another method to remove it.",
            code="InUse",
        )
    device = Device.from_persistent_id(persistent_id)
    if not isinstance(device, TOTPDevice | WebAuthnCredential) or device.user_id != user.pk:
        raise Refused("No such device on your account.", code="UnknownDevice")
    with transaction.atomic():
        device.delete()
        primary_left = (
            TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists()
            or WebAuthnCredential.objects.filter(user_id=user.pk, confirmed=True).exists()
        )
        if not primary_left:
            StaticDevice.objects.filter(user_id=user.pk).delete()


async def has_app(*, user: AbstractBaseUser) -> bool:
    return await TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).aexists()


async def has_passkey(*, user: AbstractBaseUser) -> bool:
    return await WebAuthnCredential.objects.filter(user_id=user.pk, confirmed=True).aexists()


async def recovery_codes_left(*, user: AbstractBaseUser) -> int:
    return await StaticToken.objects.filter(
        device__user_id=user.pk, device__confirmed=True
    ).acount()

"""For tests that walk the whole admin (tests/security/test_authorisation_matrix.py): one
row of every model the accounts' libraries show there (axes, django-otp, passkeys)."""

from __future__ import annotations

from django.db import models

from tests.factories import auser_create


async def account_admin_objects() -> list[models.Model]:
    """Owned by a user of their own: someone with a device is asked to verify it."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from django_otp_webauthn.models import WebAuthnCredential

    user = await auser_create(username="enrolled")
    where = {
        "username": user.get_username(),
        "ip_address": "203.0.113.1",
        "user_agent": "matrix",
        "http_accept": "text/html",
        "path_info": "/accounts/login/",
    }
    return [
        await AccessAttempt.objects.acreate(
            **where, get_data="", post_data="", failures_since_start=1
        ),
        await AccessFailureLog.objects.acreate(**where, locked_out=False),
        await AccessLog.objects.acreate(**where, session_hash="matrix"),
        await TOTPDevice.objects.acreate(user=user, name="Authenticator app"),
        await StaticDevice.objects.acreate(user=user, name="Recovery codes"),
        await WebAuthnCredential.objects.acreate(
            user=user, name="Passkey", credential_id=b"matrix", public_key=b"matrix"
        ),
    ]

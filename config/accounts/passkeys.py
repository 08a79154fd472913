"""Passkeys (django-otp-webauthn): which domain they belong to and which origins may
use them. With PASSKEY_RP_ID and PASSKEY_ORIGINS unset, the host the request came to
(already limited by ALLOWED_HOSTS) and its own origin."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port
from django_otp_webauthn.helpers import WebAuthnHelper


def request_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def relying_party_id(request: HttpRequest) -> str:
    """OTP_WEBAUTHN_RP_ID_CALLABLE."""
    if settings.PASSKEY_RP_ID:
        return str(settings.PASSKEY_RP_ID)
    domain, _port = split_domain_port(request.get_host())
    return domain


def passkeys_possible(request: HttpRequest) -> bool:
    """Browsers refuse passkeys for an IP address (http://127.0.0.1:8000)."""
    try:
        ipaddress.ip_address(relying_party_id(request).strip("[]"))
    except ValueError:
        return True
    return False


class PasskeyHelper(WebAuthnHelper):
    def get_allowed_origins(self) -> list[str]:
        return list(settings.PASSKEY_ORIGINS) or [request_origin(self.request)]

"""The websocket side of the second factor: a session that still owes it (a password
alone, or a reviewer who must enrol) opens no socket, so the inbox's live rows never
reach it. Sits inside Channels' AuthMiddlewareStack (it reads `scope["user"]`)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.base_user import AbstractBaseUser
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from config.accounts.second_factor import Step, next_step, standing_read

# Before accept(), a close code becomes a refused handshake (HTTP 403).
CLOSE_SECOND_FACTOR = 4403


class _Refuse(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close(code=CLOSE_SECOND_FACTOR)


async def _mark_verified(scope: dict[str, Any], user: AbstractBaseUser) -> None:
    """What django-otp's HTTP middleware does: user.otp_device from the session."""
    session = scope.get("session")
    persistent_id = (
        await database_sync_to_async(session.get)(DEVICE_ID_SESSION_KEY) if session else None
    )
    device = await Device.afrom_persistent_id(persistent_id) if persistent_id else None
    if device is not None and (device.user_id != user.pk or not device.confirmed):
        device = None
    user.otp_device = device  # type: ignore[attr-defined]


class SecondFactorSocketMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.refuse = _Refuse.as_asgi()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        if isinstance(user, AbstractBaseUser) and user.is_authenticated:
            await _mark_verified(scope, user)
            if next_step(user, await standing_read(user)) is not Step.PASSED:
                return await self.refuse(scope, receive, send)
        return await self.inner(scope, receive, send)

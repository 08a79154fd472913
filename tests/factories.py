"""Model factories for tests."""

from __future__ import annotations

import itertools

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

_counter = itertools.count(1)
PASSWORD = "test-pass-123"


def user_create(*, username: str | None = None, **extra: object) -> AbstractBaseUser:
    name = username or f"user{next(_counter)}"
    return get_user_model().objects.create_user(
        username=name, password=PASSWORD, email=f"{name}@example.com", **extra
    )


async def auser_create(*, username: str | None = None, **extra: object) -> AbstractBaseUser:
    """`user_create` for async tests (the ORM's create_user is sync)."""
    return await sync_to_async(user_create)(username=username, **extra)

"""Model factories for tests."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

_counter = itertools.count(1)
PASSWORD = "test-pass-123"


def user_create(*, username: str | None = None, **extra: object) -> AbstractBaseUser:
    name = username or f"user{next(_counter)}"
    return get_user_model().objects.create_user(
        username=name, password=PASSWORD, email=f"{name}@example.com", **extra
    )

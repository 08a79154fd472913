"""Deleting an account ends its conversations first (workflows, histories, approvals)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from chatapp.deletion import user_conversations_erase


def erase_before_user_delete(sender: type, instance: AbstractBaseUser, **_: Any) -> None:
    """pre_delete of the user model: runs inside the delete's transaction, so a failure
    (Temporal unreachable) keeps the account and its rows, and deleting again retries."""
    user_conversations_erase(instance)

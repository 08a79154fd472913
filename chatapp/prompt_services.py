"""Writes for prompt versions (kept apart from chat services: admins use them, not chat)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from chatapp.models import Prompt, PromptVersion


def prompt_version_next(*, prompt: Prompt) -> int:
    highest = prompt.versions.aggregate(highest=Max("version"))["highest"]
    return (highest or 0) + 1


def prompt_version_activate(*, version: PromptVersion) -> None:
    """Make `version` the one the LLM activity reads from its next call on."""
    with transaction.atomic():
        PromptVersion.objects.filter(prompt=version.prompt, is_active=True).update(is_active=False)
        PromptVersion.objects.filter(pk=version.pk).update(is_active=True)


def prompt_version_create(*, prompt: Prompt, text: str, note: str = "") -> PromptVersion:
    with transaction.atomic():
        return PromptVersion.objects.create(
            prompt=prompt, version=prompt_version_next(prompt=prompt), text=text, note=note
        )

"""Seed the code-defined prompt defaults on migrate (idempotent), and tell this process's
tool registry when an MCP server changes."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from chatapp.models import Prompt, PromptVersion
from chatapp.prompts import DEFAULTS
from temporal_worker.tools.registry import mcp_catalog_changed


def prompts_seed_defaults(**_: Any) -> None:
    with transaction.atomic():
        for default in DEFAULTS.values():
            prompt, _created = Prompt.objects.get_or_create(name=default.name)
            if not prompt.versions.exists():
                PromptVersion.objects.create(
                    prompt=prompt,
                    version=default.version,
                    text=default.text,
                    is_active=True,
                    note="Code-defined default",
                )


def mcp_server_changed(**_: Any) -> None:
    """An admin's save or delete shows in this process's registry at once (other processes
    read the catalog again within seconds)."""
    mcp_catalog_changed()

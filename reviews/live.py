"""Pushes to the reviewers' dashboard sockets."""

from __future__ import annotations

from typing import Any

from chatapp.progress import group_push

REVIEWERS_GROUP = "reviewers"


async def reviewers_push(event: dict[str, Any]) -> None:
    """Send `event` (a dict with a "kind") to every open reviewer dashboard."""
    await group_push(REVIEWERS_GROUP, {"type": "review.event", **event})

"""Writes for agents and MCP servers (kept apart from chat services: admins use them)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chatapp.models import Agent, McpServer


def agent_save(*, agent: Agent) -> None:
    """Save `agent`; if it is now the preselected one, no other agent is."""
    with transaction.atomic():
        if agent.is_default:
            Agent.objects.exclude(pk=agent.pk).filter(is_default=True).update(is_default=False)
        agent.save()


def mcp_servers_refresh_request(*, servers: QuerySet[McpServer]) -> int:
    """Ask the worker to list these servers' tools now (it checks every few seconds)."""
    return servers.update(next_refresh_at=timezone.now())

"""The admin's MCP servers as the tool registry and the worker's refresher read them.

`mcp_server_specs` is settings.AGENT_MCP_CATALOG: every process builds the MCP tools of its
registry from it. `McpServerTable` implements `temporal_worker.ports.McpCatalogStore` for
the worker's refresher, the one writer of a server's listed tools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from chatapp.models import McpServer
from temporal_worker.ports import McpServerSpec

ERROR_MAX_CHARS = 2000


def mcp_server_specs() -> list[McpServerSpec]:
    """Every enabled server with its last good tool list."""
    return [mcp_server_spec(row) for row in McpServer.objects.filter(enabled=True).order_by("name")]


def mcp_server_spec(row: McpServer) -> McpServerSpec:
    return McpServerSpec(
        name=row.name,
        title=row.title,
        transport="http" if row.transport == McpServer.Transport.HTTP else "stdio",
        command=row.command,
        args=tuple(str(arg) for arg in row.args or []),
        env=dict(row.env or {}),
        url=row.url,
        headers=dict(row.headers or {}),
        idempotent=row.idempotent,
        call_timeout_seconds=row.call_timeout_seconds,
        tools=tuple(t for t in row.tools or [] if isinstance(t, dict)),
        version=f"{row.pk}:{row.updated_at.isoformat()}",
    )


class McpServerTable:
    async def claim_due(self) -> list[McpServerSpec]:
        return await sync_to_async(_claim_due)()

    async def record_listing(
        self,
        *,
        server: str,
        tools: Sequence[Mapping[str, Any]] | None,
        error: str = "",
        notes: str = "",
    ) -> None:
        await sync_to_async(_record_listing)(server, tools, error, notes)


def _claim_due() -> list[McpServerSpec]:
    now = timezone.now()
    claimed = []
    for row in McpServer.objects.filter(enabled=True, next_refresh_at__lte=now):
        # Only the process whose update still finds the old time lists the server.
        taken = McpServer.objects.filter(pk=row.pk, next_refresh_at=row.next_refresh_at).update(
            next_refresh_at=now + timedelta(seconds=settings.MCP_REFRESH_SECONDS)
        )
        if taken:
            claimed.append(mcp_server_spec(row))
    return claimed


def _record_listing(
    server: str, tools: Sequence[Mapping[str, Any]] | None, error: str, notes: str
) -> None:
    now = timezone.now()
    rows = McpServer.objects.filter(name=server)
    if tools is None:
        # The last good list stays: agents keep offering those tools while it is down.
        rows.update(
            last_error=error[:ERROR_MAX_CHARS],
            last_error_at=now,
            next_refresh_at=now + timedelta(seconds=settings.MCP_REFRESH_RETRY_SECONDS),
        )
        return
    listed = [dict(t) for t in tools]
    changes: dict[str, Any] = {
        "tools_listed_at": now,
        "list_notes": notes[:ERROR_MAX_CHARS],
        "last_error": "",
    }
    current = rows.values_list("tools", flat=True).first()
    if current != listed:
        # A new version: every process rebuilds this server's tools.
        changes.update(tools=listed, updated_at=now)
    rows.update(**changes)

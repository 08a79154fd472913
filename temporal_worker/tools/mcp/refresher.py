"""The worker lists each MCP server's tools on a schedule, and when the admin asks.

Every few seconds the worker claims the servers whose listing is due (its interval has
passed, a listing failed a while ago, or an admin pressed "refresh"), lists them, and
stores each list (the catalog store is the one writer of a server's tools). A server that
cannot be listed keeps its last good list, so its tools stay offered while it is down; a
call to one of them then fails on its own and the agent hears why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from temporal_worker.ports import McpCatalogStore, McpServerSpec
from temporal_worker.tools.mcp.connections import McpPool, mcp_pool
from temporal_worker.tools.mcp.tool import mcp_tools

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Listing:
    server: str
    ok: bool
    tools: int = 0
    error: str = ""


class McpCatalogRefresher:
    def __init__(
        self,
        store: McpCatalogStore,
        *,
        poll_seconds: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        # The registry's hook: this process reads the new lists at once.
        self.on_change = on_change

    async def run_forever(self) -> None:
        """Refresh what is due, then wait a poll interval; until cancelled."""
        failing = ""
        while True:
            try:
                await self.refresh_due()
                failing = ""
            except Exception as err:
                # The database may be restarting: the next round tries again (said once).
                if str(err) != failing:
                    logger.warning("MCP tool lists not refreshed: %s", err)
                failing = str(err)
            await asyncio.sleep(self.poll_seconds)

    async def refresh_due(self) -> list[Listing]:
        due = await self.store.claim_due()
        if not due:
            return []
        pool = mcp_pool()
        return list(await asyncio.gather(*(self.refresh(spec, pool) for spec in due)))

    async def refresh(self, spec: McpServerSpec, pool: McpPool | None = None) -> Listing:
        """List one server's tools now and store the list (or why there is none)."""
        pool = pool or mcp_pool()
        try:
            listed = await pool.list_tools(spec)
        except Exception as err:
            error = str(err) or type(err).__name__
            logger.warning("MCP server %s not listed: %s", spec.name, error)
            await self.store.record_listing(server=spec.name, tools=None, error=error)
            return Listing(server=spec.name, ok=False, error=error)
        entries: list[dict[str, Any]] = [
            tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed
        ]
        built = mcp_tools(dataclasses.replace(spec, tools=tuple(entries)))
        notes = "; ".join(f"left out {skipped}" for skipped in built.skipped)
        await self.store.record_listing(server=spec.name, tools=entries, notes=notes)
        self.on_change()
        return Listing(server=spec.name, ok=True, tools=len(built.tools))

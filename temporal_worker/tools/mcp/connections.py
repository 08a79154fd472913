"""Sessions to MCP servers, kept open by the worker and shared by every call to a server.

A stdio server is a child process of the worker (started on first use, its stderr in
`var/log/mcp-<name>.log`); a Streamable HTTP server is a URL. Opening a session costs a
process start or a handshake, so each server has one session per event loop, reopened when
it breaks or when the admin changes how to reach the server.

Failures come back as three kinds, because what may be retried differs:

- `McpUnreachable`: the session could not be opened, so nothing was sent (always safe to
  try again);
- `McpCallBroken`: the session broke, or the server did not answer in time, after the call
  was sent (it may or may not have taken effect);
- `McpRefused`: the server answered with a JSON-RPC error (bad arguments, unknown tool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, Implementation, Tool
from mcp_types import CONNECTION_CLOSED, RequestParamsMeta

from temporal_worker.ports import McpServerSpec

logger = logging.getLogger(__name__)

CLIENT_INFO = Implementation(name="durable-agent-chat", version="1")
# tools/list pages read at most (a server that pages forever cannot hold a refresh).
LIST_PAGES_MAX = 20
CLOSE_TIMEOUT_SECONDS = 5.0


class McpUnreachable(Exception):
    """The server could not be reached: the call was not sent."""


class McpCallBroken(Exception):
    """The session broke, or no answer came in time, after the call was sent."""


class McpRefused(Exception):
    """The server answered the request with an error."""


class McpMisconfigured(McpUnreachable):
    """The admin's settings for the server cannot work (a secret that is not set)."""


@dataclass(frozen=True)
class PoolSettings:
    connect_timeout_seconds: float
    log_dir: Path
    secrets: Mapping[str, str] = field(default_factory=dict)


class _Session:
    """One open session, owned by one task: the SDK's transports are task-scoped (anyio),
    so the task that entered them must be the one that leaves them."""

    def __init__(self, spec: McpServerSpec, settings: PoolSettings) -> None:
        self.spec = spec
        self.key = spec.connection_key
        self._settings = settings
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.client: Client | None = None
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._own(), name=f"mcp-session-{spec.name}")

    @property
    def broken(self) -> bool:
        return self.task.done() or self.error is not None

    async def opened(self) -> Client:
        try:
            async with asyncio.timeout(self._settings.connect_timeout_seconds):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise McpUnreachable(
                f"the MCP server {self.spec.title} did not open a session within "
                f"{self._settings.connect_timeout_seconds:g} s"
            ) from None
        if self.client is None:
            error = self.error
            if isinstance(error, McpUnreachable):
                raise error
            raise McpUnreachable(
                f"the MCP server {self.spec.title} cannot be reached: {_describe(error)}"
            ) from error
        return self.client

    async def _own(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = await stack.enter_async_context(
                    Client(transport, cache=None, client_info=CLIENT_INFO)
                )
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except Exception as err:
            self.error = err
            if self.client is not None:
                logger.warning("MCP session to %s ended: %s", self.spec.name, _describe(err))
        finally:
            self.client = None
            self._ready.set()

    async def _transport(self, stack: AsyncExitStack) -> Any:
        spec = self.spec
        if spec.transport == "stdio":
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=self._resolved(spec.env)
            )
            return stdio_client(params, errlog=self._errlog(stack))
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=self._resolved(spec.headers),
                timeout=httpx2.Timeout(self._settings.connect_timeout_seconds, read=None),
            )
        )
        return streamable_http_client(spec.url, http_client=http)

    def _resolved(self, references: Mapping[str, str]) -> dict[str, str]:
        values = {}
        for name, secret in references.items():
            value = self._settings.secrets.get(secret)
            if value is None:
                raise McpMisconfigured(
                    f"the MCP server {self.spec.title} needs the secret {secret}, which is not "
                    f"set (AGENT_SECRET_{secret} in the worker's environment)"
                )
            values[name] = value
        return values

    def _errlog(self, stack: AsyncExitStack) -> TextIO:
        self._settings.log_dir.mkdir(parents=True, exist_ok=True)
        path = self._settings.log_dir / f"mcp-{self.spec.name}.log"
        return stack.enter_context(path.open("a", encoding="utf-8"))

    async def close(self) -> None:
        self._stop.set()
        if not self.task.done():
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await asyncio.shield(self.task)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task


class McpPool:
    """The sessions one event loop keeps to MCP servers."""

    def __init__(self, settings: Callable[[], PoolSettings]) -> None:
        # Read as each session opens: secrets and timeouts as they are then.
        self.settings = settings
        self._sessions: dict[str, _Session] = {}
        self._opening = asyncio.Lock()

    async def _session(self, spec: McpServerSpec) -> tuple[_Session, Client]:
        async with self._opening:
            session = self._sessions.get(spec.name)
            if session is not None and (session.broken or session.key != spec.connection_key):
                await self._drop(spec.name, session)
                session = None
            if session is None:
                session = self._sessions[spec.name] = _Session(spec, self.settings())
        try:
            return session, await session.opened()
        except McpUnreachable:
            await self._drop(spec.name, session)
            raise

    async def _drop(self, name: str, session: _Session) -> None:
        if self._sessions.get(name) is session:
            del self._sessions[name]
        await session.close()

    async def call_tool(
        self,
        spec: McpServerSpec,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        idempotency_key: str,
    ) -> CallToolResult:
        """Call `tool` once; its idempotency key goes to the server in `_meta`."""
        session, client = await self._session(spec)
        meta = cast(RequestParamsMeta, {"idempotencyKey": idempotency_key})
        call: asyncio.Future[Any] = asyncio.ensure_future(
            client.call_tool(tool, dict(arguments), meta=meta)
        )
        # The session's task ends when the transport dies (a crashed server): the call
        # would otherwise wait for an answer that cannot come.
        ended: asyncio.Future[Any] = asyncio.ensure_future(asyncio.shield(session.task))
        try:
            done, _ = await asyncio.wait(
                {call, ended},
                timeout=spec.call_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            call.cancel()  # the activity was cancelled: so is its request
            raise
        finally:
            ended.cancel()
        if call not in done:
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await call
            # A server that does not answer may be stuck altogether: start it over.
            await self._drop(spec.name, session)
            if not done:
                raise McpCallBroken(
                    f"the MCP server {spec.title} did not answer within "
                    f"{spec.call_timeout_seconds} s"
                )
            raise McpCallBroken(f"the connection to the MCP server {spec.title} broke mid-call")
        try:
            return cast(CallToolResult, call.result())
        except MCPError as err:
            if err.error.code != CONNECTION_CLOSED:
                raise McpRefused(err.error.message) from err
            await self._drop(spec.name, session)
            raise McpCallBroken(
                f"the connection to the MCP server {spec.title} closed mid-call"
            ) from err
        except Exception as err:
            await self._drop(spec.name, session)
            raise McpCallBroken(
                f"the connection to the MCP server {spec.title} broke mid-call: {_describe(err)}"
            ) from err

    async def list_tools(self, spec: McpServerSpec) -> list[Tool]:
        """Every tool the server lists now (a fresh listing, never a cached one). A listing
        reads nothing but the list: a session found broken is opened again once."""
        try:
            return await self._list_tools(spec)
        except McpCallBroken:
            return await self._list_tools(spec)

    async def _list_tools(self, spec: McpServerSpec) -> list[Tool]:
        _, client = await self._session(spec)
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(spec.call_timeout_seconds):
                for _ in range(LIST_PAGES_MAX):
                    page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except MCPError as err:
            if err.error.code != CONNECTION_CLOSED:
                raise McpRefused(err.error.message) from err
            await self._drop_named(spec.name)
            raise McpCallBroken(
                f"the connection to the MCP server {spec.title} closed while listing its tools"
            ) from err
        except Exception as err:
            await self._drop_named(spec.name)
            if isinstance(err, TimeoutError):
                raise McpCallBroken(
                    f"the MCP server {spec.title} did not list its tools within "
                    f"{spec.call_timeout_seconds} s"
                ) from err
            raise McpCallBroken(
                f"listing the tools of the MCP server {spec.title} failed: {_describe(err)}"
            ) from err
        return tools

    async def _drop_named(self, name: str) -> None:
        session = self._sessions.get(name)
        if session is not None:
            await self._drop(name, session)

    async def close(self) -> None:
        """Close every session (a stdio server's process ends with its session)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


_pools: dict[int, McpPool] = {}


def pool_settings() -> PoolSettings:
    from django.conf import settings

    return PoolSettings(
        connect_timeout_seconds=settings.MCP_CONNECT_TIMEOUT_SECONDS,
        log_dir=Path(settings.VAR_DIR) / "log",
        secrets=settings.AGENT_SECRETS,
    )


def mcp_pool() -> McpPool:
    """The running event loop's pool: sessions are bound to the loop that opened them."""
    key = id(asyncio.get_running_loop())
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = McpPool(pool_settings)
    return pool


async def mcp_pool_close() -> None:
    """Close the running loop's sessions (the worker does, when it stops)."""
    pool = _pools.pop(id(asyncio.get_running_loop()), None)
    if pool is not None:
        await pool.close()


def _describe(err: BaseException | None) -> str:
    """A short reason: the innermost exception of a group, as its type and message."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    if err is None:
        return "unknown error"
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

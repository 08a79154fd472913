"""Real MCP servers for the tests, registered as the admin registers them: the lab server
over stdio (a child of the worker) and over Streamable HTTP (uvicorn in this process,
stopped and started at will); agents that use them; conversations started with one."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from asgiref.sync import sync_to_async

from chatapp import services
from chatapp.agent_services import agent_save
from chatapp.mcp_catalog import McpServerTable, mcp_server_spec
from chatapp.models import Agent, McpServer, Prompt
from chatapp.prompt_services import prompt_version_activate, prompt_version_create
from config import processes
from temporal_worker.tools.mcp.refresher import Listing, McpCatalogRefresher
from temporal_worker.tools.registry import mcp_catalog_changed
from tests.factories import user_create
from tests.mcp.lab_server import lab_server


def effects(record: Path) -> list[dict[str, Any]]:
    """What the lab server kept, one note per idempotency key."""
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


async def stdio_server_create(record: Path, *, name: str = "lab", **fields: Any) -> McpServer:
    """The lab server as the admin registers a stdio server: a command the worker starts."""
    return await McpServer.objects.acreate(
        name=name,
        title=fields.pop("title", "Lab"),
        transport=McpServer.Transport.STDIO,
        command=sys.executable,
        args=["-m", "tests.mcp.lab_server", "--record", str(record), "--name", name],
        **fields,
    )


async def http_server_create(url: str, *, name: str = "weblab", **fields: Any) -> McpServer:
    return await McpServer.objects.acreate(
        name=name,
        title=fields.pop("title", "Web lab"),
        transport=McpServer.Transport.HTTP,
        url=url,
        **fields,
    )


class HttpLab:
    """The lab server over Streamable HTTP in this process, on a port of its own."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.port = processes.free_port()
        self.server = lab_server(record, name="weblab")
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        # A session manager runs once: a restart is a new server with the same tools.
        self.server = lab_server(self.record, name="weblab")
        app = self.server.streamable_http_app()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._uvicorn = uvicorn.Server(config)
        self._task = asyncio.create_task(self._uvicorn.serve())
        while not self._uvicorn.started:
            if self._task.done():
                await self._task
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._uvicorn is not None and self._task is not None:
            self._uvicorn.should_exit = True
            await self._task
            self._uvicorn = self._task = None


async def listed(server: McpServer) -> Listing:
    """List the server's tools now, as the worker's refresher does."""
    fresh = await McpServer.objects.aget(pk=server.pk)
    refresher = McpCatalogRefresher(McpServerTable(), poll_seconds=1, on_change=mcp_catalog_changed)
    return await refresher.refresh(mcp_server_spec(fresh))


async def agent_create(
    slug: str,
    *,
    tools: list[str] | None = None,
    servers: list[McpServer] = (),  # type: ignore[assignment]
    handoffs: list[Agent] = (),  # type: ignore[assignment]
    prompt_text: str = "",
    **fields: Any,
) -> Agent:
    """An agent as the admin defines one, with a system prompt of its own."""

    def create() -> Agent:
        prompt, _ = Prompt.objects.get_or_create(name=f"{slug}-prompt")
        version = prompt_version_create(
            prompt=prompt, text=prompt_text or f"You are the {slug} agent."
        )
        prompt_version_activate(version=version)
        agent = Agent(
            slug=slug,
            name=fields.pop("name", slug.replace("_", " ").title()),
            description=fields.pop("description", f"The {slug} agent."),
            prompt=prompt,
            tools=tools or [],
            **fields,
        )
        agent_save(agent=agent)
        agent.mcp_servers.set(servers)
        agent.handoffs.set(handoffs)
        return agent

    return await sync_to_async(create)()


async def conversation_start(text: str, *, agent: str = "", user: Any = None) -> tuple[str, Any]:
    """The first message of a new conversation, with the agent picked for it."""
    user = user or await sync_to_async(user_create)()
    conversation_id = uuid.uuid4()
    await services.message_send(
        user=user,
        conversation_id=conversation_id,
        message_id=uuid.uuid4(),
        text=text,
        agent=agent,
    )
    return str(conversation_id), user


async def message_next(conversation_id: str, user: Any, text: str) -> None:
    await services.message_send(
        user=user,
        conversation_id=uuid.UUID(conversation_id),
        message_id=uuid.uuid4(),
        text=text,
    )

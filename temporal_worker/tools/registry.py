"""The tool registry: every tool the agent may call, from every source, in one place.

A tool is a `Tool` (temporal_worker.tools.base): a name, a description, a JSON schema for
its arguments, read or write, a way to validate arguments (the model's, and a reviewer's
edits) into canonical JSON, a one-line summary for reviewers, and a way to run. Two
sources feed it: code tools, async functions declared with `@tool` in the modules
settings.AGENT_TOOL_MODULES lists, and MCP servers registered in the admin, whose tools
come from the last list the worker stored (settings.AGENT_MCP_CATALOG reads it).

Every process (worker, web, the reviewer's edit form, the planner) gets the same registry
by calling `tool_registry()` (or `atool_registry()` in async code): which tools exist never
depends on which modules happened to be imported. Django settings are read only here;
tool implementations may use Django.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from pydantic import BaseModel, ValidationError

from temporal_worker.contracts.tools import ToolKind
from temporal_worker.tools.base import (
    Tool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ValidArguments,
    canonical_json,
)
from temporal_worker.tools.mcp.names import builtin_name_problem
from temporal_worker.tools.mcp.tool import mcp_tools

__all__ = [
    "CodeTool",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ValidArguments",
    "atool_registry",
    "canonical_json",
    "mcp_catalog_changed",
    "mcp_tools",
    "tool",
    "tool_registry",
]

logger = logging.getLogger(__name__)

# How long a process trusts its copy of the MCP catalog (another process's refresh shows
# within this; a change made in this process shows at once, see mcp_catalog_changed).
CATALOG_MAX_AGE_SECONDS = 2.0

Implementation = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass(frozen=True, eq=False)
class CodeTool(Tool):
    """A tool written in Python: its arguments are a pydantic model."""

    name: str
    description: str
    kind: ToolKind
    args_model: type[BaseModel]
    implementation: Implementation
    summary: Callable[[Any], str]
    threshold_argument: str | None = None
    _schema: dict[str, Any] = field(default_factory=dict, repr=False)

    def parameters(self) -> dict[str, Any]:
        if not self._schema:
            schema = self.args_model.model_json_schema()
            schema.pop("title", None)
            self._schema.update(schema)
        return self._schema

    def validate(self, raw_arguments: str) -> ValidArguments:
        try:
            value = self.args_model.model_validate_json(raw_arguments or "{}")
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in err.errors(include_url=False)
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {problems}") from err
        return ValidArguments(value=value, canonical=canonical_json(value.model_dump(mode="json")))

    def summarize(self, arguments: ValidArguments) -> str:
        return self.summary(arguments.value)

    async def run(self, arguments: ValidArguments, ctx: ToolContext) -> Any:
        return await self.implementation(arguments.value, ctx)


def tool(
    *,
    name: str,
    description: str,
    kind: ToolKind,
    summarize: Callable[[Any], str],
    threshold_argument: str | None = None,
) -> Callable[[Implementation], CodeTool]:
    """Declare `async def fn(args: SomeModel, ctx: ToolContext) -> dict` as a tool.

    The decorated name becomes the `CodeTool`; list its module in AGENT_TOOL_MODULES."""

    def declare(fn: Implementation) -> CodeTool:
        hints = typing.get_type_hints(fn)
        args_model = next(iter(hints.values()))
        if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
            raise TypeError(f"tool {name}: the first parameter must be a pydantic model")
        return CodeTool(
            name=name,
            description=description,
            kind=kind,
            args_model=args_model,
            implementation=fn,
            summary=summarize,
            threshold_argument=threshold_argument,
        )

    return declare


class ToolRegistry:
    """Tools by name, and the OpenAI `tools` schema sent with every model call."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self._tools:
                raise ValueError(f"tool {item.name} is declared twice")
            self._tools[item.name] = item
        self._openai_tools: list[dict[str, Any]] | None = None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> typing.Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def openai_tools(self) -> list[dict[str, Any]]:
        """Built once per registry: a model call must not rebuild schemas."""
        if self._openai_tools is None:
            self._openai_tools = [t.openai_schema() for t in self._tools.values()]
        return self._openai_tools


def code_tools(modules: Sequence[str]) -> list[Tool]:
    """The `@tool`s each module defines, in the order they are written."""
    found: list[Tool] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        found.extend(value for value in vars(module).values() if isinstance(value, CodeTool))
    for item in found:
        problem = builtin_name_problem(item.name)
        if problem:
            raise ValueError(f"tool {problem}: choose another name")
    return found


@dataclass(frozen=True)
class _Catalog:
    """MCP tools as this process last read them: rebuilt only when a server changed."""

    key: tuple[tuple[str, str], ...] = ()
    tools: tuple[Tool, ...] = ()
    loaded_at: float = float("-inf")


_catalog = _Catalog()
_catalog_lock = threading.Lock()
_registries: dict[tuple[Any, ...], ToolRegistry] = {}


def tool_registry() -> ToolRegistry:
    """The registry every process uses: the code tools of settings.AGENT_TOOL_MODULES and
    the MCP servers' tools as the worker last listed them."""
    if time.monotonic() - _catalog.loaded_at >= CATALOG_MAX_AGE_SECONDS:
        _load_catalog_here()
    return _registry()


async def atool_registry() -> ToolRegistry:
    """`tool_registry()` for async code: the catalog is read on Django's database thread."""
    if time.monotonic() - _catalog.loaded_at >= CATALOG_MAX_AGE_SECONDS:
        await sync_to_async(_load_catalog)()
    return _registry()


def mcp_catalog_changed() -> None:
    """A server or its list changed in this process: read the catalog again at next use."""
    global _catalog
    _catalog = _Catalog(key=_catalog.key, tools=_catalog.tools)


def _registry() -> ToolRegistry:
    from django.conf import settings

    catalog = _catalog
    key = (tuple(settings.AGENT_TOOL_MODULES), catalog.key)
    registry = _registries.get(key)
    if registry is None:
        if len(_registries) > 32:
            _registries.clear()
        registry = _registries[key] = ToolRegistry([*code_tools(key[0]), *catalog.tools])
    return registry


def _load_catalog_here() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _load_catalog()
        return
    # Async code called the sync form: the ORM may not run on an event loop's thread, so
    # this one read happens on a thread of its own (async code should await
    # atool_registry() instead).
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(_load_catalog, close_connections=True).result()


def _load_catalog(*, close_connections: bool = False) -> None:
    """Read the MCP servers from the catalog; on failure keep the last good tools."""
    global _catalog
    from django.conf import settings
    from django.db import connections
    from django.utils.module_loading import import_string

    try:
        specs = import_string(settings.AGENT_MCP_CATALOG)()
    except Exception as err:
        logger.warning("MCP catalog not read (keeping the last one): %s", err)
        _catalog = _Catalog(key=_catalog.key, tools=_catalog.tools, loaded_at=time.monotonic())
        return
    finally:
        if close_connections:
            connections.close_all()
    key = tuple((spec.name, spec.version) for spec in specs)
    with _catalog_lock:
        if key == _catalog.key:
            _catalog = _Catalog(key=key, tools=_catalog.tools, loaded_at=time.monotonic())
            return
        tools: list[Tool] = []
        for spec in specs:
            tools.extend(
                mcp_tools(spec, connect_timeout_seconds=settings.MCP_CONNECT_TIMEOUT_SECONDS).tools
            )
        _catalog = _Catalog(key=key, tools=tuple(tools), loaded_at=time.monotonic())

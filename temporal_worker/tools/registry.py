"""The tool registry: every tool the agent may call, from every source, in one place.

A tool is a `Tool`: a name, a description, a JSON schema for its arguments, read or
write, a way to validate arguments (the model's, and a reviewer's edits) into
canonical JSON, a one-line summary for reviewers, and a way to run. Code tools are
async functions declared with `@tool` in the modules settings.AGENT_TOOL_MODULES
lists; other sources (MCP servers) add their own `Tool`s. Every process (worker,
web, the reviewer's edit form, the planner) gets the same registry by calling
`tool_registry()`: which tools exist never depends on which modules happened to be
imported. Django settings are read only by `tool_registry()`; tool implementations may use Django.
"""

from __future__ import annotations

import importlib
import json
import typing
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from temporal_worker.contracts.tools import ToolKind


class ToolError(Exception):
    """A failure the model should hear about (order not found, refund too large...).

    Not retried: the tool answers with the error as its result.
    """


class ToolArgumentsError(ValueError):
    pass


@dataclass(frozen=True)
class ToolContext:
    conversation_id: str
    workflow_id: str
    call_id: str
    requester_id: int
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        # Unique per write: an activity retried after its write took effect finds it.
        return f"{self.workflow_id}:{self.call_id}"


@dataclass(frozen=True)
class ValidArguments:
    """Arguments that passed the tool's schema: the parsed value and its canonical JSON."""

    value: Any
    canonical: str


class Tool(ABC):
    name: str
    description: str
    kind: ToolKind
    # The argument an approval policy's threshold compares against (refunds: "amount").
    threshold_argument: str | None = None

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as the model is shown it."""

    @abstractmethod
    def validate(self, raw_arguments: str) -> ValidArguments:
        """Parse and check JSON arguments; raises ToolArgumentsError with what is wrong."""

    @abstractmethod
    def summarize(self, arguments: ValidArguments) -> str:
        """One line for reviewers and the chat ("Refund 30.00 EUR on order #1009")."""

    @abstractmethod
    async def run(self, arguments: ValidArguments, ctx: ToolContext) -> Any:
        """Do it; a ToolError is the answer the model hears, anything else is retried."""

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            },
        }


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


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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
    return found


_registries: dict[tuple[str, ...], ToolRegistry] = {}


def tool_registry() -> ToolRegistry:
    """The registry every process uses: the code tools of settings.AGENT_TOOL_MODULES."""
    from django.conf import settings

    modules = tuple(settings.AGENT_TOOL_MODULES)
    registry = _registries.get(modules)
    if registry is None:
        registry = _registries[modules] = ToolRegistry(code_tools(modules))
    return registry

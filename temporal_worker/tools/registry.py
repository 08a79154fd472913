"""Tool declarations: name, description, argument schema, read or write, implementation.

The argument schema comes from the implementation's pydantic type hint and is sent
to the model as the OpenAI `tools` schema; the same model validates the model's
arguments and a reviewer's edits. No Django here: implementations import it.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from temporal_worker.shared import ToolKind


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


Implementation = Callable[[Any, ToolContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    description: str
    kind: ToolKind
    args_model: type[BaseModel]
    implementation: Implementation
    summarize: Callable[[Any], str]
    # The argument an approval policy's threshold compares against (refunds: "amount").
    threshold_argument: str | None = None

    def openai_schema(self) -> dict[str, Any]:
        parameters = self.args_model.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }

    def validate(self, raw_arguments: str) -> BaseModel:
        try:
            return self.args_model.model_validate_json(raw_arguments or "{}")
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in err.errors(include_url=False)
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {problems}") from err


TOOLS: dict[str, ToolDefinition] = {}


def tool(
    *,
    name: str,
    description: str,
    kind: ToolKind,
    summarize: Callable[[Any], str],
    threshold_argument: str | None = None,
) -> Callable[[Implementation], Implementation]:
    """Register an implementation `async def fn(args: SomeModel, ctx: ToolContext) -> dict`."""

    def register(fn: Implementation) -> Implementation:
        hints = typing.get_type_hints(fn)
        args_model = next(iter(hints.values()))
        if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
            raise TypeError(f"tool {name}: the first parameter must be a pydantic model")
        if name in TOOLS:
            raise ValueError(f"tool {name} is declared twice")
        TOOLS[name] = ToolDefinition(
            name=name,
            description=description,
            kind=kind,
            args_model=args_model,
            implementation=fn,
            summarize=summarize,
            threshold_argument=threshold_argument,
        )
        return fn

    return register


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def canonical_arguments(args: BaseModel) -> str:
    return canonical_json(args.model_dump(mode="json"))


_openai_tools: list[dict[str, Any]] = []
_openai_tools_for: tuple[str, ...] = ()


def openai_tools() -> list[dict[str, Any]]:
    """The tools schema sent with every LLM call: built once per set of tools."""
    global _openai_tools, _openai_tools_for
    names = tuple(TOOLS)
    if names != _openai_tools_for:
        _openai_tools = [definition.openai_schema() for definition in TOOLS.values()]
        _openai_tools_for = names
    return _openai_tools

"""An MCP server's tool in the registry: offered to the model with the server's JSON schema,
validated against it (the model's arguments and a reviewer's edits), run over the worker's
session to the server.

Names, descriptions, schemas and results come from outside the product: they are bounded
here (a schema too large or invalid leaves its tool out), truncated for the model, and
treated as text wherever they are shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from temporal_worker.contracts.tools import ToolKind
from temporal_worker.ports import McpServerSpec
from temporal_worker.tools.base import (
    Tool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ValidArguments,
    canonical_json,
)
from temporal_worker.tools.mcp.connections import (
    McpCallBroken,
    McpMisconfigured,
    McpRefused,
    mcp_pool,
)
from temporal_worker.tools.mcp.names import mcp_tool_name

# What the model reads of a server's description; the rest stays in the admin.
DESCRIPTION_MAX_CHARS = 1000
SCHEMA_MAX_CHARS = 32_000
TOOLS_PER_SERVER_MAX = 200
SUMMARY_MAX_CHARS = 200
# Transport failures are retried this many times in all (the workflow's retry policy).
MAX_ATTEMPTS = 3
# Beyond the server's own timeout, the activity's start-to-close allows for opening a
# session (the worker's connect timeout) and this much more.
START_TO_CLOSE_MARGIN_SECONDS = 10


@dataclass(frozen=True, eq=False)
class McpTool(Tool):
    name: str
    description: str
    kind: ToolKind
    server: McpServerSpec
    remote_name: str
    title: str
    schema: Mapping[str, Any]
    connect_timeout_seconds: int = 20
    threshold_argument: str | None = None
    _validator: list[Validator] = field(default_factory=list, repr=False)

    @property
    def source(self) -> str:
        transport = "stdio" if self.server.transport == "stdio" else "Streamable HTTP"
        return f"MCP server {self.server.title} ({self.server.name}, {transport})"

    @property
    def idempotent(self) -> bool:
        return self.server.idempotent

    @property
    def start_to_close_seconds(self) -> int:
        return (
            self.server.call_timeout_seconds
            + self.connect_timeout_seconds
            + START_TO_CLOSE_MARGIN_SECONDS
        )

    @property
    def max_attempts(self) -> int:
        return MAX_ATTEMPTS

    def parameters(self) -> dict[str, Any]:
        return dict(self.schema)

    def _checker(self) -> Validator:
        if not self._validator:
            cls = jsonschema.validators.validator_for(self.schema, jsonschema.Draft202012Validator)
            self._validator.append(cls(dict(self.schema)))
        return self._validator[0]

    def validate(self, raw_arguments: str) -> ValidArguments:
        try:
            value = json.loads(raw_arguments or "{}")
        except ValueError as err:
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: not JSON ({err})"
            ) from err
        if not isinstance(value, dict):
            raise ToolArgumentsError(f"invalid arguments for {self.name}: not a JSON object")
        errors = sorted(self._checker().iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: "
                f"{_clip(e.message, 200)}"
                for e in errors[:5]
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {problems}")
        return ValidArguments(value=value, canonical=canonical_json(value))

    def summarize(self, arguments: ValidArguments) -> str:
        shown = ", ".join(
            f"{key}={_clip(json.dumps(value, ensure_ascii=False), 40)}"
            for key, value in sorted(arguments.value.items())
        )
        return _clip(f"{self.server.title}: {self.title}({shown})", SUMMARY_MAX_CHARS)

    async def run(self, arguments: ValidArguments, ctx: ToolContext) -> Any:
        try:
            result = await mcp_pool().call_tool(
                self.server,
                self.remote_name,
                arguments.value,
                idempotency_key=ctx.idempotency_key,
            )
        except (McpRefused, McpMisconfigured) as err:
            raise ToolError(f"{self.server.title}: {err}") from err
        except McpCallBroken as err:
            if self.server.idempotent:
                raise  # the server honours the idempotency key: Temporal tries again
            raise ToolError(
                f"{err}. It may or may not have taken effect; it was not repeated because "
                "the server is not marked idempotent."
            ) from err
        content = _result_value(result.structured_content, result.content)
        if result.is_error:
            message = content.get("content") if isinstance(content, dict) else content
            raise ToolError(f"{self.server.title}: {_clip(str(message), 2000)}")
        return content


def _result_value(structured: Any, blocks: Iterable[Any]) -> Any:
    """What the model is given: the structured result if the server sent one, else the
    text of its content blocks (other kinds are named, not inlined)."""
    if isinstance(structured, dict):
        return structured
    parts = []
    for block in blocks:
        if getattr(block, "type", "") == "text":
            parts.append(str(block.text))
        else:
            parts.append(f"[{getattr(block, 'type', 'unknown')} content left out]")
    return {"content": "\n".join(parts)}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Built:
    tools: list[McpTool]
    # Tools left out, and why (shown in the admin with the server).
    skipped: list[str]


def mcp_tools(spec: McpServerSpec, *, connect_timeout_seconds: int = 20) -> Built:
    """The registry's tools for one server's last list: named so they cannot collide, each
    with a schema that is an object, valid and of bounded size."""
    tools: list[McpTool] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for entry in spec.tools[:TOOLS_PER_SERVER_MAX]:
        remote = entry.get("name")
        if not isinstance(remote, str) or not remote:
            skipped.append("a tool without a name")
            continue
        problem = _schema_problem(entry.get("inputSchema"))
        if problem:
            skipped.append(f"{_clip(remote, 80)}: {problem}")
            continue
        name = mcp_tool_name(spec.name, remote, taken)
        taken.add(name)
        annotations = entry.get("annotations")
        annotations = annotations if isinstance(annotations, dict) else {}
        title = annotations.get("title") or entry.get("title") or remote
        description = entry.get("description") or title
        tools.append(
            McpTool(
                name=name,
                description=_clip(str(description), DESCRIPTION_MAX_CHARS),
                # Only a server's explicit promise makes a tool a read: it runs freely.
                kind="read" if annotations.get("readOnlyHint") is True else "write",
                server=spec,
                remote_name=remote,
                title=_clip(str(title), 80),
                schema=entry["inputSchema"],
                connect_timeout_seconds=connect_timeout_seconds,
            )
        )
    if len(spec.tools) > TOOLS_PER_SERVER_MAX:
        skipped.append(f"{len(spec.tools) - TOOLS_PER_SERVER_MAX} tools past the first 200")
    return Built(tools=tools, skipped=skipped)


def _schema_problem(schema: Any) -> str:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return "its input schema is not a JSON object schema"
    if len(json.dumps(schema)) > SCHEMA_MAX_CHARS:
        return f"its input schema is longer than {SCHEMA_MAX_CHARS:,} characters"
    cls = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as err:
        return f"its input schema is invalid: {_clip(err.message, 200)}"
    return ""

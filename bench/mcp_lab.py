"""The same tool twice, for `make bench`: `bench_lookup` as a built-in (code) tool and
`lookup` on an MCP server (this module run as one: `python -m bench.mcp_lab [--http
HOST:PORT]`), so an MCP call's cost can be set against a built-in call of the same shape."""

from __future__ import annotations

import argparse
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from temporal_worker.tools.registry import ToolContext, tool

server = MCPServer("benchlab", log_level="WARNING")


def _answer(key: str) -> dict[str, Any]:
    return {"key": key, "value": f"the value of {key}", "found": True}


class LookupArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=100, description="What to look up.")


@tool(
    name="bench_lookup",
    description="Look a key up (the bench's built-in tool).",
    kind="read",
    summarize=lambda args: f"Look up {args.key}",
)
async def bench_lookup(args: LookupArguments, ctx: ToolContext) -> dict[str, Any]:
    return _answer(args.key)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup(key: str) -> dict[str, Any]:
    """Look a key up (the bench's MCP tool)."""
    return _answer(key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", metavar="HOST:PORT")
    options = parser.parse_args()
    if options.http:
        host, _, port = options.http.rpartition(":")
        server.run("streamable-http", host=host, port=int(port))
    else:
        server.run()


if __name__ == "__main__":
    main()

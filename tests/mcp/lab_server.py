"""A real MCP server for the tests, written with the `mcp` SDK: over stdio as a child of the
worker (`python -m tests.mcp.lab_server --record FILE`), or over Streamable HTTP in the
test's own process (`lab_server(record)`, served by uvicorn).

Its tools say what reached them (arguments, the idempotency key in `_meta`, a secret from
the environment or a header), record their effect once per idempotency key in a JSON-lines
file, and misbehave on request: answer with an error, crash the process (after or before
the effect), or never answer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

READ = ToolAnnotations(read_only_hint=True)


def _key(ctx: Context) -> str:
    return str((ctx.request_context.meta or {}).get("idempotencyKey") or "")


def lab_server(record: Path, *, name: str = "lab") -> MCPServer:
    server = MCPServer(name, log_level="WARNING")

    def effects() -> list[dict[str, Any]]:
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines() if line]

    @server.tool(annotations=READ)
    def echo(text: Annotated[str, Field(max_length=200)], ctx: Context) -> dict[str, Any]:
        """Say the text back, with what reached the server."""
        headers = ctx.headers or {}
        return {
            "text": text,
            "idempotency_key": _key(ctx),
            "token": os.environ.get("LAB_TOKEN", ""),
            "header": headers.get("x-lab-token", ""),
        }

    @server.tool()
    def record_note(
        note: Annotated[str, Field(min_length=1, max_length=100, description="What to note.")],
        ctx: Context,
        crash: Annotated[
            str, Field(description="'after_effect' crashes once, after the note is kept.")
        ] = "",
    ) -> dict[str, Any]:
        """Keep a note: a write, kept once per idempotency key."""
        key = _key(ctx)
        earlier = next((e for e in effects() if key and e["key"] == key), None)
        if earlier is not None:
            return {"note": earlier["note"], "repeated": True}
        with record.open("a") as out:
            out.write(json.dumps({"note": note, "key": key}) + "\n")
        marker = record.with_suffix(f".crashed-{hashlib.sha256(key.encode()).hexdigest()[:12]}")
        if crash == "after_effect" and not marker.exists():
            marker.write_text("1")
            os._exit(3)
        return {"note": note, "repeated": False}

    @server.tool()
    def crash() -> str:
        """Ends the server's process mid-call."""
        os._exit(3)

    @server.tool(annotations=READ)
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "too late"

    @server.tool(annotations=READ)
    def refuse(reason: str) -> str:
        """Answers with an error."""
        raise ToolError(reason)

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--name", default="lab")
    options = parser.parse_args()
    lab_server(Path(options.record), name=options.name).run()


if __name__ == "__main__":
    main()

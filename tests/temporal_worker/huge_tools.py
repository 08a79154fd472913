"""A test-only tool module, listed in AGENT_TOOL_MODULES by the test that needs it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from temporal_worker.tools.registry import ToolContext, tool


class HugeArgs(BaseModel):
    megabytes: int = 3


@tool(
    name="export_everything",
    description="Test only: a huge result.",
    kind="read",
    summarize=lambda args: "Export everything",
)
async def export_everything(args: HugeArgs, ctx: ToolContext) -> dict[str, Any]:
    return {"rows": ["x" * 1000 for _ in range(args.megabytes * 1000)]}

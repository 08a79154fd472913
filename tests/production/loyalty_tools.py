"""A tool added the documented way (docs/adding-a-tool.md): a module with `@tool`
functions, listed in AGENT_TOOL_MODULES for every process of the production stack."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from temporal_worker.tools.registry import ToolContext, tool


class AddPointsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_email: str = Field(description="The customer's email address")
    points: int = Field(gt=0, le=1000, description="Points to add")


@tool(
    name="add_loyalty_points",
    description="Add loyalty points to a customer's account.",
    kind="write",
    summarize=lambda a: f"Add {a.points} points for {a.customer_email}",
    threshold_argument="points",
)
async def add_loyalty_points(args: AddPointsArgs, ctx: ToolContext) -> dict[str, Any]:
    return {"customer_email": args.customer_email, "points_added": args.points}

"""Turns the model's raw tool calls into validated, policy-classified `PlannedCall`s.

Runs inside the LLM activity, so the plan (and the policy that applied) is
recorded in the workflow history once and never re-evaluated on replay.
"""

from __future__ import annotations

import json

from reviews.policies import approval_rule_for
from temporal_worker.shared import PlannedCall, ToolCall
from temporal_worker.tools import shop_tools  # noqa: F401 - fills the registry
from temporal_worker.tools.registry import TOOLS, ToolArgumentsError, canonical_arguments


async def plan_calls(calls: list[ToolCall]) -> list[PlannedCall]:
    return [await _plan(call) for call in calls]


async def _plan(call: ToolCall) -> PlannedCall:
    definition = TOOLS.get(call.name)
    if definition is None:
        known = ", ".join(sorted(TOOLS))
        return PlannedCall(call=call, error=f"unknown tool {call.name!r}; available: {known}")
    try:
        args = definition.validate(call.arguments)
    except ToolArgumentsError as err:
        return PlannedCall(call=call, kind=definition.kind, error=str(err))
    arguments = canonical_arguments(args)
    return PlannedCall(
        call=call,
        kind=definition.kind,
        arguments=arguments,
        approval=await approval_rule_for(
            tool=definition.name,
            kind=definition.kind,
            threshold_argument=definition.threshold_argument,
            arguments=json.loads(arguments),
        ),
        summary=definition.summarize(args),
    )

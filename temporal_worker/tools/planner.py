"""Turns the model's raw tool calls into validated, policy-classified `PlannedCall`s.

Runs inside the LLM activity, so the plan (and the policy that applied) is
recorded in the workflow history once and never re-evaluated on replay.
"""

from __future__ import annotations

import json

from temporal_worker.contracts.tools import PlannedCall, ToolCall
from temporal_worker.ports import ApprovalPolicies
from temporal_worker.tools.registry import ToolArgumentsError, ToolRegistry


async def plan_calls(
    calls: list[ToolCall], *, registry: ToolRegistry, policies: ApprovalPolicies
) -> list[PlannedCall]:
    return [await _plan(call, registry, policies) for call in calls]


async def _plan(call: ToolCall, registry: ToolRegistry, policies: ApprovalPolicies) -> PlannedCall:
    definition = registry.get(call.name)
    if definition is None:
        known = ", ".join(sorted(registry.names()))
        return PlannedCall(call=call, error=f"unknown tool {call.name!r}; available: {known}")
    try:
        arguments = definition.validate(call.arguments)
    except ToolArgumentsError as err:
        return PlannedCall(call=call, kind=definition.kind, error=str(err))
    return PlannedCall(
        call=call,
        kind=definition.kind,
        arguments=arguments.canonical,
        approval=await policies.rule_for(
            tool=definition.name,
            kind=definition.kind,
            threshold_argument=definition.threshold_argument,
            arguments=json.loads(arguments.canonical),
        ),
        summary=definition.summarize(arguments),
    )

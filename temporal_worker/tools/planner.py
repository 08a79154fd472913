"""Turns the model's raw tool calls into validated, policy-classified `PlannedCall`s.

Runs inside the LLM activity, so the plan (and the policy that applied) is
recorded in the workflow history once and never re-evaluated on replay. Every tool,
whatever its source, is planned here the same way: the agent's tools are the only ones
it may call, its arguments must pass the tool's schema, and the approval policies decide
which calls wait for a reviewer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from temporal_worker.contracts.tools import PlannedCall, ToolCall
from temporal_worker.ports import ApprovalPolicies, PolicyOverride
from temporal_worker.tools.agents import HandoffTool
from temporal_worker.tools.base import ToolArgumentsError
from temporal_worker.tools.registry import ToolRegistry

ONE_HANDOFF = "only one hand-off per step: this one was not made"


async def plan_calls(
    calls: list[ToolCall],
    *,
    registry: ToolRegistry,
    policies: ApprovalPolicies,
    overrides: Mapping[str, PolicyOverride] | None = None,
) -> list[PlannedCall]:
    """`registry` holds the tools the agent may call (temporal_worker.tools.agents);
    `overrides` are its own approval policies, by tool name."""
    planned: list[PlannedCall] = []
    handed_off = False
    for call in calls:
        plan = await _plan(call, registry, policies, overrides or {})
        if plan.handoff:
            if handed_off:
                plan = PlannedCall(call=call, error=ONE_HANDOFF)
            handed_off = True
        planned.append(plan)
    return planned


async def _plan(
    call: ToolCall,
    registry: ToolRegistry,
    policies: ApprovalPolicies,
    overrides: Mapping[str, PolicyOverride],
) -> PlannedCall:
    definition = registry.get(call.name)
    if definition is None:
        known = ", ".join(sorted(registry.names())) or "none"
        return PlannedCall(call=call, error=f"unknown tool {call.name!r}; available: {known}")
    try:
        arguments = definition.validate(call.arguments)
    except ToolArgumentsError as err:
        return PlannedCall(call=call, kind=definition.kind, error=str(err))
    if isinstance(definition, HandoffTool):
        return PlannedCall(
            call=call,
            arguments=arguments.canonical,
            summary=definition.summarize(arguments),
            handoff=definition.target.slug,
            handoff_name=definition.target.name,
        )
    return PlannedCall(
        call=call,
        kind=definition.kind,
        arguments=arguments.canonical,
        approval=await policies.rule_for(
            tool=definition.name,
            kind=definition.kind,
            threshold_argument=definition.threshold_argument,
            arguments=json.loads(arguments.canonical),
            override=overrides.get(definition.name),
        ),
        summary=definition.summarize(arguments),
        source=definition.source,
        # What an outside source says its tool does, for the reviewer (built-in tools'
        # descriptions are the product's own, and reviewers know them).
        description=definition.description if definition.source else "",
        idempotent=definition.idempotent,
        start_to_close_seconds=definition.start_to_close_seconds,
        max_attempts=definition.max_attempts,
    )

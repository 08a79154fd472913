"""Which tool calls wait for a human: the agent's own override, the admin's policy, or the
default for the tool's kind."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from reviews.models import ApprovalPolicy
from temporal_worker.contracts.approvals import ApprovalRule
from temporal_worker.contracts.tools import ToolKind
from temporal_worker.ports import PolicyMode, PolicyOverride

DEFAULT_DEADLINE_SECONDS = 24 * 3600


async def approval_rule_for(
    *,
    tool: str,
    kind: ToolKind,
    threshold_argument: str | None,
    arguments: dict[str, Any],
    override: PolicyOverride | None = None,
) -> ApprovalRule | None:
    """The rule for this call, or None when it runs without asking.

    An agent's override for the tool wins over the policy table; without either, read
    tools (MCP tools the server marks `readOnlyHint`) run freely and writes ask."""
    policy = override or _as_override(await ApprovalPolicy.objects.filter(tool_name=tool).afirst())
    if policy is None:
        # Read tools run freely; anything that writes asks a human by default.
        if kind == "read":
            return None
        return ApprovalRule(
            deadline_seconds=DEFAULT_DEADLINE_SECONDS,
            timeout_action="reject",
            remind_after_seconds=DEFAULT_DEADLINE_SECONDS // 2,
            description="write tools always need approval (default)",
        )
    if policy.mode == "never":
        return None
    if policy.mode == "above":
        if not _exceeds(arguments.get(threshold_argument or ""), policy.threshold):
            return None
        description = f"{threshold_argument} above {policy.threshold}"
    else:
        description = "always needs approval"
    if override is not None:
        description += " (this agent's policy)"
    share = float(policy.remind_at_share)
    return ApprovalRule(
        deadline_seconds=policy.deadline_seconds,
        timeout_action="approve" if policy.timeout_action == "approve" else "reject",
        remind_after_seconds=int(policy.deadline_seconds * share) if 0 < share < 1 else 0,
        description=description,
    )


def _as_override(policy: ApprovalPolicy | None) -> PolicyOverride | None:
    """The table's row in the same shape as an agent's override: one rule for both."""
    if policy is None:
        return None
    mode: PolicyMode = (
        "never" if policy.mode == "never" else "above" if policy.mode == "above" else "always"
    )
    return PolicyOverride(
        mode=mode,
        deadline_seconds=policy.deadline_seconds,
        timeout_action=policy.timeout_action,
        remind_at_share=policy.remind_at_share,
        threshold=policy.threshold,
    )


def _exceeds(value: Any, threshold: Decimal | None) -> bool:
    if threshold is None:
        return True
    try:
        return Decimal(str(value)) > threshold
    except (InvalidOperation, ValueError):
        # An argument we cannot compare is treated as over the threshold: ask a human.
        return True


class PolicyTable:
    """Implements `temporal_worker.ports.ApprovalPolicies` with the admin's policy table."""

    async def rule_for(
        self,
        *,
        tool: str,
        kind: ToolKind,
        threshold_argument: str | None,
        arguments: Any,
        override: PolicyOverride | None = None,
    ) -> ApprovalRule | None:
        return await approval_rule_for(
            tool=tool,
            kind=kind,
            threshold_argument=threshold_argument,
            arguments=arguments,
            override=override,
        )

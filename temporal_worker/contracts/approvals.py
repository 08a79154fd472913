"""Approvals: the policy that applied to a call, the pending request, decisions and claims."""

import hashlib
from dataclasses import dataclass, field
from typing import Literal

NOTIFY_APPROVAL_ACTIVITY = "notify_approval"

DecisionAction = Literal["approve", "reject"]
# How an approval ended; "withdrawn" by the user. When the deadline passes the
# policy's default action applies, recorded as decided by the system.
ApprovalOutcome = Literal["approved", "rejected", "withdrawn"]
ApprovalEventKind = Literal["requested", "claimed", "reminder", "decided"]
# Where a reviewer decided (DecideApproval.channel). Plain strings, not a Literal, so a
# newer web's channel never fails to decode in an older worker.
CHANNEL_DASHBOARD = "dashboard"
CHANNEL_EMAIL = "email"
CHANNEL_SLACK = "slack"
DECISION_CHANNELS = (CHANNEL_DASHBOARD, CHANNEL_EMAIL, CHANNEL_SLACK)
# How a reviewer proved it was them just before a decision that a policy guards.
STEP_UP_METHODS = ("totp", "webauthn", "recovery_code", "password")

# Custom search attributes the dashboard lists pending approvals with. The dev
# server registers them at start (config.processes); a cluster needs them too.
SA_APPROVAL_PENDING = "ApprovalPending"  # Bool
SA_APPROVAL_TOOLS = "ApprovalTools"  # KeywordList
SA_APPROVAL_REQUESTER = "ApprovalRequester"  # Keyword
SEARCH_ATTRIBUTES = {
    SA_APPROVAL_PENDING: "Bool",
    SA_APPROVAL_TOOLS: "KeywordList",
    SA_APPROVAL_REQUESTER: "Keyword",
}
# The pending approvals themselves ride in the workflow's memo, which visibility
# returns with each listed workflow: the dashboard lists without a Query per workflow.
MEMO_PENDING_APPROVALS = "pendingApprovals"
# `workflow.patched` ids: histories from before each change replay without it.
PATCH_APPROVALS_MEMO = "approvals-memo"
# A claim is recorded for the audit by an activity (it used to be written by the web).
PATCH_CLAIM_AUDIT = "claim-audit"


REJECT_NEEDS_REASON = "A rejection needs a reason for the agent and the user."
EDITS_ONLY_WITH_APPROVE = "Edited arguments can only be approved."


def decision_problem(*, action: str, reason: str, edited_arguments: str) -> str:
    """What a decision lacks ("" when complete): the one statement of the rule, used by
    the workflow's validator (the authority) and by the web's forms before they ask it."""
    if action not in ("approve", "reject"):
        return "A decision is approve or reject."
    if action == "reject" and not reason.strip():
        return REJECT_NEEDS_REASON
    if edited_arguments.strip() and action != "approve":
        return EDITS_ONLY_WITH_APPROVE
    return ""


def arguments_hash(arguments: str) -> str:
    """Names the exact arguments a reviewer saw (canonical JSON in, short hex out)."""
    return hashlib.sha256(arguments.encode()).hexdigest()[:16]


@dataclass
class ApprovalRule:
    """The policy that applied to one call, resolved when the model asked for it."""

    deadline_seconds: int = 24 * 3600
    timeout_action: DecisionAction = "reject"
    # Remind reviewers once this many seconds have passed (0: never).
    remind_after_seconds: int = 0
    description: str = ""


@dataclass
class PendingApproval:
    call_id: str
    conversation_id: str
    requester_id: int
    tool: str
    arguments: str
    arguments_hash: str
    summary: str
    # The model's own words for why it wants the action.
    reason: str
    requested_at: str  # ISO 8601, from workflow.now()
    deadline: str
    timeout_action: DecisionAction
    claimed_by_id: int = 0
    claimed_by: str = ""
    reminded: bool = False
    # Where the tool comes from ("" for a built-in tool: "MCP server Warehouse (warehouse)")
    # and what it says it does, as its source describes it (text from outside: shown as text).
    tool_source: str = ""
    tool_description: str = ""
    # False when the tool's server is marked not idempotent in the admin.
    tool_idempotent: bool = True
    # The agent whose call it is (its slug; "" before agents): routes it to the reviewers
    # of that agent.
    agent: str = ""


@dataclass
class PendingRef:
    """What a workflow's memo says of one pending approval: its id and who claimed it.

    Ids only, so the memo stays far below Temporal's 2 KB memo warning with twenty
    approvals pending; the inbox reads the details from the audit table. (Memos written
    before this change hold whole `PendingApproval`s; readers accept both.)"""

    call_id: str
    claimed_by_id: int = 0
    claimed_by: str = ""


@dataclass
class DecideApproval:
    call_id: str
    action: DecisionAction
    reviewer_id: int
    reviewer: str
    # Hash of the arguments the reviewer saw: a decision on changed arguments is refused.
    arguments_hash: str
    reason: str = ""
    # Canonical JSON of arguments the reviewer edited (validated by the caller).
    edited_arguments: str = ""
    # The tool's one-line summary of the edited arguments: what will run.
    summary: str = ""
    # Where the reviewer decided: one of DECISION_CHANNELS.
    channel: str = CHANNEL_DASHBOARD
    # How the reviewer stepped up just before, when the policy asked for it (STEP_UP_*).
    step_up: str = ""


@dataclass
class ApprovalDecided:
    call_id: str
    outcome: ApprovalOutcome
    decided_by: str  # reviewer's name, "system" at the deadline, or the requester
    decided_by_id: int
    decided_at: str
    reason: str = ""
    arguments: str = ""
    edited: bool = False
    by_system: bool = False
    # With edited arguments: the summary of what ran ("" = the request's own summary).
    summary: str = ""
    # The reviewer's channel (DECISION_CHANNELS); "" for the deadline, a withdrawal, or a
    # decision recorded before channels existed.
    channel: str = ""
    # The decision's step-up (DecideApproval.step_up): recorded in the history.
    step_up: str = ""


@dataclass
class ClaimApproval:
    call_id: str
    reviewer_id: int
    reviewer: str


@dataclass
class ApprovalClaimed:
    call_id: str
    claimed_by: str


@dataclass
class WithdrawApproval:
    call_id: str


@dataclass
class PendingApprovals:
    conversation_id: str
    items: list[PendingApproval] = field(default_factory=list)


@dataclass
class ApprovalEvent:
    """Sent to the notify activity: mirrors the approval for audit and pushes it live."""

    kind: ApprovalEventKind
    approval: PendingApproval
    decision: ApprovalDecided | None = None


@dataclass
class ApprovalEventRecorded:
    call_id: str
    # Who the event was delivered to and where ("email:rita", "slack:#approvals"): the
    # workflow's history keeps it, as the record of who was asked and reminded where.
    asked: list[str] = field(default_factory=list)

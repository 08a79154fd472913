"""Block Kit for approvals: the request with its buttons, the same message once decided,
and the modal that asks for a rejection's reason.

Everything the model or a user wrote is escaped (`&`, `<`, `>`), so a summary cannot
mention @channel, link elsewhere or break the markup. Times are Slack date tokens: each
reader sees them in their own time zone.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from reviews.models import CHANNEL_LABELS, Approval
from reviews.selectors import pretty_json_value
from temporal_worker.contracts.approvals import ApprovalDecided

APPROVE_ACTION = "approve"
REJECT_ACTION = "reject"
OPEN_ACTION = "open"
REJECT_CALLBACK = "reject_reason"
REASON_BLOCK = "reason"
REASON_MAX_CHARS = 1000
# Block Kit limits a section's text to 3,000 characters.
REASON_SHOWN_CHARS = 1500
ARGUMENTS_SHOWN_CHARS = 2500
_HASH = re.compile(r"^[0-9a-f]{1,64}$")
CALL_ID_MAX_CHARS = 100


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_time(moment: datetime) -> str:
    """A time each reader sees in their own zone (the fallback reads UTC)."""
    utc = moment.astimezone(UTC)
    return (
        f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{utc:%Y-%m-%d %H:%M} UTC>"
    )


@dataclass(frozen=True)
class DecisionRef:
    """What a button or a modal decides on: the approval and the arguments it showed."""

    conversation_id: str
    call_id: str
    arguments_hash: str

    def __str__(self) -> str:
        return f"{self.conversation_id}|{self.call_id}|{self.arguments_hash}"

    @classmethod
    def parse(cls, value: object) -> DecisionRef | None:
        if not isinstance(value, str):
            return None
        parts = value.split("|")
        if len(parts) != 3:
            return None
        conversation_id, call_id, arguments_hash = parts
        try:
            uuid.UUID(conversation_id)
        except ValueError:
            return None
        if not 0 < len(call_id) <= CALL_ID_MAX_CHARS or not _HASH.match(arguments_hash):
            return None
        return cls(conversation_id, call_id, arguments_hash)

    @classmethod
    def of(cls, approval: Approval) -> DecisionRef:
        return cls(str(approval.conversation_id), approval.call_id, approval.arguments_hash)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _request_blocks(approval: Approval, headline: str) -> list[dict[str, Any]]:
    arguments = _clip(pretty_json_value(approval.arguments), ARGUMENTS_SHOWN_CHARS)
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{headline}\n*{escape(approval.summary)}*",
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Tool*\n`{escape(approval.tool)}`"},
                {
                    "type": "mrkdwn",
                    "text": f"*Requested by*\n{escape(_requester_name(approval))}",
                },
                {
                    "type": "mrkdwn",
                    "text": f"*Deadline*\n{slack_time(approval.deadline)}, then "
                    f"{escape(approval.timeout_action)}",
                },
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Why (the agent's words)*\n"
                + escape(_clip(approval.reason or "(no reason given)", REASON_SHOWN_CHARS)),
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*Arguments*\n```{escape(arguments)}```"},
        },
    ]


def _dashboard_url(approval: Approval) -> str:
    return settings.SITE_URL + reverse(
        "reviews:detail", args=[approval.conversation_id, approval.call_id]
    )


def request_message(approval: Approval, *, kind: str) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and blocks of a request (kind "request") or a reminder."""
    headline = (
        ":hourglass: *Reminder: still waiting for a decision*"
        if kind != "request"
        else ":raised_hand: *Approval needed*"
    )
    ref = str(DecisionRef.of(approval))
    blocks = _request_blocks(approval, headline)
    blocks.append(
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": ref,
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject…"},
                    "value": ref,
                },
                {
                    "type": "button",
                    "action_id": OPEN_ACTION,
                    "text": {"type": "plain_text", "text": "Open in the dashboard"},
                    "url": _dashboard_url(approval),
                },
            ],
        }
    )
    prefix = "Reminder: " if kind != "request" else "Approval needed: "
    return prefix + approval.summary, blocks


def outcome_line(decision: ApprovalDecided) -> str:
    """What happened, for the message decided in place."""
    at = slack_time(datetime.fromisoformat(decision.decided_at))
    if decision.by_system:
        line = f"*{decision.outcome.capitalize()}* when the deadline passed ({at}): nobody decided"
    elif decision.outcome == "withdrawn":
        line = f"*Withdrawn* by the user at {at}"
    else:
        via = CHANNEL_LABELS.get(decision.channel or "dashboard", decision.channel)
        icon = ":white_check_mark:" if decision.outcome == "approved" else ":x:"
        who = escape(decision.decided_by)
        line = f"{icon} *{decision.outcome.capitalize()}* by {who} via {via} at {at}"
        if decision.edited:
            line += ", with edited arguments"
    if decision.reason and not decision.by_system and decision.outcome != "withdrawn":
        line += f"\n>{escape(_clip(decision.reason, REASON_SHOWN_CHARS))}"
    return line


def outcome_message(
    approval: Approval, decision: ApprovalDecided
) -> tuple[str, list[dict[str, Any]]]:
    """The request as it was asked, without its buttons, and what became of it."""
    blocks = _request_blocks(approval, "*Approval request*")
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome_line(decision)}})
    return f"{decision.outcome.capitalize()}: {approval.summary}", blocks


def reject_modal(ref: DecisionRef, summary: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": str(ref),
        "title": {"type": "plain_text", "text": "Reject the request"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(summary)}*"}},
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason (the agent and the user read it)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_BLOCK,
                    "multiline": True,
                    "max_length": REASON_MAX_CHARS,
                },
            },
        ],
    }


def _requester_name(approval: Approval) -> str:
    # None once the requester's account was deleted (the audit row stays).
    return approval.requester.get_username() if approval.requester else ""

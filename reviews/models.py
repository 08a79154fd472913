"""Approval policies and reviewers (edited by admins), and the approvals audit mirror.

The workflow history is the record of every decision; `Approval` mirrors it so
the history page and the admin can filter and read it fast. `ApprovalDelivery` says
who was asked (and reminded) where; `ApprovalLink` is the secret behind a reviewer's
email links.
"""

from __future__ import annotations

import secrets
import zoneinfo
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone


def validate_time_zone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ValidationError(f"{name!r} is not a time zone (e.g. Europe/Berlin).") from err


def _names(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())


class ReviewerProfile(models.Model):
    """Where and about what a reviewer is asked. A reviewer (a user with the review
    permission) without a profile is asked by email, at the account's address, about
    every tool."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    email = models.EmailField(
        blank=True, help_text="Where approval emails go (empty = the account's address)."
    )
    slack_user_id = models.CharField(
        "Slack member id",
        max_length=32,
        blank=True,
        validators=[RegexValidator(r"^[UW][A-Z0-9]{2,31}$", "A Slack member id, like U024BE7LH.")],
        help_text="Their Slack member id (profile → ⋮ → Copy member ID): their clicks in "
        "Slack count as theirs; without it, Slack refuses them.",
    )
    notify_by_email = models.BooleanField("ask by email", default=True)
    notify_by_slack = models.BooleanField(
        "ask by Slack direct message",
        default=True,
        help_text="When the policy names no Slack channel.",
    )
    tools = models.TextField(
        blank=True,
        help_text="The tools they are asked about, comma separated (empty = every tool).",
    )
    agents = models.TextField(
        blank=True,
        help_text="The agents whose requests they are asked about, comma separated "
        "(empty = every agent).",
    )
    out_of_office_until = models.DateTimeField(
        null=True, blank=True, help_text="Not asked nor reminded until then (empty = available)."
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Times in their emails and Slack replies read in this zone.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slack_user_id"],
                condition=~models.Q(slack_user_id=""),
                name="one_reviewer_per_slack_user",
            )
        ]

    def __str__(self) -> str:
        return f"reviewer {self.user.get_username()}"

    @property
    def tool_names(self) -> frozenset[str]:
        return _names(self.tools)

    @property
    def agent_names(self) -> frozenset[str]:
        return _names(self.agents)

    def reviews(self, *, tool: str, agent: str = "") -> bool:
        if self.tool_names and tool not in self.tool_names:
            return False
        return not (self.agent_names and agent and agent not in self.agent_names)

    def away(self, now: datetime | None = None) -> bool:
        until = self.out_of_office_until
        return until is not None and (now or timezone.now()) < until


class ApprovalPolicy(models.Model):
    class Mode(models.TextChoices):
        NEVER = "never", "Never ask"
        ALWAYS = "always", "Always ask"
        ABOVE = "above", "Ask above a threshold"

    class TimeoutAction(models.TextChoices):
        REJECT = "reject", "Reject"
        APPROVE = "approve", "Approve"

    tool_name = models.CharField(max_length=64, unique=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ALWAYS)
    threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="With 'above': ask only when the tool's threshold argument exceeds this.",
    )
    deadline_seconds = models.PositiveIntegerField(
        default=24 * 3600,
        validators=[MinValueValidator(10), MaxValueValidator(90 * 24 * 3600)],
        help_text="How long reviewers have before the timeout action applies (at most 90 days).",
    )
    timeout_action = models.CharField(
        max_length=8, choices=TimeoutAction.choices, default=TimeoutAction.REJECT
    )
    remind_at_share = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.50"),
        help_text="Remind reviewers once this share of the deadline has passed (0 = never).",
    )
    reviewer_group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The reviewers asked by email and Slack: the group's members who may "
        "review (empty = every reviewer).",
    )
    slack_channel = models.CharField(
        max_length=80,
        blank=True,
        validators=[
            RegexValidator(r"^(#[a-z0-9._-]{1,79}|[CG][A-Z0-9]{2,30})$", "#channel-name or an id")
        ],
        help_text="Post the request in this Slack channel (#approvals or its id); empty = "
        "direct messages to the reviewers with a Slack id.",
    )
    escalation_group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Also asked when the reminder goes out, or at once when nobody in the "
        "first group is available.",
    )

    step_up_always = models.BooleanField(
        "step-up for every approval",
        default=False,
        help_text="Approving this tool needs a fresh second factor (or the password, for "
        "accounts without one), whatever the amount. Slack cannot ask for it: decisions "
        "there are refused and sent to the web.",
    )
    step_up_above = models.DecimalField(
        "step-up above",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Approving needs a fresh second factor when the tool's threshold argument "
        "(e.g. a refund's amount) exceeds this (empty = not for amounts).",
    )

    class Meta:
        verbose_name_plural = "approval policies"
        ordering = ["tool_name"]

    def __str__(self) -> str:
        return f"{self.tool_name}: {self.get_mode_display()}"

    def needs_step_up(self, amount: Decimal | None) -> bool:
        """Whether approving a call with this amount (None: the tool has none, or it is
        unreadable) needs a fresh second factor. An unreadable amount fails closed."""
        if self.step_up_always:
            return True
        if self.step_up_above is None:
            return False
        return amount is None or amount > self.step_up_above


class Approval(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"

    workflow_id = models.CharField(max_length=200)
    call_id = models.CharField(max_length=100)
    # Empty once the conversation (or its owner) was deleted: the row stays for the audit,
    # without the message text or the arguments (redacted_at says when).
    conversation = models.ForeignKey(
        "chatapp.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approvals",
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approval_requests",
    )
    tool = models.CharField(max_length=64)
    # The agent whose call it is ("" before agents): routes it to that agent's reviewers.
    agent = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=300)
    reason = models.TextField(blank=True, help_text="The agent's own words for why.")
    arguments = models.JSONField(default=dict)
    # Names the exact arguments reviewers see (the workflow refuses a decision on others).
    arguments_hash = models.CharField(max_length=64, blank=True)
    requested_at = models.DateTimeField()
    deadline = models.DateTimeField()
    timeout_action = models.CharField(max_length=8)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_approvals",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decided_approvals",
    )
    decided_by_system = models.BooleanField(default=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    edited_arguments = models.JSONField(null=True, blank=True)
    # What ran when a reviewer edited the arguments (the tool's summary of the edit).
    edited_summary = models.CharField(max_length=300, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    # Where the decision was made.
    decision_channel = models.CharField(max_length=16, blank=True)
    # How the reviewer proved it was them just before deciding, when the policy asked
    # ("totp", "webauthn", "recovery_code", "password"; empty: no step-up).
    step_up = models.CharField(max_length=16, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(fields=["workflow_id", "call_id"], name="one_approval_per_call")
        ]
        permissions = [("review_approvals", "Can review the agent's actions")]

    def __str__(self) -> str:
        return f"{self.summary} ({self.status})"

    @property
    def ran_summary(self) -> str:
        """What the agent's action did: the edited call when a reviewer changed it."""
        return self.edited_summary or self.summary

    @property
    def decided_by_label(self) -> str:
        if self.decided_by_system:
            return "system (deadline passed)"
        return self.decided_by.get_username() if self.decided_by else ""

    @property
    def decided_via(self) -> str:
        """Where it was decided, as a reader says it ("email", "Slack", "the dashboard")."""
        return CHANNEL_LABELS.get(self.decision_channel, self.decision_channel)


CHANNEL_LABELS = {
    "dashboard": "the dashboard",
    "email": "email",
    "slack": "Slack",
    "deadline": "the deadline",
    "chat": "the chat",
}


class ApprovalDelivery(models.Model):
    """One email or Slack message about an approval: who was asked (or reminded) where.

    The notify activity runs at least once; a row per approval, recipient, kind and
    channel (unique) is claimed before sending and marked sent after, so a retried
    activity never mails or posts twice."""

    class Kind(models.TextChoices):
        REQUEST = "request"
        REMINDER = "reminder"
        ESCALATION = "escalation"

    class Channel(models.TextChoices):
        EMAIL = "email"
        SLACK = "slack", "Slack"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # The reviewer asked (an email, a Slack direct message); empty for a Slack channel.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approval_deliveries",
    )
    # The address, Slack channel or Slack member id it went to.
    recipient = models.CharField(max_length=254)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Where the Slack message is, to show the outcome in place (chat.update).
    slack_channel_id = models.CharField(max_length=32, blank=True)
    slack_ts = models.CharField(max_length=32, blank=True)
    outcome_shown_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name_plural = "approval deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["approval", "kind", "channel", "reviewer"],
                condition=models.Q(reviewer__isnull=False),
                name="one_delivery_per_reviewer",
            ),
            models.UniqueConstraint(
                fields=["approval", "kind", "channel", "recipient"],
                condition=models.Q(reviewer__isnull=True),
                name="one_delivery_per_destination",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} to {self.label}"

    @property
    def label(self) -> str:
        """Who it went to, as the audit shows it: a reviewer's name, or the channel."""
        return self.reviewer.get_username() if self.reviewer else self.recipient

    @property
    def asked(self) -> str:
        """The workflow's record of it: "email:rita", "slack:#approvals"."""
        return f"{self.channel}:{self.label}"


def _link_nonce() -> str:
    return secrets.token_urlsafe(18)


class ApprovalLink(models.Model):
    """The secret behind one reviewer's email links for one approval.

    Its signed tokens name it, the reviewer, the argument fingerprint and the deadline;
    one decision uses it up (both links, request and reminder mail alike)."""

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="links")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval_links"
    )
    nonce = models.CharField(max_length=32, default=_link_nonce)
    arguments_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_action = models.CharField(max_length=8, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["approval", "reviewer"], name="one_link_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"link for {self.reviewer_id} on approval {self.approval_id}"


class SlackRequestSeen(models.Model):
    """Signatures of Slack requests already handled: a replayed request is refused (Slack
    signs each request once; its timestamp bounds how long one needs keeping)."""

    signature = models.CharField(max_length=80, unique=True)
    received_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.signature

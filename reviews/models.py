"""Approval policies (edited by admins) and the approvals audit mirror.

The workflow history is the record of every decision; `Approval` mirrors it so
the history page and the admin can filter and read it fast.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


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

    class Meta:
        verbose_name_plural = "approval policies"
        ordering = ["tool_name"]

    def __str__(self) -> str:
        return f"{self.tool_name}: {self.get_mode_display()}"


class Approval(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"

    workflow_id = models.CharField(max_length=200)
    call_id = models.CharField(max_length=100)
    conversation = models.ForeignKey(
        "chatapp.Conversation", on_delete=models.CASCADE, related_name="approvals"
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval_requests"
    )
    tool = models.CharField(max_length=64)
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

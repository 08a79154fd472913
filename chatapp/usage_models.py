"""What model calls cost: every call's usage, the prices per model, the budgets and who hit
them (docs/observability.md).

`ModelCall` and `BudgetHit` have one writer, the worker (through chatapp/usage.py); prices
and budgets are set in the admin. Costs are computed when read, with the price in force at
each call's time, so a price entered later applies to the calls it covers.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce


def _money(help_text: str = "") -> models.DecimalField[Decimal, Decimal]:
    """An amount in USD, to a hundredth of a cent."""
    return models.DecimalField(
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=help_text,
    )


class ModelCall(models.Model):
    """One model call (one activity attempt: a retry is a call of its own), with the tokens
    the provider reported. A call that failed before the report arrived has none."""

    class Outcome(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STOPPED = "stopped", "Stopped by the user"
        FAILED = "failed", "Failed"

    conversation = models.ForeignKey(
        "chatapp.Conversation", on_delete=models.CASCADE, related_name="model_calls"
    )
    # The reply this call was for (its message exists only once a call completed or stopped).
    reply_id = models.UUIDField()
    attempt = models.PositiveIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_calls"
    )
    # Kept when the agent is deleted: the spend stays on the books under its slug.
    agent = models.ForeignKey(
        "chatapp.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent_slug = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=100, help_text="The model asked for; prices use it.")
    reported_model = models.CharField(max_length=100, blank=True)
    at = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reported = models.BooleanField(default=False, help_text="The provider sent its usage.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Part of prompt_tokens read from the provider's prompt cache.
    cached_tokens = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(fields=["reply_id", "attempt"], name="one_row_per_attempt")
        ]
        indexes = [
            models.Index(fields=["user", "at"]),
            models.Index(fields=["agent", "at"]),
            models.Index(fields=["conversation", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.model} call {self.reply_id} #{self.attempt}"


class ModelPrice(models.Model):
    """A model's price per million tokens from a date on; the latest one that started on or
    before a call's time applies to it."""

    model = models.CharField(max_length=100, help_text="As agents name it (e.g. gpt-4o-mini).")
    valid_from = models.DateTimeField(help_text="Applies to calls from this time on.")
    input_per_million = _money("USD per million input tokens")
    output_per_million = _money("USD per million output tokens")
    cached_per_million = _money("USD per million input tokens read from the prompt cache")

    class Meta:
        ordering = ["model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "valid_from"], name="one_price_per_start")
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.valid_from:%Y-%m-%d}"


class UserBudget(models.Model):
    """What a user may spend per day (UTC). The row without a user is everyone's default."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="daily_budget",
        help_text="Empty: every user without a budget of their own.",
    )
    daily_limit_usd = _money("USD per day (UTC)")

    class Meta:
        verbose_name = "user budget (per day)"
        constraints = [
            # One row without a user (the default): no user id is 0.
            models.UniqueConstraint(
                Coalesce("user", models.Value(0)),
                name="one_budget_per_user_and_one_default",
                violation_error_message="There is already a budget for every user.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user or 'every user'}: {self.daily_limit_usd} USD a day"


class AgentBudget(models.Model):
    """What an agent may spend per calendar month (UTC), across all its users."""

    agent = models.OneToOneField(
        "chatapp.Agent", on_delete=models.CASCADE, related_name="monthly_budget"
    )
    monthly_limit_usd = _money("USD per calendar month (UTC)")

    class Meta:
        verbose_name = "agent budget (per month)"

    def __str__(self) -> str:
        return f"{self.agent}: {self.monthly_limit_usd} USD a month"


class BudgetHit(models.Model):
    """A model call refused because a budget was used up: who, which limit, when."""

    class Scope(models.TextChoices):
        USER_DAY = "user_day", "User, per day"
        AGENT_MONTH = "agent_month", "Agent, per month"

    at = models.DateTimeField(db_index=True)
    scope = models.CharField(max_length=12, choices=Scope.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget_hits"
    )
    agent = models.ForeignKey(
        "chatapp.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation = models.ForeignKey(
        "chatapp.Conversation", on_delete=models.CASCADE, related_name="budget_hits"
    )
    limit_usd = models.DecimalField(max_digits=12, decimal_places=4)
    spent_usd = models.DecimalField(max_digits=16, decimal_places=6)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.user} hit the {self.get_scope_display()} limit at {self.at}"

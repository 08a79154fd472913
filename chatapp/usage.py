"""Model calls' usage and cost: the worker's ledger (it implements
`temporal_worker.ports.UsageLedger`) and the sums the admin and the conversation page read.

A call's cost is computed when read, with the price in force at the call's time:
(prompt - cached) * input + cached * cached + completion * output, per million tokens.
A model without a price costs nothing (and so no budget stops it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db.models import (
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, Coalesce, TruncDate

from chatapp import configuration
from chatapp.models import Agent, Conversation
from chatapp.usage_models import AgentBudget, BudgetHit, ModelCall, ModelPrice, UserBudget
from temporal_worker.ports import BudgetRefusal, ModelCallUsage

COST: DecimalField[Decimal, Decimal] = DecimalField(max_digits=20, decimal_places=10)
ZERO = Decimal("0")


def _price(field: str) -> Coalesce:
    """The price in force at the call's time (the latest that started on or before it)."""
    in_force = (
        ModelPrice.objects.filter(model=OuterRef("model"), valid_from__lte=OuterRef("at"))
        .order_by("-valid_from")
        .values(field)[:1]
    )
    return Coalesce(Subquery(in_force, output_field=COST), Value(ZERO, output_field=COST))


def call_cost() -> ExpressionWrapper:
    """One call's cost in USD, as a query expression."""
    # In floating point: SQLite keeps whole prices as integers and would divide them as
    # such. Sums are rounded to a millionth of a dollar (`_money`).
    return ExpressionWrapper(
        (
            _tokens(F("prompt_tokens") - F("cached_tokens")) * _price("input_per_million")
            + _tokens(F("cached_tokens")) * _price("cached_per_million")
            + _tokens(F("completion_tokens")) * _price("output_per_million")
        )
        / Value(1_000_000.0, output_field=FloatField()),
        output_field=FloatField(),
    )


def _tokens(count: Combinable) -> Cast:
    return Cast(count, output_field=FloatField())


def with_cost(calls: QuerySet[ModelCall]) -> QuerySet[ModelCall]:
    return calls.annotate(cost=call_cost())


@dataclass(frozen=True)
class Totals:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal = ZERO


def totals(calls: QuerySet[ModelCall]) -> Totals:
    """Calls, tokens and cost of these calls (attempts that failed included)."""
    row = with_cost(calls).aggregate(
        n=Coalesce(Sum(Value(1)), 0),
        prompt=Coalesce(Sum("prompt_tokens"), 0),
        completion=Coalesce(Sum("completion_tokens"), 0),
        cached=Coalesce(Sum("cached_tokens"), 0),
        total=Sum("cost"),
    )
    return Totals(
        calls=row["n"],
        prompt_tokens=row["prompt"],
        completion_tokens=row["completion"],
        cached_tokens=row["cached"],
        cost=_money(row["total"]),
    )


def _money(value: Decimal | float | None) -> Decimal:
    # SQLite returns sums of decimals as floats: round to a millionth of a dollar either way.
    return Decimal(str(value or 0)).quantize(Decimal("0.000001"))


def cost_by(calls: QuerySet[ModelCall], *fields: str) -> list[dict[str, object]]:
    """Tokens and cost grouped by `fields` (e.g. "user__username", "agent_slug", "day")."""
    grouped = (
        with_cost(calls.annotate(day=TruncDate("at")))
        .values(*fields)
        .annotate(
            calls=Sum(Value(1)),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cached=Sum("cached_tokens"),
            total=Sum("cost"),
        )
        .order_by(*fields)
    )
    return [{**row, "total": _money(row["total"])} for row in grouped]


def daily_costs(calls: QuerySet[ModelCall], days: int, today: date) -> list[tuple[date, Decimal]]:
    """The cost of each of the last `days` days (UTC), a day without calls as zero."""
    first = today - timedelta(days=days - 1)
    spent: dict[object, Decimal] = {
        row["day"]: _money(row["total"])  # type: ignore[arg-type]
        for row in cost_by(calls.filter(at__date__gte=first), "day")
        if row["day"] is not None
    }
    return [(day, spent.get(day, ZERO)) for day in (first + timedelta(n) for n in range(days))]


def conversation_cost(conversation_id: uuid.UUID) -> Totals:
    return totals(ModelCall.objects.filter(conversation_id=conversation_id))


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(now: datetime) -> datetime:
    return _day_start(now).replace(day=1)


RECORDED_FIELDS = [
    "conversation",
    "user",
    "agent",
    "agent_slug",
    "model",
    "reported_model",
    "at",
    "duration_ms",
    "outcome",
    "reported",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "error",
    "trace_id",
]


class UsageTable:
    """The worker's ledger: one row per model call, budgets checked before each call."""

    async def record_call(self, call: ModelCallUsage) -> None:
        await sync_to_async(_record_call)(call)

    async def check_budget(self, *, conversation_id: str, agent: str) -> BudgetRefusal | None:
        return await sync_to_async(_check_budget)(conversation_id, agent)


def _record_call(call: ModelCallUsage) -> None:
    owner_id = Conversation.objects.filter(id=call.conversation_id).values_list(
        "owner_id", flat=True
    )
    agent_id = (
        Agent.objects.filter(slug=call.agent).values_list("pk", flat=True) if call.agent else None
    )
    row = ModelCall(
        reply_id=uuid.UUID(call.reply_id),
        attempt=call.attempt,
        conversation_id=uuid.UUID(call.conversation_id),
        # Subqueries: the insert is the call's one query.
        user_id=Subquery(owner_id[:1]),
        agent_id=Subquery(agent_id[:1]) if agent_id is not None else None,
        agent_slug=call.agent,
        model=call.model,
        reported_model=call.reported_model,
        at=call.started_at,
        duration_ms=call.duration_ms,
        outcome=call.outcome,
        reported=call.reported,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cached_tokens=call.cached_tokens,
        error=call.error[:200],
        trace_id=call.trace_id,
    )
    # Idempotent: an activity that is run again after recording keeps one row per attempt.
    ModelCall.objects.bulk_create(
        [row],
        update_conflicts=True,
        unique_fields=["reply_id", "attempt"],
        update_fields=RECORDED_FIELDS,
    )


def _check_budget(conversation_id: str, agent_slug: str) -> BudgetRefusal | None:
    # Most installations set no budget: then the check is the configuration version's
    # one query, not five.
    if not configuration.snapshot().get("budgets exist", _budgets_exist):
        return None
    conversation = Conversation.objects.select_related("agent").filter(id=conversation_id).first()
    if conversation is None:
        return None  # deleted meanwhile: the step finds out on its own
    agent = Agent.objects.filter(slug=agent_slug).first() if agent_slug else conversation.agent
    now = datetime.now(UTC)
    refusal = _user_refusal(conversation.owner_id, now)
    if refusal is None and agent is not None:
        refusal = _agent_refusal(agent, now)
    if refusal is not None:
        BudgetHit.objects.create(
            at=now,
            scope=refusal.scope,
            user_id=conversation.owner_id,
            agent=agent,
            conversation=conversation,
            limit_usd=refusal.limit,
            spent_usd=refusal.spent,
        )
    return refusal


def _budgets_exist() -> bool:
    return UserBudget.objects.exists() or AgentBudget.objects.exists()


def _user_refusal(user_id: int, now: datetime) -> BudgetRefusal | None:
    budget = (
        UserBudget.objects.filter(user_id=user_id).first()
        or UserBudget.objects.filter(user__isnull=True).first()
    )
    if budget is None:
        return None
    spent = totals(ModelCall.objects.filter(user_id=user_id, at__gte=_day_start(now))).cost
    if spent < budget.daily_limit_usd:
        return None
    return BudgetRefusal(scope="user_day", limit=budget.daily_limit_usd, spent=spent)


def _agent_refusal(agent: Agent, now: datetime) -> BudgetRefusal | None:
    budget = AgentBudget.objects.filter(agent=agent).first()
    if budget is None:
        return None
    spent = totals(ModelCall.objects.filter(agent=agent, at__gte=_month_start(now))).cost
    if spent < budget.monthly_limit_usd:
        return None
    return BudgetRefusal(scope="agent_month", limit=budget.monthly_limit_usd, spent=spent)

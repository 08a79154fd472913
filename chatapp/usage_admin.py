"""The admin of usage and cost: model calls (read-only, the worker writes them), prices,
budgets, who hit a budget, and a report of cost per user, agent and conversation with a
chart of the last days (an inline SVG drawn on the server)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chatapp import usage
from chatapp.usage_models import AgentBudget, BudgetHit, ModelCall, ModelPrice, UserBudget

REPORT_DAYS = 30
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 720, 180, 16
TOP_CONVERSATIONS = 20


def trace_link(trace_id: str) -> SafeString | str:
    """A link to the turn's trace in the tracing UI (TRACE_URL_TEMPLATE), or its id."""
    if not trace_id:
        return "—"
    template: str = settings.TRACE_URL_TEMPLATE
    if not template:
        return trace_id
    return format_html(
        '<a href="{}" target="_blank" rel="noopener">{}</a>',
        template.format(trace_id=trace_id),
        trace_id[:12] + "…",
    )


class _ReadOnly:
    """Rows the worker writes: the admin reads them, never edits them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ModelCallInline(_ReadOnly, admin.TabularInline):
    """A conversation's model calls, each with its cost and its trace."""

    model = ModelCall
    fields = (
        "at",
        "attempt",
        "outcome",
        "model",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "cost",
        "trace",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelCall]:
        return usage.with_cost(super().get_queryset(request))

    @admin.display(description="cost (USD)")
    def cost(self, obj: ModelCall) -> str:
        return f"{Decimal(str(getattr(obj, 'cost', 0) or 0)):.6f}"

    @admin.display(description="trace")
    def trace(self, obj: ModelCall) -> SafeString | str:
        return trace_link(obj.trace_id)


@admin.register(ModelCall)
class ModelCallAdmin(_ReadOnly, admin.ModelAdmin):
    change_list_template = "admin/chatapp/modelcall/change_list.html"
    list_display = (
        "at",
        "user",
        "agent_slug",
        "model",
        "attempt",
        "outcome",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "cost",
        "duration_ms",
        "trace",
    )
    list_filter = ("outcome", "model", "agent_slug")
    search_fields = ("user__username", "conversation__id", "trace_id")
    date_hierarchy = "at"
    list_select_related = ("user",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelCall]:
        return usage.with_cost(super().get_queryset(request))

    @admin.display(description="cost (USD)")
    def cost(self, obj: ModelCall) -> str:
        return f"{Decimal(str(getattr(obj, 'cost', 0) or 0)):.6f}"

    @admin.display(description="trace")
    def trace(self, obj: ModelCall) -> SafeString | str:
        return trace_link(obj.trace_id)

    def get_urls(self) -> list[URLPattern]:
        report = path(
            "report/",
            self.admin_site.admin_view(self.report_view),
            name="chatapp_modelcall_report",
        )
        return [report, *super().get_urls()]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        calls = ModelCall.objects.all()
        today = datetime.now(UTC).date()
        days = usage.daily_costs(calls, REPORT_DAYS, today)
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage and cost",
            "opts": self.model._meta,
            "total": usage.totals(calls),
            "by_user": usage.cost_by(calls, "user__username"),
            "by_agent": usage.cost_by(calls, "agent_slug"),
            "by_model": usage.cost_by(calls, "model"),
            "by_conversation": sorted(
                usage.cost_by(calls, "conversation_id", "conversation__title", "user__username"),
                key=lambda row: row["total"],  # type: ignore[arg-type, return-value]
                reverse=True,
            )[:TOP_CONVERSATIONS],
            "chart": bar_chart(days),
            "days": REPORT_DAYS,
            "hits": BudgetHit.objects.select_related("user", "agent")[:20],
        }
        return TemplateResponse(request, "admin/chatapp/usage_report.html", context)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    cost: Decimal


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: Decimal
    baseline: float


def bar_chart(days: list[tuple[Any, Decimal]]) -> Chart:
    """Bars scaled to the busiest day; drawn by the template as SVG rectangles."""
    peak = max((cost for _, cost in days), default=Decimal("0"))
    slot = CHART_WIDTH / max(1, len(days))
    usable = CHART_HEIGHT - CHART_TOP
    bars = []
    for index, (day, cost) in enumerate(days):
        height = float(cost / peak) * usable if peak else 0.0
        bars.append(
            Bar(
                x=round(index * slot + 1, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(slot - 2, 2),
                height=round(height, 2),
                day=day.isoformat(),
                cost=cost,
            )
        )
    return Chart(
        width=CHART_WIDTH, height=CHART_HEIGHT, bars=bars, peak=peak, baseline=CHART_HEIGHT
    )


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model",
        "valid_from",
        "input_per_million",
        "cached_per_million",
        "output_per_million",
    )
    list_filter = ("model",)


@admin.register(UserBudget)
class UserBudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "daily_limit_usd")
    autocomplete_fields = ("user",)


@admin.register(AgentBudget)
class AgentBudgetAdmin(admin.ModelAdmin):
    list_display = ("agent", "monthly_limit_usd")


@admin.register(BudgetHit)
class BudgetHitAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("at", "user", "scope", "agent", "limit_usd", "spent_usd", "conversation")
    list_filter = ("scope", "agent")
    search_fields = ("user__username",)
    date_hierarchy = "at"
    list_select_related = ("user", "agent", "conversation")

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from reviews.models import Approval, ApprovalDelivery, ApprovalPolicy, ReviewerProfile
from temporal_worker import client


def temporal_ui_link(workflow_id: str) -> SafeString:
    url = client.workflow_ui_url(workflow_id)
    return format_html('<a href="{}" target="_blank" rel="noopener">{} ↗</a>', url, workflow_id)


class ReadOnlyMirrorMixin:
    """Rows that mirror workflow state: the workflow history is the record, not this table."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "tool_name",
        "mode",
        "threshold",
        "deadline",
        "timeout_action",
        "remind_at_share",
        "asked",
        "step_up",
    )
    list_filter = ("mode", "timeout_action")
    list_select_related = ("reviewer_group", "escalation_group")
    search_fields = ("tool_name",)
    fieldsets = (
        (None, {"fields": ("tool_name", "mode", "threshold")}),
        (
            "Who is asked, where",
            {
                "fields": ("reviewer_group", "slack_channel", "escalation_group"),
                "description": "Reviewers are users with the “Can review the agent's "
                "actions” permission; each is asked by email and Slack as their reviewer "
                "profile says (out of office: not asked). Everyone who may review can "
                "always decide on the dashboard.",
            },
        ),
        (
            "When nobody decides",
            {"fields": ("deadline_seconds", "timeout_action", "remind_at_share")},
        ),
        (
            "Step-up",
            {
                "fields": ("step_up_always", "step_up_above"),
                "description": "Approving (not rejecting) then needs the reviewer's second "
                "factor again, or their password if their account has none and none is "
                "required, within the last few minutes (STEP_UP_MAX_AGE_SECONDS). Slack "
                "decisions are refused with a link to the web.",
            },
        ),
    )

    @admin.display(description="asked")
    def asked(self, obj: ApprovalPolicy) -> str:
        group = obj.reviewer_group.name if obj.reviewer_group else "every reviewer"
        where = f", Slack {obj.slack_channel}" if obj.slack_channel else ""
        escalation = f"; then {obj.escalation_group.name}" if obj.escalation_group else ""
        return f"{group}{where}{escalation}"

    @admin.display(description="step-up")
    def step_up(self, obj: ApprovalPolicy) -> str:
        if obj.step_up_always:
            return "always"
        return f"above {obj.step_up_above}" if obj.step_up_above is not None else "—"

    @admin.display(description="deadline", ordering="deadline_seconds")
    def deadline(self, obj: ApprovalPolicy) -> str:
        return exact_duration(obj.deadline_seconds)


def exact_duration(seconds: int) -> str:
    """Every unit that is not zero, so nothing is rounded away: 20 s, 1 h 30 s, 2 d 4 h."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts) or "0 s"


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(admin.ModelAdmin):
    """Where reviewers are asked (email, Slack), about what, and when they are away."""

    list_display = (
        "user",
        "email_used",
        "slack_user_id",
        "tools",
        "out_of_office_until",
        "time_zone",
    )
    list_select_related = ("user",)
    search_fields = ("user__username", "email", "user__email", "slack_user_id")
    raw_id_fields = ("user",)
    fieldsets = (
        (None, {"fields": ("user", "time_zone", "out_of_office_until")}),
        ("Email", {"fields": ("notify_by_email", "email")}),
        ("Slack", {"fields": ("notify_by_slack", "slack_user_id")}),
        ("What they review", {"fields": ("tools", "agents")}),
    )

    @admin.display(description="email")
    def email_used(self, obj: ReviewerProfile) -> str:
        return obj.email or obj.user.email


class ApprovalDeliveryInline(admin.TabularInline):
    """Who was asked, reminded and escalated to, where, and whether it went out."""

    model = ApprovalDelivery
    extra = 0
    can_delete = False
    fields = (
        "kind",
        "channel",
        "to",
        "status",
        "attempts",
        "error",
        "sent_at",
        "outcome_shown_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="to")
    def to(self, obj: ApprovalDelivery) -> str:
        if obj.reviewer is None:
            return obj.recipient
        return f"{obj.reviewer.get_username()} ({obj.recipient})"


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyMirrorMixin, admin.ModelAdmin):
    """The decisions' audit mirror: read only (the workflow history is the record)."""

    list_display = (
        "summary",
        "tool",
        "status",
        "requester",
        "decided_by_display",
        "decision_channel",
        "step_up",
        "requested_at",
        "decided_at",
        "workflow",
    )
    list_filter = ("status", "decision_channel", "tool", "decided_by_system", "requested_at")
    inlines = (ApprovalDeliveryInline,)
    search_fields = ("summary", "call_id", "workflow_id", "requester__username")
    date_hierarchy = "requested_at"
    list_select_related = ("requester", "decided_by")
    readonly_fields = [f.name for f in Approval._meta.fields] + ["workflow"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="decided by")
    def decided_by_display(self, obj: Approval) -> str:
        return obj.decided_by_label

    @admin.display(description="Temporal workflow")
    def workflow(self, obj: Approval) -> SafeString:
        return temporal_ui_link(obj.workflow_id)

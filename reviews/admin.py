from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from reviews.models import Approval, ApprovalPolicy
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
    )
    list_filter = ("mode", "timeout_action")
    search_fields = ("tool_name",)
    fieldsets = (
        (None, {"fields": ("tool_name", "mode", "threshold")}),
        (
            "When nobody decides",
            {"fields": ("deadline_seconds", "timeout_action", "remind_at_share")},
        ),
    )

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


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyMirrorMixin, admin.ModelAdmin):
    """The decisions' audit mirror: read only (the workflow history is the record)."""

    list_display = (
        "summary",
        "tool",
        "status",
        "requester",
        "decided_by_display",
        "requested_at",
        "decided_at",
        "workflow",
    )
    list_filter = ("status", "tool", "decided_by_system", "requested_at")
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

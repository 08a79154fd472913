from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chatapp.models import Conversation, Message


def temporal_ui_link(workflow_id: str) -> SafeString:
    namespace = settings.TEMPORAL_NAMESPACE
    url = f"{settings.TEMPORAL_UI_URL}/namespaces/{namespace}/workflows/{workflow_id}"
    return format_html('<a href="{}" target="_blank" rel="noopener">{} ↗</a>', url, workflow_id)


class ReadOnlyMirrorMixin:
    """Rows that mirror workflow state: the workflow history is the record, not this table."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class MessageInline(ReadOnlyMirrorMixin, admin.TabularInline):
    model = Message
    fields = ("seq", "role", "status", "content", "tool_name", "prompt_version", "run_id")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "created_at", "updated_at", "archived_at", "workflow")
    list_filter = ("archived_at",)
    search_fields = ("title", "owner__username", "id")
    readonly_fields = ("id", "owner", "created_at", "updated_at", "archived_at", "workflow")
    fields = ("id", "title", "owner", "created_at", "updated_at", "archived_at", "workflow")
    inlines = [MessageInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations start from the chat, as workflows

    @admin.display(description="Temporal workflow")
    def workflow(self, obj: Conversation) -> SafeString:
        return temporal_ui_link(obj.workflow_id)


@admin.register(Message)
class MessageAdmin(ReadOnlyMirrorMixin, admin.ModelAdmin):
    list_display = (
        "conversation",
        "seq",
        "role",
        "status",
        "short_content",
        "prompt_version",
        "created_at",
    )
    list_filter = ("role", "status", "prompt_version")
    search_fields = ("conversation__id", "content")
    readonly_fields = [f.name for f in Message._meta.fields] + ["workflow"]

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]

    @admin.display(description="Temporal workflow")
    def workflow(self, obj: Message) -> SafeString:
        return temporal_ui_link(obj.conversation.workflow_id)

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from chatapp.models import Conversation, Message, Prompt, PromptVersion
from chatapp.prompt_services import prompt_version_activate, prompt_version_next
from reviews.admin import ReadOnlyMirrorMixin, temporal_ui_link


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


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    fields = ("version", "is_active", "note", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "active_version")
    inlines = [PromptVersionInline]

    @admin.display(description="active version")
    def active_version(self, obj: Prompt) -> str:
        active = obj.versions.filter(is_active=True).first()
        return active.version_id if active else "code default"


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    """Versions are immutable: edit by adding a version, then activate it."""

    list_display = ("__str__", "is_active", "note", "created_at")
    list_filter = ("prompt", "is_active")
    fields = ("prompt", "version", "text", "note", "is_active", "created_at")
    readonly_fields = ("version", "is_active", "created_at")
    actions = ["activate"]

    def get_readonly_fields(self, request: HttpRequest, obj: PromptVersion | None = None) -> Any:
        if obj is not None:
            return ("prompt", "version", "text", "is_active", "created_at")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: PromptVersion, form: Any, change: bool) -> None:
        if not change:
            obj.version = prompt_version_next(prompt=obj.prompt)
        super().save_model(request, obj, form, change)

    @admin.action(description="Activate the selected version (later LLM calls use it)")
    def activate(self, request: HttpRequest, queryset: QuerySet[PromptVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", level=messages.ERROR)
            return
        version = queryset.get()
        prompt_version_activate(version=version)
        self.message_user(request, f"{version.version_id} is now active.")

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from chatapp.agent_services import agent_save, mcp_servers_refresh_request
from chatapp.mcp_catalog import mcp_server_spec
from chatapp.models import (
    Agent,
    AgentToolPolicy,
    Conversation,
    LlmProvider,
    McpServer,
    Message,
    Prompt,
    PromptVersion,
    secret_name_validator,
)
from chatapp.prompt_services import prompt_version_activate, prompt_version_next
from chatapp.usage_admin import ModelCallInline
from reviews.admin import ReadOnlyMirrorMixin, temporal_ui_link
from temporal_worker.tools.registry import mcp_tools, tool_registry

MANAGE_MCP_SERVERS = "chatapp.manage_mcp_servers"


class MessageInline(ReadOnlyMirrorMixin, admin.TabularInline):
    model = Message
    fields = ("seq", "role", "status", "content", "tool_name", "agent", "prompt_version", "run_id")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "owner",
        "agent",
        "created_at",
        "updated_at",
        "archived_at",
        "workflow",
    )
    list_filter = ("archived_at", "agent")
    search_fields = ("title", "owner__username", "id")
    readonly_fields = (
        "id",
        "owner",
        "agent",
        "created_at",
        "updated_at",
        "archived_at",
        "workflow",
    )
    fields = (
        "id",
        "title",
        "owner",
        "agent",
        "created_at",
        "updated_at",
        "archived_at",
        "workflow",
    )
    # Its model calls show each one's tokens, cost and trace (chatapp/usage_admin.py).
    inlines = [MessageInline, ModelCallInline]

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


# --- Agents, their providers and MCP servers ----------------------------------------------


def _secret_problems(
    references: dict[str, Any], *, what: str, name_re: re.Pattern[str]
) -> list[str]:
    problems = []
    for name, secret in references.items():
        if not isinstance(name, str) or not name_re.match(name):
            problems.append(f"{name!r} is not a valid {what} name.")
        elif not isinstance(secret, str) or not SECRET_NAME_RE.match(secret):
            problems.append(
                f"{name}: {secret!r} is not a secret's name (capital letters, digits, "
                "underscores); put the value in AGENT_SECRET_<NAME>, never here."
            )
        elif secret not in settings.AGENT_SECRETS:
            problems.append(f"{name}: no secret {secret} is set (AGENT_SECRET_{secret}).")
    return problems


SECRET_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class LlmProviderForm(forms.ModelForm):
    base_url = forms.URLField(
        assume_scheme="https",
        max_length=300,
        help_text=LlmProvider._meta.get_field("base_url").help_text,
    )

    class Meta:
        model = LlmProvider
        fields = ("name", "base_url", "api_key_secret", "default_model")

    def clean_api_key_secret(self) -> str:
        secret: str = self.cleaned_data["api_key_secret"]
        if secret and not SECRET_NAME_RE.match(secret):
            # Said without repeating what was typed: it may be the key itself.
            raise forms.ValidationError(secret_name_validator.message)
        if secret and secret not in settings.AGENT_SECRETS:
            raise forms.ValidationError(
                f"No secret {secret} is set: set AGENT_SECRET_{secret} in the environment of "
                "the web and worker processes, then save again."
            )
        return secret


@admin.register(LlmProvider)
class LlmProviderAdmin(admin.ModelAdmin):
    form = LlmProviderForm
    list_display = ("name", "base_url", "default_model", "api_key_secret")


class McpServerForm(forms.ModelForm):
    url = forms.URLField(
        assume_scheme="https",
        max_length=500,
        required=False,
        help_text=McpServer._meta.get_field("url").help_text,
    )

    class Meta:
        model = McpServer
        fields = (
            "name",
            "title",
            "description",
            "enabled",
            "transport",
            "command",
            "args",
            "env",
            "url",
            "headers",
            "idempotent",
            "call_timeout_seconds",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        transport = data.get("transport")
        args, env, headers = data.get("args"), data.get("env"), data.get("headers")
        if transport == McpServer.Transport.STDIO:
            if not data.get("command"):
                self.add_error("command", "A stdio server needs the command that starts it.")
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                self.add_error("args", 'A JSON list of strings, e.g. ["-m", "my_server"].')
            if data.get("url"):
                self.add_error("url", "Only a Streamable HTTP server has a URL.")
        elif transport == McpServer.Transport.HTTP:
            url = str(data.get("url") or "")
            if not url.startswith(("http://", "https://")):
                self.add_error("url", "A Streamable HTTP server needs an http(s) URL.")
            if data.get("command") or args:
                self.add_error("command", "Only a stdio server has a command and arguments.")
        for field, value, what, name_re in (
            ("env", env, "environment variable", ENV_NAME_RE),
            ("headers", headers, "header", HEADER_NAME_RE),
        ):
            if not isinstance(value, dict):
                self.add_error(field, 'A JSON object of name -> secret name, e.g. {"X": "MY_KEY"}.')
                continue
            for problem in _secret_problems(value, what=what, name_re=name_re):
                self.add_error(field, problem)
        if transport == McpServer.Transport.STDIO and headers:
            self.add_error("headers", "Only a Streamable HTTP server sends headers.")
        if transport == McpServer.Transport.HTTP and env:
            self.add_error("env", "Only a stdio server gets environment variables.")
        return data


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    """Adding or changing a server decides what runs on the worker (a command) or where it
    connects (a URL): only admins with the dedicated permission may."""

    form = McpServerForm
    list_display = (
        "name",
        "title",
        "transport",
        "enabled",
        "idempotent",
        "tool_count",
        "tools_listed_at",
        "listing_state",
    )
    list_filter = ("transport", "enabled", "idempotent")
    actions = ["refresh_tools"]
    readonly_fields = (
        "listed_tools",
        "tools_listed_at",
        "list_notes",
        "last_error",
        "last_error_at",
        "next_refresh_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MANAGE_MCP_SERVERS)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm(MANAGE_MCP_SERVERS)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm(MANAGE_MCP_SERVERS)

    def get_readonly_fields(self, request: HttpRequest, obj: McpServer | None = None) -> Any:
        # The name is in every tool's name (and policies and agents refer to those).
        return (*self.readonly_fields, "name") if obj is not None else self.readonly_fields

    @admin.display(description="tools")
    def tool_count(self, obj: McpServer) -> int:
        return len(obj.tools or [])

    @admin.display(description="last listing")
    def listing_state(self, obj: McpServer) -> str:
        if obj.last_error:
            return f"failed: {obj.last_error[:80]}"
        return "ok" if obj.tools_listed_at else "not listed yet"

    @admin.display(description="tools it listed (as agents are offered them)")
    def listed_tools(self, obj: McpServer) -> SafeString:
        built = mcp_tools(mcp_server_spec(obj)).tools
        if not built:
            return format_html("<p>{}</p>", "None yet: the worker lists them within seconds.")
        # Names and descriptions come from the server: escaped, never rendered as HTML.
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            (
                (
                    tool.name,
                    "read: runs freely" if tool.kind == "read" else "write: asks a reviewer",
                    tool.description,
                )
                for tool in built
            ),
        )
        return format_html(
            "<table><thead><tr><th>name</th><th>kind (default policy)</th>"
            "<th>description</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="List the selected servers' tools now")
    def refresh_tools(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        count = mcp_servers_refresh_request(servers=queryset)
        self.message_user(
            request,
            f"Asked the worker to list {count} server(s) now: their tools show here within "
            "a few seconds (reload the page).",
        )


def _tool_choices(selected: list[str]) -> list[tuple[str, str]]:
    registry = tool_registry()
    choices = [
        (tool.name, f"{tool.name} ({tool.source or 'built-in'}; {tool.kind})") for tool in registry
    ]
    known = set(registry.names())
    choices += [(name, f"{name} (no longer listed)") for name in selected if name not in known]
    return choices


class AgentForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Built-in and MCP tools it may use, one by one (see also: all tools of "
        "these MCP servers).",
    )

    class Meta:
        model = Agent
        fields = (
            "slug",
            "name",
            "description",
            "is_active",
            "is_default",
            "position",
            "prompt",
            "provider",
            "model",
            "tools",
            "mcp_servers",
            "handoffs",
            "max_steps_per_turn",
        )
        widgets = {
            "mcp_servers": forms.CheckboxSelectMultiple,
            "handoffs": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        selected = list(self.instance.tools or []) if self.instance.pk else []
        self.fields["tools"].choices = _tool_choices(selected)  # type: ignore[attr-defined]
        self.fields["tools"].initial = selected
        if self.instance.pk and "handoffs" in self.fields:
            field = self.fields["handoffs"]
            field.queryset = field.queryset.exclude(pk=self.instance.pk)  # type: ignore[attr-defined]


class AgentToolPolicyForm(forms.ModelForm):
    class Meta:
        model = AgentToolPolicy
        fields = (
            "tool_name",
            "mode",
            "threshold",
            "deadline_seconds",
            "timeout_action",
            "remind_at_share",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = [self.instance.tool_name] if self.instance.tool_name else []
        self.fields["tool_name"] = forms.ChoiceField(
            choices=[("", "---------"), *_tool_choices(current)]
        )


class AgentToolPolicyInline(admin.TabularInline):
    model = AgentToolPolicy
    form = AgentToolPolicyForm
    extra = 0
    verbose_name_plural = "approval policies of this agent (they win over the policy table)"


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentForm
    inlines = [AgentToolPolicyInline]
    list_display = ("name", "slug", "is_active", "is_default", "prompt", "llm", "tool_summary")
    list_filter = ("is_active",)

    def get_readonly_fields(self, request: HttpRequest, obj: Agent | None = None) -> Any:
        # Conversations and hand-offs refer to an agent by its slug.
        return ("slug",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        agent_save(agent=obj)

    @admin.display(description="model")
    def llm(self, obj: Agent) -> str:
        provider = obj.provider.name if obj.provider else "default endpoint"
        return f"{obj.model or 'its default'} ({provider})"

    @admin.display(description="tools")
    def tool_summary(self, obj: Agent) -> str:
        servers = ", ".join(s.name for s in obj.mcp_servers.all())
        count = len(obj.tools or [])
        return f"{count} named" + (f"; all of {servers}" if servers else "")

"""Conversations and their transcripts.

The workflow is the source of truth for a conversation; these tables mirror it
so pages, the sidebar and the admin read fast and survive any process restart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from reviews.models import ApprovalPolicy
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.contracts.tools import handoff_target
from temporal_worker.tools.mcp.names import SLUG_MAX_CHARS, slug_problem

# The name of a secret (AGENT_SECRET_<NAME> in the environment), never a value.
secret_name_validator = RegexValidator(
    r"^[A-Z][A-Z0-9_]{0,63}$",
    "The name of a secret: capital letters, digits and underscores (set its value as "
    "AGENT_SECRET_<NAME> in the environment), never the secret itself.",
)


def validate_slug(value: str) -> None:
    problem = slug_problem(value)
    if problem:
        raise ValidationError(problem)


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    # The agent the user started with (empty: conversations from before agents, which the
    # default agent answers). Hand-offs are recorded in the transcript, not here.
    agent = models.ForeignKey(
        "Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="conversations"
    )
    title = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now_add=True, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"

    @property
    def workflow_id(self) -> str:
        return conversation_workflow_id(str(self.id))

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"
        NOTICE = "notice"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STOPPED = "stopped"
        ERROR = "error"

    # User messages keep the id the browser generated (it is also the Temporal
    # update id); the workflow names every other message with workflow.uuid4().
    id = models.UUIDField(primary_key=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=64, blank=True)
    tool_name = models.CharField(max_length=64, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    # A reply's finish reason as the provider gave it; "length" and "content_filter"
    # mark a reply cut short, which the page says.
    finish_reason = models.CharField(max_length=32, blank=True)
    # A reply's agent (its slug), as prompt_version names its prompt.
    agent = models.CharField(max_length=SLUG_MAX_CHARS, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Not a column: a message the workflow accepted whose turn has not started (pages
    # show it at the end, marked as queued, until its turn records it).
    queued = False

    class Meta:
        ordering = ["seq", "created_at"]
        indexes = [models.Index(fields=["conversation", "seq"])]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"

    @property
    def can_retry(self) -> bool:
        return self.role == self.Role.NOTICE and self.error_kind in ("llm_unavailable", "stopped")

    @property
    def handoff_to(self) -> str:
        """The agent (slug) this message handed the conversation to; "" for any other."""
        if self.role != self.Role.TOOL or self.status != self.Status.COMPLETE:
            return ""
        return handoff_target(self.tool_name)

    @property
    def handoff_name(self) -> str:
        """That agent's name as the hand-off recorded it."""
        try:
            recorded = json.loads(self.content)
        except ValueError:
            recorded = None
        name = recorded.get("agent") if isinstance(recorded, dict) else None
        return str(name) if name else self.handoff_to


class FullToolResult(models.Model):
    """The whole result of a tool call whose message (and the workflow history) holds it
    truncated. The tool activity is its one writer; the message row is the LLM step's."""

    message_id = models.UUIDField(primary_key=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="full_tool_results"
    )
    content = models.TextField()

    def __str__(self) -> str:
        return f"full result of message {self.message_id}"


class Prompt(models.Model):
    """A named prompt the agent uses (e.g. its system prompt); its text lives in versions."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """One immutable text of a prompt. Exactly one version per prompt is active.

    The LLM activity reads the active version on every call and records its id on the
    assistant message; replays never re-read it (the activity's result is in history).
    """

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    is_active = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True, help_text="What changed, and why.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "version"], name="prompt_version_unique"),
            models.UniqueConstraint(
                fields=["prompt"],
                condition=models.Q(is_active=True),
                name="one_active_version_per_prompt",
            ),
        ]

    def __str__(self) -> str:
        return self.version_id

    @property
    def version_id(self) -> str:
        return f"{self.prompt.name}@v{self.version}"


class LlmProvider(models.Model):
    """A model endpoint other than the default one (OPENAI_*). Its API key is named, not
    stored: the worker reads it from the environment (AGENT_SECRET_<NAME>)."""

    name = models.CharField(max_length=60, unique=True)
    base_url = models.URLField(
        max_length=300, help_text="An OpenAI-compatible endpoint, e.g. https://llm.example.com/v1"
    )
    api_key_secret = models.CharField(
        "API key secret",
        max_length=64,
        blank=True,
        validators=[secret_name_validator],
        help_text="The name of the secret holding the key: set AGENT_SECRET_<NAME> in the "
        "environment of the web and worker processes. Empty: the endpoint needs no key.",
    )
    default_model = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM provider"

    def __str__(self) -> str:
        return self.name


class McpServer(models.Model):
    """An MCP server whose tools agents may use, and the list of tools it gave last."""

    class Transport(models.TextChoices):
        STDIO = "stdio", "stdio: a command the worker starts"
        HTTP = "http", "Streamable HTTP: a URL"

    name = models.CharField(
        max_length=SLUG_MAX_CHARS,
        unique=True,
        validators=[validate_slug],
        help_text="Its tools are offered as <name>__<tool>. Cannot change once saved "
        "(approval policies and agents name the tools).",
    )
    title = models.CharField(max_length=80, help_text="What reviewers and admins read.")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    command = models.CharField(
        max_length=500, blank=True, help_text="stdio: the program, e.g. /usr/bin/node or npx."
    )
    args = models.JSONField(
        default=list, blank=True, help_text="stdio: its arguments, a JSON list of strings."
    )
    env = models.JSONField(
        "environment",
        default=dict,
        blank=True,
        help_text="stdio: variables the program gets, each from a named secret: "
        '{"API_TOKEN": "WAREHOUSE_TOKEN"} reads AGENT_SECRET_WAREHOUSE_TOKEN.',
    )
    url = models.URLField(max_length=500, blank=True, help_text="Streamable HTTP: the endpoint.")
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text="Streamable HTTP: headers sent with every request, each from a named "
        'secret: {"Authorization": "WAREHOUSE_AUTH"} reads AGENT_SECRET_WAREHOUSE_AUTH.',
    )
    idempotent = models.BooleanField(
        default=False,
        help_text="The server honours the idempotency key sent in each call's _meta "
        "(idempotencyKey), or its tools are safe to repeat: a call whose connection broke "
        "is tried again. Unticked, such a call is reported to the agent as possibly done, "
        "never repeated.",
    )
    call_timeout_seconds = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(600)],
        help_text="A call (or a listing) with no answer after this long is cut off.",
    )
    # The worker's last good tools/list (kept while the server is down) and how it went.
    tools = models.JSONField(default=list, blank=True, editable=False)
    tools_listed_at = models.DateTimeField(null=True, blank=True, editable=False)
    list_notes = models.TextField(blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_refresh_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"
        permissions = [("manage_mcp_servers", "Can add, change and delete MCP servers")]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"


class Agent(models.Model):
    """An agent users can talk to: its prompt, model, tools, policies, limits and hand-offs.

    The LLM activity reads it on every step, so a change applies from the next model call;
    running workflows and their replays never read it."""

    slug = models.CharField(
        max_length=SLUG_MAX_CHARS,
        unique=True,
        validators=[validate_slug],
        help_text="Its id in conversations and hand-offs (handoff_to_<slug>). Cannot change "
        "once saved.",
    )
    name = models.CharField(max_length=60)
    description = models.CharField(
        max_length=300, help_text="Shown to users when they pick an agent."
    )
    is_active = models.BooleanField(
        "offered",
        default=True,
        help_text="Offered when a conversation starts (conversations with it go on either way).",
    )
    is_default = models.BooleanField(
        "preselected",
        default=False,
        help_text="Preselected for a new conversation, and the agent of conversations that "
        "name none. One agent at most.",
    )
    prompt = models.ForeignKey(
        Prompt,
        on_delete=models.PROTECT,
        related_name="agents",
        help_text="Its system prompt. Change it by adding a version under Prompt versions "
        "and activating it.",
    )
    provider = models.ForeignKey(
        LlmProvider,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="agents",
        help_text="Empty: the default endpoint (OPENAI_API_KEY, OPENAI_BASE_URL).",
    )
    model = models.CharField(
        max_length=100,
        blank=True,
        help_text="Empty: the provider's default model (AGENT_MODEL for the default endpoint).",
    )
    tools = models.JSONField(
        default=list, blank=True, help_text="Tools it may use, built-in and MCP, by name."
    )
    mcp_servers = models.ManyToManyField(
        McpServer,
        blank=True,
        related_name="agents",
        verbose_name="all tools of these MCP servers",
        help_text="Every tool these servers list, including tools they add later.",
    )
    handoffs = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="handoffs_from",
        verbose_name="may hand off to",
    )
    max_steps_per_turn = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="Model calls per user message before it gives up (empty: "
        "AGENT_MAX_STEPS_PER_TURN).",
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in the picker.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_agent"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # Saved through chatapp.agent_services.agent_save, which moves the preselection to
        # this agent: "one preselected" holds once it is saved, so a form may set it here.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"})


class AgentToolPolicy(models.Model):
    """One agent's own approval policy for one tool: wins over the approval policy table."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="tool_policies")
    tool_name = models.CharField(max_length=64)
    mode = models.CharField(
        max_length=8, choices=ApprovalPolicy.Mode.choices, default=ApprovalPolicy.Mode.ALWAYS
    )
    threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="With 'above': ask only when the tool's threshold argument exceeds this.",
    )
    deadline_seconds = models.PositiveIntegerField(
        default=24 * 3600, validators=[MinValueValidator(10), MaxValueValidator(90 * 24 * 3600)]
    )
    timeout_action = models.CharField(
        max_length=8,
        choices=ApprovalPolicy.TimeoutAction.choices,
        default=ApprovalPolicy.TimeoutAction.REJECT,
    )
    remind_at_share = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.50"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )

    class Meta:
        verbose_name = "approval policy override"
        constraints = [
            models.UniqueConstraint(fields=["agent", "tool_name"], name="one_override_per_tool")
        ]

    def __str__(self) -> str:
        return f"{self.agent}: {self.tool_name} ({self.get_mode_display()})"


class DisplayPreference(models.Model):
    """How a signed-in user wants pages drawn; read on every page so the theme is
    rendered server-side (no flash of the wrong one)."""

    class Theme(models.TextChoices):
        SYSTEM = "system", "Follow the system"
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="display_preference"
    )
    theme = models.CharField(max_length=6, choices=Theme.choices, default=Theme.SYSTEM)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user}: {self.theme}"


class ConfigurationVersion(models.Model):
    """One row whose number changes with every write to what a step reads (agents, their
    policies, prompts, providers, MCP servers' names and switches, budgets).

    Database triggers set it to a new random number (migration 0010), so a change made
    anywhere (the admin, a queryset update, the shell, another process) is seen;
    chatapp.configuration keeps each process's reads while the number stays the same."""

    number = models.BigIntegerField()

    def __str__(self) -> str:
        return f"configuration version {self.number}"


# Usage, prices and budgets live in their own module; imported here so Django loads them.
from chatapp.usage_models import (  # noqa: E402, F401
    AgentBudget,
    BudgetHit,
    ModelCall,
    ModelPrice,
    UserBudget,
)

"""Conversations and their transcripts.

The workflow is the source of truth for a conversation; these tables mirror it
so pages, the sidebar and the admin read fast and survive any process restart.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from temporal_worker.contracts.conversation import conversation_workflow_id


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
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

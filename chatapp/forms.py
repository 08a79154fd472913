from __future__ import annotations

from django import forms
from django.conf import settings

from temporal_worker.tools.mcp.names import SLUG_MAX_CHARS, SLUG_RE


class MessageForm(forms.Form):
    """A user message. The ids are generated when the form is rendered, so a retried
    or doubled submit carries the same ids and is applied once."""

    conversation_id = forms.UUIDField(widget=forms.HiddenInput)
    message_id = forms.UUIDField(widget=forms.HiddenInput)
    text = forms.CharField(
        strip=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Message the agent…"}),
        error_messages={"required": "A message cannot be empty."},
    )
    # The agent picked for a new conversation (its slug); empty: the preselected one.
    agent = forms.RegexField(
        regex=SLUG_RE,
        max_length=SLUG_MAX_CHARS,
        required=False,
        error_messages={"invalid": "Pick one of the agents listed."},
    )

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        if not text.strip():
            raise forms.ValidationError("A message cannot be empty.")
        limit = settings.CHAT_MESSAGE_MAX_CHARS
        if len(text) > limit:
            raise forms.ValidationError(
                f"A message can be at most {limit:,} characters (this one has {len(text):,})."
            )
        return text


class RenameForm(forms.Form):
    title = forms.CharField(max_length=120, strip=True)

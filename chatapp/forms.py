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


class SearchForm(forms.Form):
    q = forms.CharField(
        label="Search conversations",
        max_length=200,
        strip=True,
        error_messages={"max_length": "Search for at most %(limit_value)d characters."},
    )


class RegenerateForm(forms.Form):
    # Made when the page was rendered: the update id, so a doubled click counts once.
    request_id = forms.UUIDField()
    reply_id = forms.UUIDField()


class EditForm(forms.Form):
    """The last message, edited: sent again under a new id made when the form was
    rendered (the update id)."""

    message_id = forms.UUIDField()
    replaces_id = forms.UUIDField()
    text = forms.CharField(strip=False, error_messages={"required": "A message cannot be empty."})

    clean_text = MessageForm.clean_text

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django import forms

from reviews.actions import BulkItem
from reviews.models import CHANNEL_LABELS, Approval
from temporal_worker.contracts.approvals import (
    EDITS_ONLY_WITH_APPROVE,
    REJECT_NEEDS_REASON,
    decision_problem,
)

REASON_MAX_CHARS = 1000
EDITED_ARGUMENTS_MAX_CHARS = 20000
BULK_MAX_ITEMS = 100
# Approval.call_id's column; a hash is a hex sha256 at most.
CALL_ID_MAX_CHARS = 100
ARGUMENTS_HASH_MAX_CHARS = 64


class _Decision(forms.Form):
    action = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(required=False, max_length=REASON_MAX_CHARS, strip=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        edited = str(data.get("edited_arguments") or "")
        problem = decision_problem(
            action=str(data.get("action") or "approve"),
            reason=str(data.get("reason") or ""),
            edited_arguments=edited,
        )
        if problem:
            self.add_error(
                "edited_arguments" if problem == EDITS_ONLY_WITH_APPROVE else "reason", problem
            )
        return data


class EmailDecisionForm(forms.Form):
    """The confirmation behind an email link: the link says approve or reject, the
    reviewer adds the reason (which a rejection needs)."""

    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, action: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action = action
        self.fields["reason"].required = action == "reject"
        self.fields["reason"].error_messages["required"] = REJECT_NEEDS_REASON

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        problem = decision_problem(
            action=self.action, reason=str(data.get("reason") or ""), edited_arguments=""
        )
        if problem and "reason" not in self.errors:
            self.add_error("reason", problem)
        return data


class DecisionForm(_Decision):
    """One decision; `arguments_hash` names the arguments the reviewer saw."""

    arguments_hash = forms.CharField(max_length=ARGUMENTS_HASH_MAX_CHARS)
    edited_arguments = forms.CharField(
        required=False, max_length=EDITED_ARGUMENTS_MAX_CHARS, strip=False, widget=forms.Textarea
    )


class BulkItemsField(forms.Field):
    """Selected rows as "<conversation id>:<call id>:<arguments hash>"."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[BulkItem]:
        values = value if isinstance(value, list | tuple) else [value] if value else []
        items: list[BulkItem] = []
        for raw in values:
            conversation_id, _, rest = str(raw).partition(":")
            call_id, _, arguments_hash = rest.rpartition(":")
            try:
                uuid.UUID(conversation_id)
            except ValueError as err:
                raise forms.ValidationError("A selected item is malformed; reload.") from err
            if not 0 < len(call_id) <= CALL_ID_MAX_CHARS or not (
                0 < len(arguments_hash) <= ARGUMENTS_HASH_MAX_CHARS
            ):
                raise forms.ValidationError("A selected item is malformed; reload.")
            items.append(BulkItem(conversation_id, call_id, arguments_hash))
        return items

    def validate(self, value: list[BulkItem]) -> None:
        if not value:
            raise forms.ValidationError("Select at least one request.")
        if len(value) > BULK_MAX_ITEMS:
            raise forms.ValidationError(f"Select at most {BULK_MAX_ITEMS} requests at once.")


class BulkDecisionForm(_Decision):
    item = BulkItemsField()


class MoreRowsForm(forms.Form):
    """Where the dashboard's next page starts: after the last row the page shows."""

    after = forms.DateTimeField()
    conversation = forms.UUIDField()
    call = forms.CharField(max_length=CALL_ID_MAX_CHARS)

    def key(self) -> tuple[dt.datetime, str, str]:
        data = self.cleaned_data
        return (data["after"], str(data["conversation"]), data["call"])


class HistoryFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Decided (any)"), *Approval.Status.choices],
    )
    tool = forms.ChoiceField(required=False, choices=[("", "Any tool")])
    reviewer = forms.CharField(required=False, max_length=150, strip=True)
    requester = forms.CharField(required=False, max_length=150, strip=True)
    channel = forms.ChoiceField(
        required=False,
        choices=[("", "Any channel"), *((key, label) for key, label in CHANNEL_LABELS.items())],
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, tools: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tool"].choices = [("", "Any tool"), *((t, t) for t in tools)]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

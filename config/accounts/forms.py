from __future__ import annotations

import re
from typing import Any

from django import forms

# What people type: "123 456", "1234-abcd"; spaces and dashes are only for reading.
_SEPARATORS = re.compile(r"[\s-]+")


class AppCodeForm(forms.Form):
    """A code from an authenticator app."""

    code = forms.CharField(
        label="Code from your app",
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_code(self) -> str:
        code = _SEPARATORS.sub("", self.cleaned_data["code"])
        if not re.fullmatch(r"\d{6}", code):
            raise forms.ValidationError("Enter the 6 digits your app shows.")
        return code


class RecoveryCodeForm(forms.Form):
    """One of the recovery codes shown when they were made."""

    code = forms.CharField(
        label="Recovery code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_code(self) -> str:
        code = _SEPARATORS.sub("", self.cleaned_data["code"]).lower()
        if not re.fullmatch(r"[a-z2-7]{8}", code):
            raise forms.ValidationError("A recovery code is 8 letters and digits.")
        return code


class PasswordForm(forms.Form):
    """The account's password, for a step-up on an account without a second factor."""

    password = forms.CharField(
        label="Your password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class DeviceRemoveForm(forms.Form):
    device = forms.CharField(max_length=100)


def first_error(form: forms.Form) -> str:
    errors: dict[str, Any] = form.errors
    for messages in errors.values():
        return str(messages[0])
    return "The request is invalid; reload and try again."

"""Per-user display preferences (the theme) and the page context every template reads."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_POST

from chatapp.models import DisplayPreference

Theme = DisplayPreference.Theme


class ThemeForm(forms.Form):
    theme = forms.ChoiceField(choices=Theme.choices)


def theme_for(request: HttpRequest) -> str | None:
    """The signed-in user's stored theme, or None when they never chose one (then
    static/js/theme.js applies the one this browser kept, or the system's)."""
    if not hasattr(request, "_display_theme"):
        theme = None
        if request.user.is_authenticated:
            theme = (
                DisplayPreference.objects.filter(user_id=request.user.pk)
                .values_list("theme", flat=True)
                .first()
            )
        request._display_theme = theme  # type: ignore[attr-defined]
    return request._display_theme  # type: ignore[attr-defined]


def page(request: HttpRequest) -> dict[str, Any]:
    """Context for base.html: the CSP nonce under the name {% htmx_script %} reads,
    and the stored theme rendered on <html> so the first paint already has it.

    The theme is read only when a template uses it: the htmx fragments most requests
    return (a sent message, a decision) have no <html> and cost no query."""
    return {
        "csp_nonce": getattr(request, "csp_nonce", ""),
        "theme": SimpleLazyObject(lambda: theme_for(request) or Theme.SYSTEM),
        "theme_stored": SimpleLazyObject(lambda: theme_for(request) is not None),
    }


@require_POST
@login_required
def theme_update(request: HttpRequest) -> HttpResponse:
    form = ThemeForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose light, dark or system.")
    DisplayPreference.objects.update_or_create(
        user=request.user, defaults={"theme": form.cleaned_data["theme"]}
    )
    return HttpResponse(status=204)

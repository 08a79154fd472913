"""The live reply's template filter (the recorded reply uses chat_tags' `markdown`)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from chatapp.rendering import close_open_marks, markdown_to_html

register = template.Library()


@register.filter
def markdown_partial(text: str) -> SafeString:
    """A reply still streaming, rendered as it will read when its open marks close.
    Safe: markdown_to_html sanitises with an allow-list (raw HTML input is escaped)."""
    return mark_safe(markdown_to_html(close_open_marks(text)))

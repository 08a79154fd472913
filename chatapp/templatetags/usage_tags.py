"""A conversation's cost on its page, for its user, when SHOW_CONVERSATION_COST is on."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.html import format_html

from chatapp.models import Conversation
from chatapp.usage import conversation_cost

register = template.Library()


@register.simple_tag
def conversation_cost_note(conversation: Conversation) -> str:
    """Tokens and USD so far, retries included (read when the page renders)."""
    if not settings.SHOW_CONVERSATION_COST:
        return ""
    totals = conversation_cost(conversation.id)
    tokens = totals.prompt_tokens + totals.completion_tokens
    return format_html(
        '<span class="muted small" id="conversation-cost" title="{} model calls, '
        'retries included">{} tokens · ${}</span>',
        totals.calls,
        f"{tokens:,}",
        f"{totals.cost:.4f}",
    )

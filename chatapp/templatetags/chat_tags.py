from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from chatapp.rendering import markdown_to_html
from temporal_worker import client
from temporal_worker.contracts.conversation import conversation_workflow_id

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    # Safe: markdown_to_html sanitises with an allow-list (raw HTML input is escaped).
    return mark_safe(markdown_to_html(text))


@register.filter
def get_item(mapping: dict[str, Any] | None, key: str) -> Any:
    return (mapping or {}).get(key)


@register.simple_tag
def temporal_run_url(message: Any) -> str:
    """The Temporal Web UI page of the workflow run that produced `message`."""
    workflow_id = conversation_workflow_id(str(message.conversation_id))
    return client.workflow_ui_url(workflow_id, message.run_id)

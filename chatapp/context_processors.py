from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def product(request: HttpRequest) -> dict[str, Any]:
    return {
        "scripted_model": settings.SCRIPTED_MODEL,
        "agent_model": settings.AGENT_MODEL,
        "temporal_ui_url": settings.TEMPORAL_UI_URL,
        "temporal_namespace": settings.TEMPORAL_NAMESPACE,
        "max_message_chars": settings.CHAT_MESSAGE_MAX_CHARS,
    }

"""How times and user-facing errors read: in the reader's time zone, one way everywhere."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone

from temporal_worker.contracts.errors import UserError

register = template.Library()


@register.filter
def reader_time(moment: dt.datetime) -> str:
    """21:17 today, "Nov 30, 21:17" on another day, in the active (the reader's) time zone."""
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return f"{local:%H:%M}"
    return f"{local:%b} {local.day}, {local:%H:%M}"


@register.filter
def user_error_text(error: UserError | str) -> str:
    if isinstance(error, UserError):
        return error.text(format_time=reader_time)
    return str(error)

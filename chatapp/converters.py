"""URL converters for ids that come from outside (tool call ids are the model's)."""

from __future__ import annotations

from django.urls import register_converter


class ToolCallIdConverter:
    regex = r"[A-Za-z0-9_.:-]{1,100}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ToolCallIdConverter, "callid")

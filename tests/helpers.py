"""Test helpers: polling a real server (no fixed sleeps) and reading rendered HTML."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Return the first truthy result of `probe`, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


# --- reading rendered HTML (no parser dependency beyond the standard library) ---

_VOID_TAGS = frozenset("area base br col embed hr img input link meta source track wbr".split())


class _ElementFinder(HTMLParser):
    """Finds the outer HTML of the first element whose id is `element_id`."""

    def __init__(self, source: str, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0]
        for line in source.splitlines(keepends=True):
            self._line_starts.append(self._line_starts[-1] + len(line))
        self._source = source
        self._element_id = element_id
        self._tag = ""
        self._depth = 0
        self.start: int | None = None
        self.end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.end is not None:
            return
        if self.start is None:
            if dict(attrs).get("id") == self._element_id:
                self.start, self._tag = self._offset(), tag
                self._depth = 1
                if tag in _VOID_TAGS:
                    self.end = self._offset() + len(self.get_starttag_text() or "")
        elif tag == self._tag and tag not in _VOID_TAGS:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.start is None or self.end is not None or tag != self._tag:
            return
        self._depth -= 1
        if self._depth == 0:
            offset = self._offset()
            self.end = self._source.index(">", offset) + 1


def html_element(source: str, element_id: str) -> str | None:
    """The outer HTML of the element with id `element_id` in `source`, or None."""
    finder = _ElementFinder(source, element_id)
    finder.feed(source)
    finder.close()
    if finder.start is None:
        return None
    return source[finder.start : finder.end]


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(fragment: str) -> str:
    """What a reader sees of `fragment`: its text, entities decoded, tags dropped."""
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    return "".join(collector.parts)


class _InputCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "input" and fields.get("name"):
            self.values.setdefault(str(fields["name"]), fields.get("value") or "")


def input_values(source: str) -> dict[str, str]:
    """The value of every named <input> in `source` (the first one of each name)."""
    collector = _InputCollector()
    collector.feed(source)
    collector.close()
    return collector.values

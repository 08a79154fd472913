"""Test helpers: polling a real server (no fixed sleeps), reading rendered HTML, logged-in
clients, and a conversation's workflow history."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import AsyncClient, Client
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client as TemporalClient

from temporal_worker.contracts.conversation import conversation_workflow_id

T = TypeVar("T")

# Fault tests' recovery timings, one JSON object a line: with pytest-xdist they run in
# worker processes and the summary is written by the controller (tests/conftest.py
# empties the file when the controlling session starts).
TIMINGS_FILE = Path(__file__).resolve().parents[1] / "var" / "log" / "fault-timings.jsonl"


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


# --- Django's test clients -----------------------------------------------------------


async def logged_in(user: AbstractBaseUser | None, **client_options: object) -> AsyncClient:
    client = AsyncClient(**client_options)
    if user is not None:
        await client.aforce_login(user)
    return client


async def session_cookie(user: AbstractBaseUser) -> str:
    """A logged-in session id, for websockets (which carry the cookie themselves)."""
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client.cookies["sessionid"].value


def body(response: HttpResponse) -> str:
    return response.content.decode()


# --- workflow history -----------------------------------------------------------------


async def history(client: TemporalClient, cid: uuid.UUID) -> list[HistoryEvent]:
    """The history once no activity is pending: rows are written before an activity's
    result reaches the server, so a test that saw the row must wait for the history."""
    handle = client.get_workflow_handle(conversation_workflow_id(str(cid)))

    async def settled() -> bool:
        return not (await handle.describe()).raw_description.pending_activities

    await eventually(settled)
    return list((await handle.fetch_history()).events)


def of_type(events: list[HistoryEvent], event_type: int) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]

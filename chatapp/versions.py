"""Earlier versions of an exchange: what regenerate and edit-and-resend leave behind.

The workflow marks a new version with a divider notice (`VERSION_NOTICE_KINDS`); the
messages it supersedes stay in the transcript. Here the page's transcript folds them
into numbered groups ("1 of 2"), the latest version shown as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatapp.models import Message
from temporal_worker.contracts.conversation import VERSION_NOTICE_KINDS


@dataclass
class Earlier:
    """An earlier version: an answer (regenerated), or a message and its answer (edited)."""

    messages: list[Message]
    kind: str
    number: int = 0
    total: int = 0
    earlier: bool = field(default=True, init=False)


@dataclass
class Latest:
    """Where the latest of several versions begins."""

    number: int
    latest: bool = field(default=True, init=False)


def is_version_notice(message: Message) -> bool:
    return message.role == Message.Role.NOTICE and message.error_kind in VERSION_NOTICE_KINDS


def transcript_items(messages: list[Message]) -> list[Message | Earlier | Latest]:
    items: list[Message | Earlier | Latest] = []
    for message in messages:
        if not is_version_notice(message):
            items.append(message)
            continue
        superseded: list[Message] = []
        while items:
            item = items[-1]
            if isinstance(item, Message) and item.role == Message.Role.USER:
                if message.error_kind == "edited":
                    items.pop()
                    superseded[:0] = [item]
                break
            if isinstance(item, Earlier | Latest) and message.error_kind != "edited":
                break  # a regenerated answer's earlier versions stay as they are
            items.pop()
            if isinstance(item, Earlier):
                superseded[:0] = item.messages
            elif isinstance(item, Message):
                superseded[:0] = [item]
        if superseded:
            items.append(Earlier(superseded, kind=message.error_kind))
    _number(items)
    return items


def _number(items: list[Message | Earlier | Latest]) -> None:
    """Number each run of earlier versions and mark where the latest begins."""
    i = 0
    while i < len(items):
        if not isinstance(items[i], Earlier):
            i += 1
            continue
        run_end = i
        while run_end < len(items) and isinstance(items[run_end], Earlier):
            run_end += 1
        total = run_end - i + 1
        for number, item in enumerate(items[i:run_end], start=1):
            assert isinstance(item, Earlier)
            item.number, item.total = number, total
        items.insert(run_end, Latest(number=total))
        i = run_end + 1

"""What a step reads of the admin's configuration, kept per process while it is unchanged.

Every model call read its agent (six queries: the row, its prompt, servers, policies and
hand-offs, the active prompt version) and looked for budgets (five more), though these
change a few times a day. Measured at 10 users (bench/load.py), that was an eighth of the
web process's time. Now a step reads one number, the configuration version (the
ConfigurationVersion row, which database triggers change on every write to those tables),
and reuses what this process read under the same number. A change made anywhere still
applies from the next model call: its write changes the number.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from chatapp.models import ConfigurationVersion

T = TypeVar("T")
ROW_ID = 1

_lock = threading.Lock()
_memo: tuple[int | None, dict[Hashable, Any]] = (None, {})


def version() -> int | None:
    """The configuration's version now, or None if its row is missing (a test flushed the
    tables; post_migrate puts it back)."""
    for number in (
        ConfigurationVersion.objects.filter(pk=ROW_ID).order_by().values_list("number", flat=True)
    ):
        return number
    return None


def snapshot() -> Reads:
    """This process's reads under the version the database holds now (one query)."""
    global _memo
    number = version()
    if number is None:
        return Reads({})
    with _lock:
        if _memo[0] != number:
            _memo = (number, {})
        return Reads(_memo[1])


class Reads:
    """Values read under one configuration version; kept while that version lasts.

    A value read after the version was may be newer than it, never older (the version
    is read first): kept under the old number, it is replaced at the next change."""

    def __init__(self, values: dict[Hashable, Any]) -> None:
        self._values = values

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = read()
            return value


def version_seed(**_: Any) -> None:
    """Create the version row (on migrate, and again after a test flushed the tables).

    It starts at a random number, so reads a process kept under a number before a flush
    are not taken for reads under a new row's."""
    ConfigurationVersion.objects.get_or_create(
        pk=ROW_ID, defaults={"number": random.randrange(1 << 62)}
    )

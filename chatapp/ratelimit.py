"""Per-user limit on how fast chat messages are sent, counted in Django's cache.

A fixed window per user: at most `CHAT_RATE_LIMIT_MESSAGES` messages in each
`CHAT_RATE_LIMIT_WINDOW_SECONDS`. With Redis as the cache every web process shares
the counters; with the local-memory cache each process counts on its own.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache

KEY_PREFIX = "chat-rate:messages"
SEEN_PREFIX = "chat-rate:seen"
SEEN_SECONDS = 24 * 3600


def _key(user_id: int, window_index: int) -> str:
    return f"{KEY_PREFIX}:{user_id}:{window_index}"


async def message_first_seen(*, message_id: str) -> bool:
    """True the first time a message id is sent: a retried request must not count twice.

    Kept for a day, far longer than a browser retries; with Redis shared by every process."""
    return bool(await cache.aadd(f"{SEEN_PREFIX}:{message_id}", 1, timeout=SEEN_SECONDS))


async def message_refused(*, message_id: str) -> None:
    """The message was not sent: sending it again later counts again."""
    await cache.adelete(f"{SEEN_PREFIX}:{message_id}")


async def message_send_wait(*, user_id: int) -> int:
    """Count one message for `user_id`: 0 when it is within the limit, else the whole
    seconds until the window ends and the user may send again."""
    limit: int = settings.CHAT_RATE_LIMIT_MESSAGES
    window: int = settings.CHAT_RATE_LIMIT_WINDOW_SECONDS
    if limit <= 0 or window <= 0:
        return 0
    now = time.time()
    window_index = int(now // window)
    key = _key(user_id, window_index)
    # add() only creates a missing key and incr() is atomic (Redis, LocMem's lock), so
    # concurrent requests never lose a count; the key outlives its window by a second.
    await cache.aadd(key, 0, timeout=window + 1)
    try:
        count = await cache.aincr(key)
    except ValueError:
        # Evicted between add() and incr(): this message starts the count again.
        await cache.aset(key, 1, timeout=window + 1)
        count = 1
    if count <= limit:
        return 0
    return max(1, math.ceil((window_index + 1) * window - now))

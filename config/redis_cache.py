"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per async context, so under ASGI every request built its own
`RedisCache`, with its own connection pool: a new Redis connection (and a lookup of the
library's version) for each request's rate-limit counters, 4% of a web process's CPU at
50 users (bench/load.py, py-spy). `redis_caches()` names this class as the pool class,
whose `from_url` hands every cache object of the process the same pool. redis-py's pool
checks the process id, so a forked child opens its own connections.
"""

from __future__ import annotations

import threading
from typing import Any, Self, cast

from redis import ConnectionPool


class SharedConnectionPool(ConnectionPool):
    _shared_pools: dict[tuple[str, str], SharedConnectionPool] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        key = (url, repr(sorted(kwargs.items())))
        with cls._shared_lock:
            pool = cls._shared_pools.get(key)
            if pool is None:
                pool = cls._shared_pools[key] = super().from_url(url, **kwargs)
        return cast(Self, pool)


def redis_caches(url: str) -> dict[str, dict[str, Any]]:
    """The CACHES setting for a Redis at `url`."""
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "agent-chat",
            "OPTIONS": {"pool_class": f"{__name__}.SharedConnectionPool"},
        }
    }

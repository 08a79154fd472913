"""The embedded mode's channel layer: Channels' in-memory layer with its expiry scan
run at most once a second.

The stock layer scans every channel's queue and every group's members on each
`receive` and `group_send`: a streamed reply costs two full scans per push, so the
cost of one turn grew with the number of open sockets (4.7% of the embedded process's
samples at 50 users, more at 200; bench/load.py). Messages expire after 60 s and
group memberships after a day, so a scan a second expires them just as well.
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer

EXPIRY_SCAN_EVERY_SECONDS = 1.0


class ThrottledInMemoryChannelLayer(InMemoryChannelLayer):
    _last_scan = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_scan < EXPIRY_SCAN_EVERY_SECONDS:
            return
        self._last_scan = now
        super()._clean_expired()

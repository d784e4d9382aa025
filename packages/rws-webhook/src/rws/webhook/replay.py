"""Remembering which messages were already accepted.

A valid signature proves who sent a request, not that it is the first time we see it. Inside
the timestamp window an attacker can resend a captured request; a seen-store closes that gap.
The in-memory store serves one process; for several processes or hosts, implement
:class:`AsyncSeenStore` over Redis (``SET key 1 NX EX ttl``) or a table with a unique key.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol, runtime_checkable


@runtime_checkable
class SeenStore(Protocol):
    """A synchronous store, usable from :meth:`Scheme.verify`."""

    def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; ``False`` if it was already recorded."""
        ...

    def forget(self, key: str) -> None:
        """Drop ``key`` so a retry of a message whose handling failed is accepted."""
        ...


@runtime_checkable
class AsyncSeenStore(Protocol):
    """An asynchronous store (network-backed), usable from :meth:`Scheme.averify`."""

    async def remember(self, key: str, ttl: float) -> bool: ...

    async def forget(self, key: str) -> None: ...


class MemorySeenStore:
    """Process-local store with expiry and a bound on its size.

    When ``max_entries`` is reached the oldest entries are dropped first; size it above the
    number of webhooks you receive per tolerance window (the default covers ~300 per second
    for a five-minute window).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        # Entries are appended in arrival order; with one TTL per scheme that is also
        # (nearly) expiry order, so purging from the front is cheap.
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now and len(self._expiry) < self.max_entries:
                break
            del self._expiry[key]

    def remember(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                return False
            self._expiry.pop(key, None)
            self._purge(now)
            self._expiry[key] = now + ttl
            return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._expiry.pop(key, None)

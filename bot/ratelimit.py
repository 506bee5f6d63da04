"""Rate limits shared by every worker: counters in the database, one count per client across the widget and the API.

A client is counted under a keyed hash of its address (or of a staff email), never the address itself. Each limit
is a sliding window estimated from two fixed windows (this one in full, the last one weighted by how much of it
still falls inside the window), so a burst across a window boundary is still caught. Each hit is one atomic
increment, so many requests sent at once each see their own count. While the database cannot be reached, each
process falls back to counting in its own memory: the limit still holds, per process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.bulkhead import Bulkhead
from bot.errors import StoreUnavailable
from bot.store import Store


@dataclass(frozen=True)
class Limit:
    name: str  # part of the counter key: "chat", "feedback", "sign-in account", ...
    allowed: int
    window_s: int


class RateLimiter:
    def __init__(
        self,
        store: Store | None,
        secret: str,
        db: Bulkhead | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.db = db
        self._secret = secret.encode()
        self._clock = clock
        self._local = _LocalWindows()

    def _key(self, limit: Limit, subject: str, window: int) -> str:
        digest = hmac.new(self._secret, f"{limit.name}\0{subject}".encode(), hashlib.sha256).hexdigest()[:40]
        return f"{limit.name[:40]}:{digest}:{window}"

    def hit(self, limit: Limit, subject: str) -> bool:
        """Count one attempt by `subject`; True while it is within the limit."""
        now = self._clock()
        window, into = divmod(now, limit.window_s)
        try:
            current, previous = self._counts(limit, subject, int(window), dt.timedelta(seconds=2 * limit.window_s))
        except StoreUnavailable:
            return self._local.hit(f"{limit.name}\0{subject}", limit.allowed, limit.window_s, now)
        estimate = current + previous * (1 - into / limit.window_s)
        return estimate <= limit.allowed

    def undo(self, limit: Limit, subject: str) -> None:
        """Take back one hit (a sign-in that succeeded does not count against the account)."""
        if self.store is None:
            return
        store, window = self.store, int(self._clock() // limit.window_s)
        expires = _utcnow() + dt.timedelta(seconds=2 * limit.window_s)
        with contextlib.suppress(StoreUnavailable):
            self._call(lambda: store.count_hit(self._key(limit, subject, window), expires, -1))

    def _counts(self, limit: Limit, subject: str, window: int, keep: dt.timedelta) -> tuple[int, int]:
        if self.store is None:
            raise StoreUnavailable("no database")
        store, expires = self.store, _utcnow() + keep
        current, previous = self._key(limit, subject, window), self._key(limit, subject, window - 1)
        return self._call(lambda: store.count_hit(current, expires, also_read=previous))

    def _call(self, fn: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        return self.db.call(fn) if self.db is not None else fn()


class _LocalWindows:
    """The fallback: a sliding window of hit times per subject, in this process's memory only."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, subject: str, allowed: int, window_s: int, now: float) -> bool:
        with self._lock:
            hits = self._hits[subject]
            while hits and now - hits[0] > window_s:
                hits.popleft()
            if len(hits) >= allowed:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle subjects rather than grow without end
                for key in [k for k, v in self._hits.items() if not v or now - v[-1] > window_s]:
                    del self._hits[key]
            return True


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)

"""Bulkheads: blocking calls to a store run on a few threads of their own and are given up after a deadline.

A hung database or Chroma server then costs a reply at most the deadline, and once the bulkhead's threads are all
stuck, further calls fail at once instead of queueing: unrelated work (other routes, the event loop) never waits.
Never carries the arguments of a call into a log line or an exception message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class Bulkhead:
    def __init__(self, name: str, threads: int, timeout_s: float):
        self.name = name
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"bulkhead-{name}")
        # Calls running or waiting; past this, a call fails fast: every thread is stuck on a hung store.
        self._slots = threading.BoundedSemaphore(threads * 2)

    def call(self, fn: Callable[[], T], timeout_s: float | None = None) -> T:
        """fn() on the bulkhead's threads; StoreUnavailable if it is full or fn takes longer than the deadline.

        A call given up on keeps running to its end on its thread (a hung socket cannot be interrupted), so
        what it writes must be idempotent: every store write here is keyed by its id.
        """
        if not self._slots.acquire(blocking=False):
            raise StoreUnavailable(f"the {self.name} is not answering; try again shortly")
        try:
            future: Future[T] = self._pool.submit(fn)
        except RuntimeError:  # the pool was shut down: the process is stopping
            self._slots.release()
            raise StoreUnavailable(f"the {self.name} is shutting down") from None
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self.timeout_s if timeout_s is None else timeout_s)
        except FutureTimeout:
            log.warning("%s call gave up after %.1f s", self.name, self.timeout_s if timeout_s is None else timeout_s)
            raise StoreUnavailable(f"the {self.name} did not answer in time") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""One daemon thread that runs callbacks when they fall due (a heap of deadlines).

The thread is woken only when a new callback is due before every pending one,
so scheduling many far-off checks (idle leases, retries) costs no wake-up each.

>>> timers = Timers("doc-timers")
>>> done = threading.Event()
>>> timers.schedule(0.01, done.set)
>>> done.wait(5)
True
>>> timers.stop()
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("ember")


class Timers:
    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], Any]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._stopped = False
        threading.Thread(target=self._loop, daemon=True, name=name).start()

    def schedule(self, delay: float, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the timer thread in ``delay`` seconds (errors are logged)."""
        entry = (time.monotonic() + delay, next(self._seq), fn)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()

    def stop(self) -> None:
        """Stop the thread; pending callbacks never run."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                logger.exception("ember timer callback failed")

"""The owner's table of object values and readiness.

Small values live here inline (serialized bytes); large ones are only marked
``in_shm`` and read from the node's shared-memory store. A getter blocks on an
event of its own, set once enough of its objects are ready; completion
callbacks let the task submitter resolve dependencies without a thread per
waiting task.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass
class Entry:
    ready: bool = False
    data: bytes | memoryview | None = None
    in_shm: bool = False
    is_error: bool = False
    size: int = 0
    node_id: str = ""
    # in_shm values: the nodes holding a copy (pb.Address: node id + node
    # manager ip:port); the owner frees every one of them. Both are replaced, never
    # changed in place, and start as a shared empty tuple: an entry per pending
    # result must not cost two lists the garbage collector tracks (actor calls run
    # at 10-20k/s, and each list lived on into the old generation).
    locations: Sequence = ()
    callbacks: Sequence[Callable[["Entry"], None]] = ()


class _Waiter:
    """A blocked ``wait_ready``: woken once ``missing`` of its objects were set
    (or deleted), not at every object, so waiting on 1000 results costs one
    wake-up, not a thousand re-scans of the 1000 ids."""

    __slots__ = ("missing", "event")

    def __init__(self, missing: int) -> None:
        self.missing = missing
        self.event = threading.Event()

    def hit(self) -> None:
        self.missing -= 1
        if self.missing <= 0:
            self.event.set()


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()     # never waited on: waiters have their own events
        self._entries: dict[bytes, Entry] = {}
        self._waiters: dict[bytes, list[_Waiter]] = {}

    def add_pending(self, object_id: bytes) -> None:
        with self._lock:
            self._entries.setdefault(object_id, Entry())

    def set_ready(self, object_id: bytes, *, data: bytes | memoryview | None = None,
                  in_shm: bool = False, is_error: bool = False, size: int = 0,
                  node_id: str = "", locations: list | None = None) -> bool:
        """Record a value; returns False if the object was already freed or set."""
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is None or entry.ready:
                return False
            entry.data, entry.in_shm, entry.is_error = data, in_shm, is_error
            entry.size, entry.node_id, entry.ready = size, node_id, True
            if locations:
                entry.locations = list(locations)
            callbacks, entry.callbacks = entry.callbacks, ()
            for waiter in self._waiters.pop(object_id, ()):
                waiter.hit()
        for cb in callbacks:
            cb(entry)
        return True

    def put_ready(self, object_id: bytes, **kw) -> None:
        with self._lock:
            self._entries[object_id] = Entry()
        self.set_ready(object_id, **kw)

    def reset(self, object_id: bytes) -> bool:
        """Make a ready object pending again: its copies are lost and it is being
        rebuilt (or is about to hold an error). False if it is unknown or not ready."""
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is None or not entry.ready:
                return False
            entry.ready, entry.data, entry.in_shm, entry.is_error = False, None, False, False
            entry.size, entry.node_id, entry.locations = 0, "", ()
            return True

    def add_location(self, object_id: bytes, location: object) -> bool:
        """Record another copy; False if the object is gone (free that copy)."""
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is None:
                return False
            entry.locations = (*entry.locations, location)
            return True

    def get(self, object_id: bytes) -> Entry | None:
        with self._lock:
            return self._entries.get(object_id)

    def on_ready(self, object_id: bytes, callback: Callable[[Entry], None]) -> bool:
        """Call back when ready (now, if already). False if the object is unknown."""
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is None:
                return False
            if not entry.ready:
                entry.callbacks = (*entry.callbacks, callback)
                return True
        callback(entry)
        return True

    def wait_ready(self, object_ids: list[bytes], num_ready: int, timeout: float | None,
                   on_first_wait: Callable[[], None] | None = None) -> set[bytes]:
        """Block until ``num_ready`` of the ids are ready (or unknown) or time runs out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while True:
            with self._lock:
                done = {oid for oid in object_ids
                        if (e := self._entries.get(oid)) is None or e.ready}
                if len(done) >= num_ready:
                    return done
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return done
                if not waited and on_first_wait is not None:
                    waited = True
                    self._lock.release()
                    try:
                        on_first_wait()
                    finally:
                        self._lock.acquire()
                    continue
                waiter = _Waiter(num_ready - len(done))
                pending = {oid for oid in object_ids if oid not in done}
                for oid in pending:
                    self._waiters.setdefault(oid, []).append(waiter)
            # Done is recomputed after waking: the hits only say when to look
            # (an object may also have been reset for rebuilding meanwhile).
            waiter.event.wait(1.0 if remaining is None else min(remaining, 1.0))
            with self._lock:
                for oid in pending:
                    ws = self._waiters.get(oid)
                    if ws is not None:
                        try:
                            ws.remove(waiter)
                        except ValueError:
                            pass
                        if not ws:
                            del self._waiters[oid]

    def delete(self, object_id: bytes) -> Entry | None:
        with self._lock:
            for waiter in self._waiters.pop(object_id, ()):
                waiter.hit()        # a freed object counts as done for waiters
            return self._entries.pop(object_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

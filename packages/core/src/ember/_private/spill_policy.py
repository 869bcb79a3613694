"""Object-store accounting and the choice of what to spill: pure, no I/O.

A node's shared-memory store has a capacity (``object_store_memory``). The
:class:`StoreLedger` counts what is *committed* against it:

* objects sealed in shared memory (``used``),
* reservations for objects being written (a writer asked for room, via the
  node manager's CreateObject, and has not sealed yet),
* *credit*: room handed to a writer process in advance while the store is
  mostly empty, so that it can write several objects without asking each time.

When a new object does not fit, :meth:`StoreLedger.choose_victims` picks the
least-recently-used sealed objects that no process has mapped (``pinned``) to
move to disk; the node manager's store manager (``store_manager.py``) does the
I/O and reports back (:meth:`spill_done`, :meth:`spill_failed`). A spilled
object keeps its disk copy after it is restored, so evicting it again costs no
write. :meth:`freed` forgets an object wherever it is.

>>> ledger = StoreLedger(capacity=100)
>>> ledger.admit(b"a", 60, "w1", now=0.0) is not None
True
>>> ledger.sealed(b"a", 60, "w1", now=0.0)
>>> ledger.admit(b"b", 60, "w1", now=1.0) is None      # does not fit
True
>>> ledger.choose_victims(ledger.shortfall(60), pinned=set())
[(b'a', 60, False)]
>>> ledger.spill_done(b"a")
True
>>> ledger.admit(b"b", 60, "w1", now=2.0) is not None
True
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

__all__ = ["CLIENT_CREDIT_TTL_S", "CREDIT_TTL_S", "StoreLedger", "StoreStats"]

# Credit is only handed out while the store is at most this full...
CREDIT_MAX_FILL = 0.5
# ...and is at most this share of the free room, and this many bytes.
CREDIT_SHARE = 8
CREDIT_MAX_BYTES = 64 << 20
# A writer stops using its credit after CLIENT_CREDIT_TTL_S; the ledger stops
# counting it after CREDIT_TTL_S (later, so a writer never uses credit the
# ledger no longer holds for it, give or take a write in progress).
CLIENT_CREDIT_TTL_S = 0.5
CREDIT_TTL_S = 1.0
# A reservation whose writer never seals (it failed mid-write, or died without
# its node manager noticing) stops counting after this long, plus the time the
# write takes at a slow RESERVATION_MIN_RATE. The node manager's own (restores,
# copies from other nodes) never expire: it gives them back itself.
RESERVATION_TTL_S = 120.0
RESERVATION_MIN_RATE = 50e6
# Background spilling starts above this fill and spills down to it (Ray's
# object_spilling_threshold), so that puts rarely wait for the disk.
SPILL_THRESHOLD = 0.8
# One spill round frees at least this share of the capacity (fewer, larger rounds).
MIN_SPILL_SHARE = 0.125


@dataclass
class _Object:
    size: int
    in_memory: bool = False      # sealed in shared memory
    on_disk: bool = False        # a complete spilled copy exists
    spilling: bool = False       # being written to disk right now


@dataclass(frozen=True)
class StoreStats:
    """Numbers for GetStatus and tests."""

    capacity: int
    used: int                # sealed objects in shared memory
    committed: int           # used + reservations + credit
    num_in_memory: int
    spilled_bytes: int       # objects whose only copy is on disk, or that also have one
    num_spilled: int
    total_spilled_bytes: int     # cumulative bytes written to disk
    total_restored_bytes: int    # cumulative bytes read back


class StoreLedger:
    """Bookkeeping of one node's object store (see the module docstring).

    Object ids are bytes; writers are worker ids (``""`` for the node manager
    itself, which writes pulled and restored copies). ``capacity`` 0 means
    unlimited: everything is admitted and nothing spills.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 (0 = unlimited), got {capacity}")
        self.capacity = capacity
        self._objects: dict[bytes, _Object] = {}
        # In-memory objects in least-recently-used order (first = oldest).
        self._lru: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.used = 0
        self._reserved: dict[bytes, tuple[int, str, float]] = {}   # oid -> (size, writer, expiry)
        self._reserved_bytes = 0
        self._credit: dict[str, tuple[int, float]] = {}            # writer -> (bytes, expiry)
        self._credit_bytes = 0
        self._spilling_bytes = 0
        self.total_spilled = 0
        self.total_restored = 0

    # ------------------------------------------------------------ queries
    @property
    def committed(self) -> int:
        return self.used + self._reserved_bytes + self._credit_bytes

    def too_big(self, size: int) -> bool:
        """No amount of spilling makes room for an object this large."""
        return bool(self.capacity) and size > self.capacity

    def shortfall(self, size: int) -> int:
        """Bytes to free before an object of ``size`` fits (0: it fits now)."""
        if not self.capacity:
            return 0
        return max(0, self.committed + size - self.capacity)

    def over_threshold(self) -> int:
        """Bytes above the background-spilling threshold (0: below it)."""
        if not self.capacity:
            return 0
        return max(0, self.committed - self._spilling_bytes
                   - int(self.capacity * SPILL_THRESHOLD))

    def in_memory(self, object_id: bytes) -> bool:
        obj = self._objects.get(object_id)
        return obj is not None and obj.in_memory

    def spilled_size(self, object_id: bytes) -> int | None:
        """Size of an object whose only copy is on disk; None otherwise."""
        obj = self._objects.get(object_id)
        if obj is None or obj.in_memory or not obj.on_disk:
            return None
        return obj.size

    def has_disk_copy(self, object_id: bytes) -> bool:
        obj = self._objects.get(object_id)
        return obj is not None and obj.on_disk

    def stats(self) -> StoreStats:
        on_disk = [o.size for o in self._objects.values() if o.on_disk]
        return StoreStats(self.capacity, self.used, self.committed, len(self._lru),
                          sum(on_disk), len(on_disk), self.total_spilled, self.total_restored)

    # ------------------------------------------------------------ admission
    def admit(self, object_id: bytes, size: int, writer: str, now: float) -> int | None:
        """Reserve room for an object about to be written; return the writer's new credit.

        None if it does not fit now (spill, then ask again). The writer's old
        credit is given back first: it asks only when that ran out.
        """
        self._expire(now)
        self._drop_credit(writer)
        if self.capacity and self.committed + size > self.capacity:
            return None
        self._release_reservation(object_id)
        self._reserved[object_id] = (
            size, writer, now + RESERVATION_TTL_S + size / RESERVATION_MIN_RATE if writer
            else float("inf"))
        self._reserved_bytes += size
        credit = self._credit_for(writer)
        if credit:
            self._credit[writer] = (credit, now + CREDIT_TTL_S)
            self._credit_bytes += credit
        return credit

    def _credit_for(self, writer: str) -> int:
        if not writer:
            return 0            # the node manager itself writes one object at a time
        if not self.capacity:
            return 1 << 62      # unlimited: never ask again
        free = self.capacity - self.committed
        if free < self.capacity * (1 - CREDIT_MAX_FILL):
            return 0
        return min(free // CREDIT_SHARE, CREDIT_MAX_BYTES)

    def abort(self, object_id: bytes) -> None:
        """The write that reserved room failed: give the room back."""
        self._release_reservation(object_id)

    def sealed(self, object_id: bytes, size: int, writer: str, now: float) -> None:
        """An object is now complete in shared memory (written, pulled or restored)."""
        self._expire(now)
        if not self._release_reservation(object_id):
            held = self._credit.get(writer)
            if held is not None:
                # Written on credit: that room is now used, not promised.
                left = max(0, held[0] - size)
                self._credit_bytes -= held[0] - left
                self._credit[writer] = (left, held[1])
        obj = self._objects.get(object_id)
        if obj is None:
            obj = self._objects[object_id] = _Object(size)
        if not obj.in_memory:
            obj.in_memory = True
            self.used += obj.size
        self._lru[object_id] = None
        self._lru.move_to_end(object_id)

    def restored(self, object_id: bytes, now: float) -> bool:
        """A restore finished; False if the object was freed meanwhile (delete the copy)."""
        if object_id not in self._reserved or object_id not in self._objects:
            self._release_reservation(object_id)
            return False
        size = self._objects[object_id].size
        self.total_restored += size
        self.sealed(object_id, size, "", now)
        return True

    def touch(self, object_id: bytes) -> None:
        """The object was just used: it becomes the last to spill."""
        if object_id in self._lru:
            self._lru.move_to_end(object_id)

    def writer_gone(self, writer: str) -> None:
        """A writer died: its reservations and credit go (its writes never sealed)."""
        self._drop_credit(writer)
        for oid in [oid for oid, (_, w, _) in self._reserved.items() if w == writer]:
            self._release_reservation(oid)

    # ------------------------------------------------------------ spilling
    def choose_victims(self, need: int, pinned: set[bytes],
                       want: int = 0) -> list[tuple[bytes, int, bool]]:
        """Pick objects to spill, oldest first: ``(object_id, size, already_on_disk)``.

        Skips objects being spilled and ``pinned`` ones (mapped by some process:
        spilling those would free no memory). Returns nothing unless the
        choice frees at least ``need`` bytes; past ``need`` it goes on up to
        ``want`` bytes (fewer, larger rounds). Chosen objects are marked as
        spilling until :meth:`spill_done` or :meth:`spill_failed`.
        """
        if need <= 0:
            return []
        target = max(need, want)
        chosen: list[tuple[bytes, int, bool]] = []
        total = 0
        for oid in self._lru:
            obj = self._objects[oid]
            if obj.spilling or oid in pinned:
                continue
            chosen.append((oid, obj.size, obj.on_disk))
            total += obj.size
            if total >= target:
                break
        if total < need:
            return []
        for oid, size, _ in chosen:
            self._objects[oid].spilling = True
            self._spilling_bytes += size
        return chosen

    def spill_done(self, object_id: bytes) -> bool:
        """The object is on disk: its shared-memory copy may go.

        False if it was freed meanwhile (delete the disk copy instead).
        """
        obj = self._objects.get(object_id)
        if obj is None or not obj.spilling:
            return False
        obj.spilling = False
        self._spilling_bytes -= obj.size
        if not obj.on_disk:
            self.total_spilled += obj.size
        obj.on_disk = True
        if obj.in_memory:
            obj.in_memory = False
            self.used -= obj.size
            self._lru.pop(object_id, None)
        return True

    def spill_failed(self, object_id: bytes) -> None:
        obj = self._objects.get(object_id)
        if obj is not None and obj.spilling:
            obj.spilling = False
            self._spilling_bytes -= obj.size

    def freed(self, object_id: bytes) -> tuple[bool, bool]:
        """The owner freed it: forget it. Returns (was in memory, had a disk copy)."""
        self._release_reservation(object_id)
        obj = self._objects.pop(object_id, None)
        if obj is None:
            return False, False
        if obj.spilling:
            self._spilling_bytes -= obj.size
        if obj.in_memory:
            self.used -= obj.size
            self._lru.pop(object_id, None)
        return obj.in_memory, obj.on_disk

    def disk_copies(self) -> list[bytes]:
        return [oid for oid, o in self._objects.items() if o.on_disk]

    # ------------------------------------------------------------ internals
    def _release_reservation(self, object_id: bytes) -> bool:
        held = self._reserved.pop(object_id, None)
        if held is None:
            return False
        self._reserved_bytes -= held[0]
        return True

    def _drop_credit(self, writer: str) -> None:
        held = self._credit.pop(writer, None)
        if held is not None:
            self._credit_bytes -= held[0]

    def _expire(self, now: float) -> None:
        for writer in [w for w, (_, t) in self._credit.items() if t <= now]:
            self._drop_credit(writer)
        if self._reserved:
            for oid in [o for o, (_, _, t) in self._reserved.items() if t <= now]:
                self._release_reservation(oid)

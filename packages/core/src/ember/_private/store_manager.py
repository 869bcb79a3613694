"""A node's object store: capacity, spilling to disk and restoring (run by the node manager).

The decisions (what counts against the capacity, which objects to spill) are
in ``spill_policy.StoreLedger``; the spill files in ``object_spiller.py``.
This module is the I/O around them, called from the node manager's RPCs:

* CreateObject (:meth:`StoreManager.create`): a writer asks for room before
  writing an object into shared memory. If it does not fit, least-recently-used
  objects that no process has mapped are written to disk and their
  shared-memory files unlinked, then the writer may go ahead. An object larger
  than the whole store, or one that cannot fit within ``full_wait_s`` (every
  object in use, or the disk failing), is refused: ObjectStoreFullError.
* ObjectsSealed / FreeObjects (:meth:`sealed`, :meth:`free`): bookkeeping; a
  freed object's spill file goes with it.
* Restoring (:meth:`restore`): a process that misses a spilled object asks its
  node manager (PullObject), which copies it back into shared memory, making
  room the same way. Another node reading it (ReadObject) is served straight
  from the spill file (:meth:`spilled_view`).
* A background thread spills whenever the store is over SPILL_THRESHOLD full,
  so that writers rarely wait for the disk.

"Pinned" objects are the ones some process has mapped right now (a task's
argument, an array a driver still holds from ``get``), read from
``/proc/*/maps`` (``shm_store.mapped_ids``) when a spill is needed. Unlinking
such a file would free no memory (the mapping keeps its pages), so they stay.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from . import shm_store, spill_policy
from .object_owners import ObjectOwners
from .object_spiller import ObjectSpiller
from .shm_store import ShmStore
from .spill_policy import StoreLedger, StoreStats

__all__ = ["StoreFull", "StoreManager"]

# How long a write waits for room when nothing can be spilled right now (the
# objects in the way are in use and may be released) before it is refused.
FULL_WAIT_ENV = "EMBER_OBJECT_STORE_FULL_WAIT_S"
DEFAULT_FULL_WAIT_S = 5.0
# Reading every process's memory map is cheap but not free: reuse it this long.
PIN_SCAN_TTL_S = 0.1
BACKGROUND_POLL_S = 0.5
# Freed shared-memory files kept for reuse (shm_store.recycle), in bytes: at
# most this, and never more than the store has free. Default: a quarter of the
# capacity (1 GiB without one); 0 turns recycling off.
POOL_ENV = "EMBER_OBJECT_POOL_BYTES"


class StoreFull(Exception):
    """No room for an object; the message is what ObjectStoreFullError shows."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class StoreManager:
    """Capacity, spilling and restoring for one node's shared-memory store.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> m = StoreManager(ShmStore(d, "ember_doc_"), d + "/spill", capacity=1 << 20)
    >>> m.create(b"\\x01", 1000, "w1")        # room for it: go ahead (with credit)
    130947
    >>> m.stop()
    """

    def __init__(self, store: ShmStore, spill_directory: str, capacity: int, *,
                 full_wait_s: float | None = None, spiller: ObjectSpiller | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 pinned: Callable[[], set[bytes]] | None = None) -> None:
        self.store = store
        self.spiller = spiller or ObjectSpiller(spill_directory)
        self.ledger = StoreLedger(int(capacity))
        self.owners = ObjectOwners()   # who owns each object written here
        self._clock = clock
        if full_wait_s is None:
            full_wait_s = float(os.environ.get(FULL_WAIT_ENV, DEFAULT_FULL_WAIT_S))
        self._full_wait = full_wait_s
        capacity = int(capacity)
        self._pool_limit = int(os.environ.get(POOL_ENV, capacity // 4 if capacity else 1 << 30))
        self._scan_pins = pinned or self._mapped_now
        self._lock = threading.Lock()          # the ledger
        self._spill_lock = threading.Lock()    # one spill round at a time
        self._pins: set[bytes] = set()
        self._pins_at = float("-inf")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start background spilling (only a store with a capacity needs it)."""
        if self.ledger.capacity and self._thread is None:
            self._thread = threading.Thread(target=self._background_loop, daemon=True,
                                            name="ember-spill")
            self._thread.start()

    def stop(self) -> None:
        """Stop spilling and delete every spill file (shared memory is the caller's)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.spiller.delete_all()

    def stats(self) -> StoreStats:
        with self._lock:
            return self.ledger.stats()

    def status_fields(self) -> dict[str, int]:
        """This store's fields of the node manager's GetStatus reply (pb.NodeStatus)."""
        st = self.stats()
        return {"store_used_bytes": st.used, "store_num_objects": st.num_in_memory,
                "store_capacity_bytes": st.capacity, "store_spilled_bytes": st.spilled_bytes,
                "store_num_spilled": st.num_spilled,
                "store_total_spilled_bytes": st.total_spilled_bytes,
                "store_total_restored_bytes": st.total_restored_bytes}

    # ------------------------------------------------------------ writers
    def create(self, object_id: bytes, size: int, writer: str) -> int:
        """Make room for a new object; return the writer's credit. Raises StoreFull."""
        return self._admit(object_id, size, writer)

    def sealed(self, objects: list[tuple[bytes, int]], writer: str,
               owners: list[tuple[str, str]] | None = None) -> None:
        """Objects are complete in shared memory; ``owners``: (worker id, node id) of each."""
        now = self._clock()
        over = False
        late: list[bytes] = []
        for (oid, _), (worker, node) in zip(objects, owners or [("", "")] * len(objects)):
            with self._lock:
                if self.owners.add(oid, worker, node):
                    late.append(oid)      # its owner died before this message came
        for oid, size in objects:
            # Freed before this message arrived (the owner is not the writer):
            # its file is gone, and counting it would leak room forever.
            if self.store.size(oid.hex()) is None:
                with self._lock:
                    self.ledger.abort(oid)
                continue
            with self._lock:
                self.ledger.sealed(oid, size, writer, now)
                over = over or self.ledger.over_threshold() > 0
        if over:
            self._wake.set()
        if late:
            self.free(late)

    def owner_gone(self, worker_id: str = "", node_id: str = "") -> int:
        """A process (or every process of a node) died: free the objects it owned here.

        Nobody could free them any more, and a borrower must not read a dead owner's
        object (it gets OwnerDiedError from the owner instead). Returns how many."""
        with self._lock:
            gone = (self.owners.owner_died(worker_id) if worker_id else []) + (
                self.owners.node_died(node_id) if node_id else [])
        if gone:
            self.free(gone)
        return len(gone)

    def copy_sealed(self, object_id: bytes, size: int) -> None:
        """A copy pulled from another node is complete here."""
        with self._lock:
            self.ledger.sealed(object_id, size, "", self._clock())
            over = self.ledger.over_threshold() > 0
        if over:
            self._wake.set()

    def abort(self, object_id: bytes) -> None:
        """A write that reserved room failed."""
        with self._lock:
            self.ledger.abort(object_id)

    def free(self, object_ids: list[bytes]) -> None:
        """The owner freed these objects: drop them from memory and disk."""
        for oid in object_ids:
            with self._lock:
                self.owners.remove(oid)
                _, on_disk = self.ledger.freed(oid)
            budget = self._pool_budget()
            if self.store.recycle(oid.hex(), budget):
                # The newest file is the likeliest to be reused next (a loop of writes
                # of one size): the longest pooled ones make room for it.
                self.store.trim_pool(budget, oldest_first=True)
            if on_disk:
                self.spiller.delete(oid.hex())

    def _pool_budget(self) -> int:
        """Bytes the pool of recycled files may hold: it lives in the store's free room
        (what the ledger has not committed), so it never pushes the node past its
        capacity."""
        limit = self._pool_limit
        if self.ledger.capacity:
            with self._lock:
                limit = min(limit, self.ledger.capacity - self.ledger.committed)
        return limit

    def _trim_pool(self) -> None:
        """Give recycled files back while they and the committed bytes exceed the capacity."""
        if self.ledger.capacity:
            with self._lock:
                free = self.ledger.capacity - self.ledger.committed
            self.store.trim_pool(max(0, free))

    def writer_gone(self, writer: str) -> None:
        """A process died: the room it reserved and never filled is free again."""
        with self._lock:
            self.ledger.writer_gone(writer)

    # ------------------------------------------------------------ readers
    def touch(self, object_id: bytes) -> None:
        with self._lock:
            self.ledger.touch(object_id)

    def restore(self, object_id: bytes) -> int | None:
        """Copy a spilled object back into shared memory; its size, or None if not spilled.

        Raises StoreFull if no room can be made for it.
        """
        with self._lock:
            size = self.ledger.spilled_size(object_id)
        if size is None:
            return None
        hex_id = object_id.hex()
        self._admit(object_id, size, "")
        try:
            self.store.create_with(hex_id, size, lambda mv: self.spiller.read_into(hex_id, mv))
        except BaseException:
            with self._lock:
                self.ledger.abort(object_id)
            raise
        with self._lock:
            kept = self.ledger.restored(object_id, self._clock())
        if not kept:
            self.store.delete(hex_id)   # freed while it was being restored
            return None
        return size

    def spilled_view(self, object_id: bytes) -> memoryview | None:
        """A read-only view of the spill file, for serving it without restoring it."""
        with self._lock:
            if not self.ledger.has_disk_copy(object_id):
                return None
        return self.spiller.view(object_id.hex())

    def open_spilled(self, object_id: bytes) -> tuple[int, int] | None:
        """(fd, size) of the spill file, for sending it without restoring it, or None."""
        with self._lock:
            if not self.ledger.has_disk_copy(object_id):
                return None
        return self.spiller.open(object_id.hex())

    # ------------------------------------------------------------ admission and spilling
    def _admit(self, object_id: bytes, size: int, writer: str) -> int:
        with self._lock:
            if self.ledger.too_big(size):
                raise StoreFull(
                    f"Object {object_id.hex()} of {_mib(size)} cannot fit in the object store "
                    f"of this node ({_mib(self.ledger.capacity)} in all), even after spilling "
                    "every other object to disk. Split it into smaller objects or raise "
                    "object_store_memory.")
        deadline = None
        last_error: OSError | None = None
        while True:
            with self._lock:
                credit = self.ledger.admit(object_id, size, writer, self._clock())
            if credit is not None:
                self._trim_pool()
                return credit
            freed, error = self._spill(size)
            last_error = error or last_error
            if freed:
                continue
            now = self._clock()
            if deadline is None:
                deadline = now + self._full_wait
            if now >= deadline or self._stopping.is_set():
                raise StoreFull(self._full_message(object_id, size, last_error))
            # Objects in the way are in use; they may be released soon.
            self._stopping.wait(0.05)

    def _full_message(self, object_id: bytes, size: int, error: OSError | None) -> str:
        with self._lock:
            st = self.ledger.stats()
        why = (f"spilling to disk failed ({error})" if error is not None else
               "the objects in it are in use (arguments of running tasks, or values from "
               "ember.get that are still referenced) and cannot be spilled")
        return (f"Failed to put object {object_id.hex()} of {_mib(size)}: the object store "
                f"of this node is full ({_mib(st.committed)} of {_mib(st.capacity)} taken "
                f"by {st.num_in_memory} objects and writes in progress) and {why}, for "
                f"{self._full_wait:g}s.")

    def _spill(self, size: int | None) -> tuple[int, OSError | None]:
        """One spill round: room for ``size`` more bytes, or (None) down to the threshold.

        Returns (bytes freed, last disk error). Freed is -1 when there was
        nothing to do (it fits already).
        """
        with self._spill_lock:
            with self._lock:
                need = (self.ledger.over_threshold() if size is None
                        else self.ledger.shortfall(size))
            if need <= 0:
                return -1, None
            pins = self._pinned()
            with self._lock:
                want = int(self.ledger.capacity * spill_policy.MIN_SPILL_SHARE)
                victims = self.ledger.choose_victims(need, pins, want)
            freed, error = 0, None
            for oid, nbytes, on_disk in victims:
                try:
                    if self._spill_one(oid, on_disk):
                        freed += nbytes
                except OSError as e:
                    error = e
                    with self._lock:
                        self.ledger.spill_failed(oid)
            return freed, error

    def _spill_one(self, object_id: bytes, on_disk: bool) -> bool:
        hex_id = object_id.hex()
        if not on_disk:
            view = self.store.get(hex_id)
            if view is None:
                # Its file is gone (freed while we chose it): nothing to spill.
                with self._lock:
                    self.ledger.freed(object_id)
                return False
            try:
                self.spiller.write(hex_id, view)
            finally:
                view.release()
                del view
        with self._lock:
            kept = self.ledger.spill_done(object_id)
        if kept:
            self.store.delete(hex_id)
        else:
            self.spiller.delete(hex_id)     # freed while being spilled
        return kept

    def _pinned(self) -> set[bytes]:
        now = self._clock()
        if now - self._pins_at >= PIN_SCAN_TTL_S:
            self._pins = self._scan_pins()
            self._pins_at = now
        return self._pins

    def _mapped_now(self) -> set[bytes]:
        out = set()
        for name in shm_store.mapped_ids(self.store.directory, self.store.prefix):
            try:
                out.add(bytes.fromhex(name))
            except ValueError:
                continue
        return out

    def _background_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(BACKGROUND_POLL_S)
            self._wake.clear()
            try:
                while not self._stopping.is_set():
                    freed, _ = self._spill(None)
                    if freed <= 0:
                        break
            except Exception:  # noqa: BLE001 - spilling must outlive one bad object
                import traceback
                traceback.print_exc()

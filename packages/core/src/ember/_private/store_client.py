"""The object-store side of a driver or worker: asking for room, and restoring on a miss.

Writing: before a process writes an object into shared memory it needs room
in the node's store. It asks the node manager (CreateObject), which spills
other objects to disk if need be, or refuses (ObjectStoreFullError). While the
store is mostly empty the answer comes with *credit*: bytes this process may
write next without asking, for a short while (``spill_policy`` sizes it). So a
burst of puts into a roomy store costs no round trip each; under pressure
every write asks, which is when spilling costs far more than the call anyway.
Values up to the inline threshold never get here: they never touch shared
memory.

Reading: a process that does not find an object in shared memory asks its
node manager (PullObject), which restores it from disk if it was spilled here,
or copies it from another node.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from .protos import ember_pb2 as pb
from .spill_policy import CLIENT_CREDIT_TTL_S

__all__ = ["StoreClient"]

# A restored object can be spilled again before the reader maps it (only if
# the store is that busy); ask again this many times.
_RESTORE_ATTEMPTS = 4


class StoreClient:
    """Room for this process's writes, from its node manager (see module docstring).

    >>> client = StoreClient(core.node_manager, core.worker_id)
    >>> client.reserve(object_id, 10 << 20)    # raises ObjectStoreFullError if no room
    """

    def __init__(self, node_manager: Any, worker_id: str) -> None:
        self._nm = node_manager
        self._worker_id = worker_id
        self._lock = threading.Lock()
        self._credit = 0
        self._credit_until = 0.0

    def reserve(self, object_id: bytes, size: int) -> None:
        """Room for ``size`` bytes of object ``object_id``; blocks while the node spills.

        Raises ObjectStoreFullError when the node cannot make room.
        """
        with self._lock:
            if size <= self._credit and time.monotonic() < self._credit_until:
                self._credit -= size
                return
        from . import rpc

        # Spilling may have to write a lot to disk first: wait as long as it takes.
        # Idempotent (asking again for the same object replaces the reservation):
        # resend a lost call.
        reply = rpc.call_with_retry(self._nm.CreateObject, pb.CreateObjectRequest(
            object_id=object_id, size=size, worker_id=self._worker_id), timeout=3600)
        if not reply.ok:
            from ..exceptions import ObjectStoreFullError
            raise ObjectStoreFullError(reply.error)
        with self._lock:
            self._credit = reply.credit
            self._credit_until = time.monotonic() + CLIENT_CREDIT_TTL_S

    def sealed_request(self, object_id: bytes, size: int, owner: Any = None
                       ) -> pb.ObjectsRequest:
        """The ObjectsSealed message for an object this process wrote, owned by
        ``owner`` (a pb.Address; None: this process)."""
        worker_id = owner.worker_id if owner is not None else self._worker_id
        node_id = owner.node_id if owner is not None else ""
        return pb.ObjectsRequest(objects=[pb.SealedObject(
            object_id=object_id, size=size, owner_worker_id=worker_id,
            owner_node_id=node_id)], worker_id=self._worker_id)


def fetch_view(core: Any, object_id: bytes, locations: Any, owner: str) -> memoryview | None:
    """An object missing from this node's shared memory: have the node manager bring it.

    It restores a copy spilled here, or pulls one from another node. None if
    it was only ever here and is gone (freed). Raises ObjectStoreFullError if
    there is no room to restore it, ObjectFetchTimedOutError if no other node
    could provide it.
    """
    from ..exceptions import ObjectFetchTimedOutError, ObjectStoreFullError
    from . import rpc

    hex_id = object_id.hex()
    remote = any(loc.node_id != core.node_id for loc in locations)
    for _ in range(_RESTORE_ATTEMPTS):
        # Idempotent (a copy already here answers at once): resend a lost call.
        reply = rpc.call_with_retry(core.node_manager.PullObject, pb.PullRequest(
            object_id=object_id, locations=locations, owner=pb.Address(ip=owner)), timeout=600)
        if not reply.ok:
            if reply.store_full:
                raise ObjectStoreFullError(reply.error)
            if not remote:
                return None     # it was here and is gone
            raise ObjectFetchTimedOutError(hex_id, owner, reply.error)
        view = core.shm.get(hex_id)
        if view is not None:
            return view
    return None

"""Who owns each shared-memory object on a node, so a dead owner's objects can go (pure).

When the process that owns an object dies, nobody can free it any more, and a
borrower must get ``OwnerDiedError`` rather than quietly read a copy that is now
nobody's (as Ray documents). The node manager records the owner of every object
written on its node (ObjectsSealed carries it) and, told of a death (its own
reaper, or ReleaseOwner from the control service), frees that owner's objects.

An object whose owner died before its ObjectsSealed arrived (a task return
written after its caller was gone) is freed on arrival: recent deaths are
remembered, a bounded number of them.

>>> owners = ObjectOwners()
>>> owners.add(b"o1", "w1", "n1")
False
>>> owners.owner_died("w1")
[b'o1']
>>> owners.add(b"o2", "w1", "n1")          # sealed after its owner died
True
"""
from __future__ import annotations

from collections import OrderedDict

__all__ = ["ObjectOwners"]

# Dead owners remembered for objects sealed after the death was heard.
DEAD_MEMORY = 10_000


class ObjectOwners:
    """Object id -> (owner worker id, owner node id), with lookups by owner."""

    def __init__(self, dead_memory: int = DEAD_MEMORY) -> None:
        self._owner: dict[bytes, tuple[str, str]] = {}
        self._by_worker: dict[str, set[bytes]] = {}
        self._by_node: dict[str, set[bytes]] = {}
        self._dead_workers: OrderedDict[str, None] = OrderedDict()
        self._dead_nodes: OrderedDict[str, None] = OrderedDict()
        self._dead_memory = dead_memory

    def __len__(self) -> int:
        return len(self._owner)

    def add(self, object_id: bytes, worker_id: str, node_id: str) -> bool:
        """Record an object's owner; True if that owner is already dead (free it now)."""
        if not worker_id:
            return False   # unknown owner (an old writer): nothing to track
        if worker_id in self._dead_workers or node_id in self._dead_nodes:
            return True
        self.remove(object_id)
        self._owner[object_id] = (worker_id, node_id)
        self._by_worker.setdefault(worker_id, set()).add(object_id)
        if node_id:
            self._by_node.setdefault(node_id, set()).add(object_id)
        return False

    def remove(self, object_id: bytes) -> None:
        """The object was freed."""
        owner = self._owner.pop(object_id, None)
        if owner is None:
            return
        worker_id, node_id = owner
        for index, key in ((self._by_worker, worker_id), (self._by_node, node_id)):
            ids = index.get(key)
            if ids is not None:
                ids.discard(object_id)
                if not ids:
                    del index[key]

    def owner_died(self, worker_id: str) -> list[bytes]:
        """The objects of a dead owner (forgotten here: the caller frees them)."""
        self._remember(self._dead_workers, worker_id)
        gone = sorted(self._by_worker.get(worker_id, ()))
        for oid in gone:
            self.remove(oid)
        return gone

    def node_died(self, node_id: str) -> list[bytes]:
        """The objects owned by any process of a dead node."""
        self._remember(self._dead_nodes, node_id)
        gone = sorted(self._by_node.get(node_id, ()))
        for oid in gone:
            self.remove(oid)
        return gone

    def _remember(self, dead: OrderedDict[str, None], key: str) -> None:
        if not key:
            return
        dead[key] = None
        dead.move_to_end(key)
        while len(dead) > self._dead_memory:
            dead.popitem(last=False)

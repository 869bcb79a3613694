"""``ember.experimental.get_object_locations``: which nodes hold a copy of each object.

Libraries use it to place work next to its data (ember-data's ``streaming_split`` with
``locality_hints``). The owner of an object keeps the list of nodes holding its
shared-memory copies, so an owned object is answered from this process's memory store
and a borrowed one by asking its owner (the same GetObject long-poll that ``get`` uses,
which for a shared-memory object carries the locations, not the bytes).
"""
from __future__ import annotations

import time
from typing import Any

from . import worker_state


def get_object_locations(obj_refs: list[Any], timeout_ms: int = -1) -> dict[Any, dict]:
    """Where each object lives: ``{ref: {"node_ids": [...], "object_size": n, "did_spill": b}}``.

    Waits for objects that are not ready yet, up to ``timeout_ms`` (negative: forever),
    then raises ``GetTimeoutError``. Small objects kept inline by their owner (not in
    shared memory) have no node copies: their ``node_ids`` is empty.

    >>> ref = ember.put(np.zeros(10_000_000))
    >>> ember.experimental.get_object_locations([ref])[ref]
    {'node_ids': ['9f1c...'], 'object_size': 80000152, 'did_spill': False}
    """
    from ..exceptions import GetTimeoutError
    from .object_ref import ObjectRef

    if not isinstance(obj_refs, (list, tuple)) or not all(
            isinstance(r, ObjectRef) for r in obj_refs):
        raise TypeError("get_object_locations takes a list of ObjectRefs, got "
                        f"{type(obj_refs).__name__}; wrap a single ref in a list")
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool):
        raise TypeError(f"timeout_ms must be an int (negative waits forever), got {timeout_ms!r}")
    core = worker_state.require_core()
    timeout = None if timeout_ms < 0 else timeout_ms / 1000.0
    deadline = None if timeout is None else time.monotonic() + timeout
    out: dict[Any, dict] = {}
    owned = [r for r in obj_refs if r._owner in ("", core.address)]
    if owned:
        ids = list({r._id for r in owned})
        done = core.memory_store.wait_ready(ids, len(ids), timeout)
        if len(done) < len(ids):
            raise GetTimeoutError(
                f"get_object_locations timed out after {timeout_ms} ms with "
                f"{len(ids) - len(done)} objects not ready: raise timeout_ms or wait for them")
        for ref in owned:
            entry = core.memory_store.get(ref._id)
            if entry is None:
                continue  # freed: like Ray, left out of the answer
            out[ref] = _describe(entry.in_shm, entry.size, entry.locations)
    for ref in obj_refs:
        if ref in out or ref._owner in ("", core.address):
            continue
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        obj, _ = core._fetch_borrowed(ref, left)
        if obj.in_shm and not obj.locations:
            # Already mapped on this node (the fetch short-cut): this node holds it.
            view = core.shm.get(ref._id.hex())
            out[ref] = {"node_ids": [core.node_id],
                        "object_size": len(view) if view is not None else None,
                        "did_spill": False}
        else:
            out[ref] = _describe(obj.in_shm, obj.size, obj.locations)
    return out


def _describe(in_shm: bool, size: int, locations: Any) -> dict:
    node_ids = list(dict.fromkeys(a.node_id for a in locations if a.node_id)) if in_shm else []
    return {"node_ids": node_ids, "object_size": size, "did_spill": False}

"""Placement groups, caller side: create, wait, remove, look up (Ray's API).

The control service places and reserves bundles (placement_group_manager.py);
tasks and actors scheduled into a group ask for the bundle's renamed resources
(``CPU_group_<i>_<pg>``), which exist only on the node holding that bundle, so
ordinary lease scheduling lands them there.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from . import ids, serialization, worker_state
from .pg_policy import STRATEGIES

_POLL = 5.0
_ops_lock = threading.Lock()


def _ops(core: Any) -> Any:
    """This process's placement-group operation queue (placement_group_ops.py)."""
    ops = getattr(core, "_pg_ops", None)
    if ops is None:
        with _ops_lock:
            ops = getattr(core, "_pg_ops", None)
            if ops is None:
                from .placement_group_ops import PlacementGroupOps
                ops = core._pg_ops = PlacementGroupOps(core.gcs)
    return ops


def flush_pending() -> None:
    """Wait until this process's queued creates and removals are applied: before
    anything reads groups back, schedules into one, or hands one to another process.

    >>> flush_pending()
    """
    core = worker_state.core
    ops = getattr(core, "_pg_ops", None) if core is not None else None
    if ops is not None and not ops.idle:
        ops.barrier()


class PlacementGroupID(ids.BinaryID):
    """A placement group's id (``pg.id.hex()``)."""

    __slots__ = ()


class PlacementGroup:
    """A handle to a placement group: reserved bundles of resources.

    >>> pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
    >>> ember.get(pg.ready())
    """

    def __init__(self, pg_id: bytes, bundles: list[dict[str, float]], strategy: str = "PACK",
                 name: str = "") -> None:
        self.id = PlacementGroupID(pg_id)
        self.bundle_specs = [dict(b) for b in bundles]
        self.strategy = strategy
        self.name = name

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """An ObjectRef that resolves (to this group) once every bundle is reserved.

        >>> ember.get(pg.ready(), timeout=10)
        """
        from .object_ref import ObjectRef
        core = worker_state.require_core()
        oid = ids.object_id_for(ids.new_task_id(), 1)
        core.register_pending(oid)
        ref: ObjectRef = ObjectRef(oid, core.address)

        def watch() -> None:
            try:
                info = _wait_state(core, self.id.binary(), None)
                if info.state == "CREATED":
                    data = serialization.to_bytes(serialization.serialize(self))
                    core.memory_store.set_ready(oid, data=data, size=len(data))
                    return
                raise RuntimeError(f"placement group {self.id.hex()} was removed before all "
                                   "its bundles were reserved")
            except Exception as e:  # noqa: BLE001 - delivered through the ref
                data = serialization.to_bytes(serialization.serialize(e))
                core.memory_store.set_ready(oid, data=data, is_error=True, size=len(data))

        threading.Thread(target=watch, daemon=True, name="ember-pg-ready").start()
        return ref

    def wait(self, timeout_seconds: float | None = 30) -> bool:
        """Block until the group is created (True) or ``timeout_seconds`` pass (False).

        >>> assert pg.wait(10)
        """
        core = worker_state.require_core()
        info = _wait_state(core, self.id.binary(), timeout_seconds)
        return info.state == "CREATED"

    def __getstate__(self) -> dict[str, Any]:
        # Another process may look this group up: its create must have landed.
        flush_pending()
        return dict(self.__dict__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()}, {self.strategy}, {self.bundle_specs})"


def _wait_state(core: Any, pg_id: bytes, timeout: float | None) -> Any:
    """Long-poll until the group leaves PENDING or ``timeout`` passes; returns its info."""
    import time

    from .protos import ember_pb2 as pb
    ops = _ops(core)
    ops.barrier()
    refused = ops.refusal(pg_id)
    if refused:
        raise ValueError(refused)
    deadline = None if timeout is None else time.monotonic() + timeout
    version = 0
    while True:
        left = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
        info = core.gcs.GetPlacementGroup(pb.PlacementGroupRequest(
            pg_id=pg_id, after_version=version, timeout=left), timeout=left + 30)
        if not info.found:
            raise ValueError(f"placement group {pg_id.hex()} does not exist")
        version = info.version
        if info.state != "PENDING" or (deadline is not None and time.monotonic() >= deadline):
            return info


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _max_cpu_fraction_per_node: float = 1.0,
                    _soft_target_node_id: str | None = None,
                    bundle_label_selector: Any = None) -> PlacementGroup:
    """Reserve ``bundles`` of resources across the cluster, atomically.

    >>> pg = ember.util.placement_group([{"CPU": 1, "GPU": 1}] * 2, strategy="STRICT_SPREAD")
    >>> pg.wait(30)
    True
    """
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError(f"placement_group() needs a non-empty list of bundles (dicts of "
                         f"resource -> amount), got {bundles!r}")
    clean: list[dict[str, float]] = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not bundle:
            raise ValueError(f"bundle {i} must be a non-empty dict like {{'CPU': 1}}, got "
                             f"{bundle!r}")
        for key, value in bundle.items():
            if not isinstance(key, str) or isinstance(value, bool) or \
                    not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"bundle {i} has an invalid entry {key!r}: {value!r}; amounts "
                                 "must be numbers >= 0")
        if not any(v > 0 for v in bundle.values()):
            raise ValueError(f"bundle {i} {bundle} reserves nothing: give at least one "
                             "resource a positive amount")
        clean.append({k: float(v) for k, v in bundle.items()})
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement group strategy {strategy!r}: use one of "
                         f"{', '.join(STRATEGIES)}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"lifetime must be None or 'detached', got {lifetime!r}")
    if _max_cpu_fraction_per_node != 1.0:
        raise ValueError("_max_cpu_fraction_per_node is not supported by Ember (Ray deprecated "
                         "it): leave it at 1.0 and size the bundles instead")
    selectors = list(bundle_label_selector or [])
    if selectors and len(selectors) != len(clean):
        raise ValueError(f"bundle_label_selector has {len(selectors)} entries for "
                         f"{len(clean)} bundles: give one dict per bundle ({{}} for any node)")
    for i, sel in enumerate(selectors):
        if not isinstance(sel, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in sel.items()):
            raise ValueError(f"bundle_label_selector[{i}] must be a dict of label -> value "
                             f"strings, got {sel!r}")
    pg_id = os.urandom(14)
    spec = pb.PlacementGroupSpec(
        pg_id=pg_id, name=name or "", namespace=core.namespace, strategy=strategy,
        detached=lifetime == "detached", owner_worker_id=core.worker_id,
        owner_node_id=core.node_id,
        soft_target_node_id=_soft_target_node_id or "",
        bundles=[pb.Bundle(index=i, resources=b,
                           label_selector=selectors[i] if selectors else {})
                 for i, b in enumerate(clean)])
    # A name may be taken, and a detached group must exist before a driver that may
    # be about to exit returns: those wait for their answer. The rest are queued.
    awaited = bool(name) or lifetime == "detached"
    pending = _ops(core).submit(pb.PlacementGroupOp(create=spec), awaited=awaited)
    if awaited:
        info = pending.result(timeout=120)
        if not info.found:
            raise ValueError(info.error)
    return PlacementGroup(pg_id, clean, strategy, name or "")


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Release the group's bundles; tasks and actors running in it are stopped.

    >>> remove_placement_group(pg)
    """
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() expects a PlacementGroup, got "
                        f"{type(placement_group).__name__}")
    # Queued: applied in order before anything here reads groups back (as in Ray,
    # the bundles are given back just after the removal is recorded).
    _ops(core).submit(pb.PlacementGroupOp(remove=placement_group.id.binary()))


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """Look a named group up in this job's namespace.

    >>> pg = get_placement_group("trainers")
    """
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    flush_pending()
    info = core.gcs.GetPlacementGroup(pb.PlacementGroupRequest(
        name=placement_group_name, namespace=core.namespace), timeout=30)
    if not info.found or info.state == "REMOVED":
        raise ValueError(f"Failed to look up placement group with name "
                         f"{placement_group_name!r} in namespace {core.namespace!r}: none "
                         "exists there (check the name, or that it was not removed)")
    return PlacementGroup(info.pg_id, [dict(b.resources) for b in info.bundles], info.strategy,
                          info.name)


def _table_row(info: Any) -> dict[str, Any]:
    return {
        "placement_group_id": info.pg_id.hex(), "name": info.name,
        "bundles": {b.index: dict(b.resources) for b in info.bundles},
        "bundles_to_node_id": {b.index: b.node_id for b in info.bundles if b.node_id},
        "strategy": info.strategy, "state": info.state,
        "stats": {"scheduling_state": info.error or info.state},
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """State of one group (a dict), or of every group (id hex -> dict).

    >>> placement_group_table(pg)["state"]
    'CREATED'
    """
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    flush_pending()
    if placement_group is not None:
        info = core.gcs.GetPlacementGroup(pb.PlacementGroupRequest(
            pg_id=placement_group.id.binary()), timeout=30)
        return _table_row(info) if info.found else {}
    groups = core.gcs.ListPlacementGroups(pb.Empty(), timeout=30).groups
    return {g.pg_id.hex(): _table_row(g) for g in groups}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in, or None (in a driver, or outside any).

    >>> get_current_placement_group()
    """
    core = worker_state.core
    if core is None:
        return None
    task = getattr(core.current, "task", None)
    pg_id = task.spec.placement_group_id if task is not None else b""
    pg_id = pg_id or getattr(core, "actor_placement_group", b"")
    if not pg_id:
        return None
    from .protos import ember_pb2 as pb
    info = core.gcs.GetPlacementGroup(pb.PlacementGroupRequest(pg_id=pg_id), timeout=30)
    return PlacementGroup(pg_id, [dict(b.resources) for b in info.bundles], info.strategy,
                          info.name)

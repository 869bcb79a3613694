"""A node manager's placement-group bundles: the two-phase reservation the control
service drives (PrepareBundles, CommitBundles, CancelBundles), as a mixin of
``NodeManager`` (node_manager.py), whose lock, scheduler and ``_bundles`` it uses.

A bundle is reserved out of the node's resources at prepare (all of a group's
bundles on this node, or none), and becomes usable at commit as the resources
``<name>_group_<index>_<pg>`` and ``<name>_group_<pg>`` (pg_policy.py).
"""
from __future__ import annotations

import time
from typing import Any

from .pg_policy import bundle_resource_names
from .protos import ember_pb2 as pb


class BundlesMixin:
    """Needs ``_lock``, ``_bundles`` (pg id -> {index: [allocation, added names]}),
    ``scheduler``, ``node_id``, ``_apply`` and ``_resources_info`` from the node manager."""

    _lock: Any
    _bundles: dict[bytes, dict[int, list]]
    scheduler: Any
    node_id: str

    def _apply(self, actions: list) -> None:  # pragma: no cover - NodeManager's
        raise NotImplementedError

    def _resources_info(self) -> pb.NodeInfo:  # pragma: no cover - NodeManager's
        raise NotImplementedError

    def _bundle_gpus(self, allocation: object) -> list[str]:
        """GPU ids behind a lease that draws GPU_group_* from a bundle (lock held)."""
        ids: list[str] = []
        for name in getattr(allocation, "resources", {}):
            if not name.startswith("GPU_group_"):
                continue
            rest = name[len("GPU_group_"):]
            index_s, _, pg_hex = rest.rpartition("_")
            for pg_id, held in self._bundles.items():
                if pg_id.hex() != (pg_hex if index_s else rest):
                    continue
                for index, (alloc, _) in held.items():
                    if not index_s or index == int(index_s):
                        ids.extend(g for g in alloc.gpu_ids if g not in ids)
        return ids

    def PrepareBundles(self, request: pb.BundleRequest, context) -> pb.BundleReply:
        """Phase one: reserve every bundle sent here, or none of them (per group of a batch).

        With ``commit`` the group's bundles are committed in the same call;
        ``batch`` carries more groups, answered in order in the reply's batch.
        """
        with self._lock:
            replies = [self._prepare_locked(r) for r in [request, *request.batch]
                       if r.pg_id]
            self._apply(self.scheduler.resources_changed())
            reply = replies[0] if request.pg_id else pb.BundleReply(ok=True)
            reply.batch.extend(replies[1:] if request.pg_id else replies)
            reply.node.CopyFrom(self._resources_info())
            return reply

    def _prepare_locked(self, request: pb.BundleRequest) -> pb.BundleReply:
        held = self._bundles.get(request.pg_id)
        if held is not None:
            # A retry of a prepare whose reply was lost: fine if it asks for the
            # same bundles; otherwise the caller must cancel first.
            same = set(held) == {b.index for b in request.bundles}
            if same and request.commit:
                return self._commit_locked(request.pg_id)
            return pb.BundleReply(ok=same, error="" if same else (
                "other bundles of this group are already prepared here"))
        resources = self.scheduler.resources
        taken: dict[int, list] = {}
        for bundle in request.bundles:
            alloc = resources.try_allocate(dict(bundle.resources))
            if alloc is None:
                for entry in taken.values():
                    resources.release(entry[0])
                return pb.BundleReply(ok=False, error=(
                    f"bundle {bundle.index} {dict(bundle.resources)} does not fit in "
                    f"{resources.available} on node {self.node_id[:12]}"))
            taken[bundle.index] = [alloc, None]
        self._bundles[request.pg_id] = taken
        if request.commit:
            # The group's only node: nothing to agree on, so no second round trip.
            return self._commit_locked(request.pg_id)
        return pb.BundleReply(ok=True)

    def CommitBundles(self, request: pb.BundleRequest, context) -> pb.BundleReply:
        """Phase two: make the reserved bundles usable as R_group_<i>_<pg> resources."""
        with self._lock:
            reply = self._commit_locked(request.pg_id)
            self._apply(self.scheduler.resources_changed())
            # The group counts as created once this returns: the reply carries the
            # new resources, which the control service records before saying so,
            # or other nodes would not yet know where the bundles are.
            reply.node.CopyFrom(self._resources_info())
            return reply

    def _commit_locked(self, pg_id: bytes) -> pb.BundleReply:
        held = self._bundles.get(pg_id)
        if held is None:
            return pb.BundleReply(ok=False, error="no bundles prepared for this group")
        for index, entry in held.items():
            if entry[1] is None:
                added = bundle_resource_names(entry[0].resources.to_dict(), pg_id.hex(), index)
                self.scheduler.resources.add_capacity(added)
                entry[1] = added
        return pb.BundleReply(ok=True)

    def CancelBundles(self, request: pb.BundleRequest, context) -> pb.BundleReply:
        """Give the bundles back (of every group in the batch too); work running in them
        is stopped (as in Ray)."""
        with self._lock:
            for pg_id in [request.pg_id, *(r.pg_id for r in request.batch)]:
                held = self._bundles.pop(pg_id, None)
                if held is None:
                    continue
                self._apply(self.scheduler.kill_leases_using(pg_id.hex(), time.monotonic()))
                resources = self.scheduler.resources
                for alloc, added in held.values():
                    if added is not None:
                        resources.remove_capacity(added)
                    resources.release(alloc)
            self._apply(self.scheduler.resources_changed())
            return pb.BundleReply(ok=True, node=self._resources_info())

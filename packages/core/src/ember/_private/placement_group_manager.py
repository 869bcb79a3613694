"""The control service's placement groups: placement, two-phase reservation, removal.

A group is PENDING until every bundle is reserved, then CREATED, and REMOVED
when removed or when its (non-detached) owner dies. Placement picks nodes with
pg_policy.place over the latest free resources, then reserves in two phases:
PrepareBundles on every chosen node (each reserves all its bundles or none),
and only if all succeeded CommitBundles (the bundles become usable as
``R_group_<i>_<pg>`` resources); otherwise the prepared ones are cancelled and
placement is retried shortly. So bundles are all-or-nothing. A group whose
bundles all land on one node is prepared and committed in one call (there is
no other node to agree with). Every bundle reply carries the node's resources
after the change, recorded at once (``on_resources``): the next placement sees
them, and the node needs no UpdateNode round trip inside the call.

Every state change is written through to the control service's store
(gcs_store.py); a restarted control service takes the groups back with
``restore``.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

import grpc

from . import cluster_policy, pg_policy, rpc
from .gcs_store import GcsStore, StoredGroup
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg

RETRY_SECONDS = 0.2
MAX_POLL_SECONDS = 5.0


# Bundles per node of one group (``list`` is a method name in the manager below).
_PerNode = dict[str, list[pb.Bundle]]


class _Group:
    def __init__(self, spec: pb.PlacementGroupSpec) -> None:
        self.spec = spec
        self.state = "PENDING"
        self.nodes: list[str] = []          # node id per bundle, once created
        self.version = 0
        self.error = ""


# Groups placed on one node together, each with its bundles there.
_Batch = list[tuple[_Group, list[pb.Bundle]]]
_Groups = list[_Group]
_Ids = list[bytes]
_NodeIds = list[str]
_Cancels = list[tuple[bytes, set[str]]]


class PlacementGroupManager:
    def __init__(self, token: str, nodes: Callable[[], Iterable[pb.NodeInfo]],
                 store: GcsStore | None = None,
                 on_resources: Callable[[pb.NodeInfo], None] | None = None) -> None:
        self._token = token
        self._nodes = nodes
        self._on_resources = on_resources
        self._store = store or GcsStore(None)
        # Groups whose placement may have been half done by a previous control
        # service: their bundles are cancelled everywhere before placing again.
        self._unsure: set[bytes] = set()
        self._cond = threading.Condition()
        self._groups: dict[bytes, _Group] = {}
        # The PENDING ones (removed groups stay in _groups, so do not scan it).
        self._pending: dict[bytes, _Group] = {}
        self._names: dict[tuple[str, str], bytes] = {}
        self._versions = 0
        self._stubs: dict[str, rpc.Stub] = {}
        self._stopped = False
        self._wake = threading.Event()
        # Removed groups whose bundles are still to be cancelled: (pg_id, node ids).
        self._to_cancel: _Cancels = []
        self._cancel_wake = threading.Event()
        threading.Thread(target=self._loop, daemon=True, name="ember-pg").start()
        threading.Thread(target=self._cancel_loop, daemon=True, name="ember-pg-cancel").start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._cancel_wake.set()

    def restore(self, stored: list[StoredGroup]) -> None:
        """Take back the groups a previous control service stored (at start).

        CREATED groups keep their bundles (the nodes still hold them); PENDING
        ones are placed again once any bundles a half-done placement left
        prepared are cancelled.
        """
        with self._cond:
            for row in stored:
                group = self._groups[row.spec.pg_id] = _Group(row.spec)
                group.state, group.nodes, group.version = row.state, list(row.nodes), row.version
                group.error = row.error
                self._versions = max(self._versions, row.version)
                if row.state != "REMOVED" and row.spec.name:
                    self._names[(row.spec.namespace, row.spec.name)] = row.spec.pg_id
                if row.state == "PENDING":
                    self._unsure.add(row.spec.pg_id)
                    self._pending[row.spec.pg_id] = group
        self._wake.set()

    # ------------------------------------------------------------ RPC bodies
    def create(self, spec: pb.PlacementGroupSpec) -> pb.PlacementGroupInfo:
        with self._cond:
            known = self._groups.get(spec.pg_id)
            if known is not None:
                # A retried request (the reply was lost to a restart): same group.
                return self._info(known)
            if spec.name:
                existing = self._names.get((spec.namespace, spec.name))
                if existing is not None:
                    return pb.PlacementGroupInfo(found=False, error=(
                        f"a placement group named {spec.name!r} already exists in namespace "
                        f"{spec.namespace!r}: pick another name or remove it first"))
                self._names[(spec.namespace, spec.name)] = spec.pg_id
            group = self._groups[spec.pg_id] = self._pending[spec.pg_id] = _Group(spec)
            self._bump(group)
            info = self._info(group)
        self._wake.set()
        return info

    def get(self, request: pb.PlacementGroupRequest) -> pb.PlacementGroupInfo:
        deadline = time.monotonic() + min(max(request.timeout, 0.0), MAX_POLL_SECONDS)
        with self._cond:
            while True:
                pg_id = request.pg_id or self._names.get((request.namespace, request.name))
                group = self._groups.get(pg_id) if pg_id else None
                if group is None:
                    return pb.PlacementGroupInfo(found=False)
                if group.version > request.after_version or time.monotonic() >= deadline:
                    return self._info(group)
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def remove(self, pg_id: bytes) -> None:
        with self._cond:
            group = self._groups.get(pg_id)
            if group is None or group.state == "REMOVED":
                return
            self._mark_removed(group)
            # As in Ray, removal answers once recorded; the nodes give the bundles
            # back just after (a node round trip per group would double its cost).
            self._to_cancel.append((pg_id, set(group.nodes)))
        self._cancel_wake.set()

    def owner_died(self, worker_id: str) -> None:
        with self._cond:
            doomed = [g for g in self._groups.values() if g.state != "REMOVED"
                      and not g.spec.detached and g.spec.owner_worker_id == worker_id]
        for group in doomed:
            self.remove(group.spec.pg_id)

    def owner_node_died(self, node_id: str) -> None:
        """Non-detached groups whose owner ran on a dead node go with it."""
        with self._cond:
            doomed = [g for g in self._groups.values() if g.state != "REMOVED"
                      and not g.spec.detached and node_id
                      and g.spec.owner_node_id == node_id]
        for group in doomed:
            self.remove(group.spec.pg_id)

    def list(self) -> pb.PlacementGroupList:
        with self._cond:
            return pb.PlacementGroupList(groups=[self._info(g) for g in self._groups.values()])

    # ------------------------------------------------------------ placement
    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(RETRY_SECONDS)
            self._wake.clear()
            with self._cond:
                pending = list(self._pending.values())
            if pending:
                try:
                    self._place_round(pending)
                except Exception:  # noqa: BLE001 - retried on the next round
                    pass

    def _place_round(self, pending: _Groups) -> None:
        """Place every pending group over one view of the free resources.

        Groups that land on one node are reserved there together, in one
        PrepareBundles call (prepare and commit) per node; a group spread over
        several nodes goes through the two phases on its own.
        """
        live = {n.node_id: n for n in self._nodes() if n.alive}
        available = {nid: dict(n.available) for nid, n in live.items()}
        single: dict[str, _Batch] = {}
        for group in pending:
            try:
                per_node = self._plan(group, live, available)
            except Exception:  # noqa: BLE001 - retried on the next round
                continue
            if per_node is None:
                continue
            if len(per_node) == 1:
                [(node_id, bundles)] = per_node.items()
                single.setdefault(node_id, []).append((group, bundles))
            else:
                try:
                    self._reserve(group, live, per_node)
                except Exception:  # noqa: BLE001 - retried on the next round
                    pass
        for node_id, groups in single.items():
            self._reserve_on_one_node(live[node_id], groups)

    def _plan(self, group: _Group, live: dict[str, pb.NodeInfo],
              available: dict[str, dict[str, float]]) -> _PerNode | None:
        """Bundles per node for ``group``, taken out of ``available``; None: none fits now."""
        spec = group.spec
        if spec.pg_id in self._unsure:
            self._cancel(spec.pg_id, set(live))
            self._unsure.discard(spec.pg_id)
        bundles = [dict(b.resources) for b in spec.bundles]
        allowed = [None if not b.label_selector else
                   {nid for nid, n in live.items()
                    if cluster_policy.labels_match(dict(b.label_selector), dict(n.labels))}
                   for b in spec.bundles]
        chosen = pg_policy.place(bundles, spec.strategy, available, allowed,
                                 spec.soft_target_node_id)
        if chosen is None:
            totals = {nid: dict(n.total) for nid, n in live.items()}
            if pg_policy.place(bundles, spec.strategy, totals, allowed) is None:
                with self._cond:
                    group.error = (f"no set of live nodes can ever hold these bundles with "
                                   f"{spec.strategy}; it stays pending until nodes join")
            return None
        per_node: _PerNode = {}
        for bundle, node_id in zip(spec.bundles, chosen):
            per_node.setdefault(node_id, []).append(
                pb.Bundle(index=bundle.index, resources=bundle.resources, node_id=node_id))
            free = available[node_id]
            for key, amount in bundle.resources.items():
                free[key] = free.get(key, 0.0) - amount
        return per_node

    def _reserve_on_one_node(self, node: pb.NodeInfo,
                             groups: _Batch) -> None:
        """Prepare and commit each group (all its bundles on ``node``) in one call."""
        request = pb.BundleRequest(batch=[
            pb.BundleRequest(pg_id=g.spec.pg_id, bundles=bundles, commit=True)
            for g, bundles in groups])
        reply = self._call(node, "PrepareBundles", request)
        for i, (group, _) in enumerate(groups):
            if reply is None or i >= len(reply.batch):
                # No answer: it may have reserved anyway, so undo before retrying.
                self._cancel(group.spec.pg_id, {node.node_id})
            elif reply.batch[i].ok:
                self._created(group, [node.node_id] * len(group.spec.bundles))

    def _reserve(self, group: _Group, live: dict[str, pb.NodeInfo],
                 per_node: _PerNode) -> None:
        """The two phases for a group over several nodes."""
        spec = group.spec
        prepared: set[str] = set()
        ok = True
        for node_id, node_bundles in per_node.items():
            # Asked counts as prepared for cleanup: a reply lost to a timeout may
            # hide a reservation that did happen.
            prepared.add(node_id)
            reply = self._call(live[node_id], "PrepareBundles",
                               pb.BundleRequest(pg_id=spec.pg_id, bundles=node_bundles))
            if reply is None or not reply.ok:
                ok = False
                break
        with self._cond:
            still_wanted = group.state == "PENDING"
        if not ok or not still_wanted:
            self._cancel(spec.pg_id, prepared)
            return
        for node_id in per_node:
            self._call(live[node_id], "CommitBundles", pb.BundleRequest(pg_id=spec.pg_id))
        nodes = {b.index: node_id for node_id, bs in per_node.items() for b in bs}
        self._created(group, [nodes[b.index] for b in spec.bundles])

    def _created(self, group: _Group, nodes: _NodeIds) -> None:
        """Bundles reserved on ``nodes``: CREATED, unless removed meanwhile (then undo)."""
        with self._cond:
            removed = group.state != "PENDING"
            if not removed:
                group.state = "CREATED"
                self._pending.pop(group.spec.pg_id, None)
                group.nodes = nodes
                group.error = ""
                self._bump(group)
        if removed:
            self._cancel(group.spec.pg_id, set(nodes))

    def _cancel_loop(self) -> None:
        while not self._stopped:
            self._cancel_wake.wait()
            self._cancel_wake.clear()
            with self._cond:
                batch, self._to_cancel = self._to_cancel, []
            per_node: dict[str, _Ids] = {}
            for pg_id, node_ids in batch:
                for node_id in node_ids:
                    per_node.setdefault(node_id, []).append(pg_id)
            live = {n.node_id: n for n in self._nodes() if n.alive}
            for node_id, pg_ids in per_node.items():
                if node_id in live:     # a dead node gave its bundles back anyway
                    self._call(live[node_id], "CancelBundles", pb.BundleRequest(
                        batch=[pb.BundleRequest(pg_id=pg_id) for pg_id in pg_ids]))
            if batch:
                self._wake.set()    # freed resources: pending groups may fit now

    def _cancel(self, pg_id: bytes, node_ids: set[str]) -> None:
        live = {n.node_id: n for n in self._nodes() if n.alive}
        for node_id in node_ids:
            if node_id in live:
                self._call(live[node_id], "CancelBundles", pb.BundleRequest(pg_id=pg_id))

    def _call(self, node: pb.NodeInfo, method: str, request: Any) -> Any:
        address = f"{node.ip}:{node.port}"
        stub = self._stubs.get(address)
        if stub is None:
            stub = self._stubs[address] = rpc.Stub(rpc.channel(address), pbg.NodeManagerStub,
                                                   self._token)
        try:
            reply = getattr(stub, method)(request, timeout=30)
        except grpc.RpcError:
            return None
        if reply.node.total and self._on_resources is not None:
            self._on_resources(reply.node)
        return reply

    # ------------------------------------------------------------ state
    def _mark_removed(self, group: _Group) -> None:
        group.state = "REMOVED"
        self._pending.pop(group.spec.pg_id, None)
        spec = group.spec
        if spec.name and self._names.get((spec.namespace, spec.name)) == spec.pg_id:
            del self._names[(spec.namespace, spec.name)]
        self._bump(group)

    def _bump(self, group: _Group) -> None:
        self._versions += 1
        group.version = self._versions
        self._store.save_group(group.spec, group.state, group.nodes, group.version,
                               group.error)
        self._cond.notify_all()

    @staticmethod
    def _info(group: _Group) -> pb.PlacementGroupInfo:
        spec = group.spec
        bundles = [pb.Bundle(index=b.index, resources=b.resources,
                             node_id=group.nodes[i] if i < len(group.nodes) else "")
                   for i, b in enumerate(spec.bundles)]
        return pb.PlacementGroupInfo(
            pg_id=spec.pg_id, name=spec.name, namespace=spec.namespace, strategy=spec.strategy,
            state=group.state, bundles=bundles, version=group.version, found=True,
            error=group.error, detached=spec.detached)

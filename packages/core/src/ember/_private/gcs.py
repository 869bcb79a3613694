"""The control service: cluster membership, function registry, KV and actors.

One per cluster, on the head. Actor RPCs are delegated to actor_manager.py. State lives in memory and is written through to a
SQLite file in the session directory (gcs_store.py) so a restarted control
service can reload it. Functions are stored in the KV under the ``fn`` namespace
by content hash.

After a restart (state was loaded), clients get a grace period
(EMBER_GCS_RESTART_GRACE_S, 30 s) to come back before anything is declared
dead: nodes that were alive have that long plus the usual heartbeat timeout,
and drivers that were connected have that long to re-open their WatchDriver
stream, else their non-detached actors and groups go as if they had exited.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Iterable

from .gcs_store import GcsStore
from .protos import ember_pb2 as pb

logger = logging.getLogger("ember")
from .protos import ember_pb2_grpc as pbg


class KVStore:
    """A namespaced byte KV, written through to the control service's store."""

    def __init__(self, store: GcsStore, data: dict[tuple[str, bytes], bytes] | None = None
                 ) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, bytes], bytes] = dict(data or {})
        self._store = store

    def put(self, ns: str, key: bytes, value: bytes, overwrite: bool) -> bool:
        with self._lock:
            exists = (ns, key) in self._data
            if exists and not overwrite:
                return False
            self._data[(ns, key)] = value
            self._store.kv_put(ns, key, value)
            return not exists

    def get(self, ns: str, key: bytes) -> bytes | None:
        with self._lock:
            return self._data.get((ns, key))

    def delete(self, ns: str, key: bytes) -> bool:
        with self._lock:
            found = self._data.pop((ns, key), None) is not None
            if found:
                self._store.kv_delete(ns, key)
            return found

    def keys(self, ns: str, prefix: bytes) -> list[bytes]:
        with self._lock:
            return [k for (n, k) in self._data if n == ns and k.startswith(prefix)]

    def close(self) -> None:
        self._store.close()


class ControlService(pbg.ControlServiceServicer):
    def __init__(self, db_path: str | None, token: str = "") -> None:
        from .actor_manager import ActorManager

        self.store = GcsStore(db_path)
        snapshot = self.store.load()
        self.kv = KVStore(self.store, snapshot.kv)
        self._lock = threading.Lock()
        self._nodes: dict[str, pb.NodeInfo] = {n.node_id: n for n in snapshot.nodes}
        self._token = token
        self._nm_stubs: dict = {}
        self.actors = ActorManager(token, self.node_list, self.store)
        from .placement_group_manager import PlacementGroupManager
        self.placement_groups = PlacementGroupManager(token, self.node_list, self.store,
                                                      self.note_resources)
        from .state_service import StateService
        self.state = StateService()   # served next to this service (gcs_main.py)
        stored = self.kv.get("meta", b"job_counter")
        self._job_counter = int(stored) if stored else 0
        self._last_seen: dict[str, float] = {}
        self._stopped = threading.Event()
        # How long a node may go without a heartbeat before it is declared dead.
        self.node_timeout = float(os.environ.get("EMBER_NODE_TIMEOUT_S", "10"))
        self.restart_grace = float(os.environ.get("EMBER_GCS_RESTART_GRACE_S", "30"))
        # Drivers connected to the previous control service, by worker id: the
        # time by which they must have re-opened their WatchDriver stream.
        self._awaited_drivers: dict[str, float] = {}
        self._driver_streams: dict[str, int] = {}     # worker id -> open streams
        self.restored = not snapshot.empty
        if self.restored:
            self._restore(snapshot)
        threading.Thread(target=self._monitor_nodes, daemon=True, name="ember-node-monitor").start()

    def stop(self) -> None:
        """Stop background work and close the store (the process is about to exit)."""
        self._stopped.set()
        self.actors.stop()
        self.placement_groups.stop()
        self.store.close()

    def _restore(self, snapshot) -> None:
        """Carry on from a previous control service's state (see the module docstring)."""
        deadline = time.monotonic() + self.restart_grace
        for node_id, node in self._nodes.items():
            if node.alive:
                # Heartbeats start again once node managers reconnect; until
                # then the last one counts as heard at the end of the grace.
                self._last_seen[node_id] = deadline
        self.actors.restore(snapshot.actors)
        self.placement_groups.restore(snapshot.groups)
        for driver in snapshot.drivers:
            if driver.connected:
                self._awaited_drivers[driver.worker_id] = deadline
        logger.warning("control service restarted: reloaded %d node(s), %d actor(s), %d "
                       "placement group(s), %d KV entries; waiting up to %g s for %d "
                       "driver(s) to reconnect", len(snapshot.nodes), len(snapshot.actors),
                       len(snapshot.groups), len(snapshot.kv), self.restart_grace,
                       len(self._awaited_drivers))

    def RegisterNode(self, request: pb.NodeInfo, context) -> pb.Empty:
        with self._lock:
            node = pb.NodeInfo()
            node.CopyFrom(request)
            node.alive = True
            self._nodes[request.node_id] = node
            self._last_seen[request.node_id] = time.monotonic()
            self.store.put_node(node)
        return pb.Empty()

    def UpdateNode(self, request: pb.NodeInfo, context) -> pb.Empty:
        """A node's resources, and its heartbeat (alive=False: it is leaving).

        An unknown node (this control service lost its state) is told NOT_FOUND
        and registers again.
        """
        import grpc
        with self._lock:
            node = self._nodes.get(request.node_id)
            if node is None and request.alive:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"node {request.node_id} is not registered: register it first")
            if node is None or not node.alive:
                return pb.Empty()  # a dead node stays dead; it must register anew
            node.available.clear()
            node.available.update(request.available)
            if request.total:
                node.total.clear()
                node.total.update(request.total)
            self._last_seen[request.node_id] = time.monotonic()
            leaving = not request.alive
        if leaving:
            self._node_died(request.node_id, "it shut down")
        return pb.Empty()

    def note_resources(self, info: pb.NodeInfo) -> None:
        """Record a live node's resources as a bundle reply reported them (no heartbeat)."""
        with self._lock:
            node = self._nodes.get(info.node_id)
            if node is None or not node.alive or not info.total:
                return
            node.available.clear()
            node.available.update(info.available)
            node.total.clear()
            node.total.update(info.total)

    def _monitor_nodes(self) -> None:
        """Declare nodes dead when their heartbeats stop (node managers send one a second)."""
        while not self._stopped.wait(min(1.0, self.node_timeout / 4)):
            now = time.monotonic()
            with self._lock:
                silent = [nid for nid, node in self._nodes.items() if node.alive
                          and now - self._last_seen.get(nid, now) > self.node_timeout]
            for node_id in silent:
                self._node_died(node_id, f"no heartbeat for {self.node_timeout:g} s")
            with self._lock:
                gone = [wid for wid, deadline in self._awaited_drivers.items()
                        if now > deadline and not self._driver_streams.get(wid)]
                for worker_id in gone:
                    del self._awaited_drivers[worker_id]
            for worker_id in gone:
                logger.warning("driver %s did not reconnect after the control service "
                               "restarted: stopping its actors", worker_id[:12])
                self._driver_gone(worker_id, 0)

    def _node_died(self, node_id: str, reason: str) -> None:
        with self._lock:
            node = self._nodes.get(node_id)
            if node is None or not node.alive:
                return
            node.alive = False
            node.available.clear()
            self.store.put_node(node)
        logger.warning("node %s is dead: %s", node_id[:12], reason)
        self.actors.node_died(node_id)
        self.placement_groups.owner_node_died(node_id)
        self._broadcast_death("", node_id, dead_node_id=node_id)

    def GetNodes(self, request: pb.Empty, context) -> pb.NodeList:
        with self._lock:
            return pb.NodeList(nodes=list(self._nodes.values()))

    def KVPut(self, request: pb.KVRequest, context) -> pb.KVReply:
        return pb.KVReply(added=self.kv.put(request.ns, request.key, request.value, request.overwrite))

    def KVGet(self, request: pb.KVRequest, context) -> pb.KVReply:
        value = self.kv.get(request.ns, request.key)
        return pb.KVReply(found=value is not None, value=value or b"")

    def KVDel(self, request: pb.KVRequest, context) -> pb.KVReply:
        return pb.KVReply(found=self.kv.delete(request.ns, request.key))

    def KVKeys(self, request: pb.KVRequest, context) -> pb.KVReply:
        return pb.KVReply(keys=self.kv.keys(request.ns, request.key))

    def NextJobId(self, request: pb.Empty, context) -> pb.JobReply:
        with self._lock:
            self._job_counter += 1
            self.kv.put("meta", b"job_counter", str(self._job_counter).encode(), True)
            return pb.JobReply(job_id=self._job_counter)

    # ------------------------------------------------------------ actors
    def CreateActor(self, request: pb.ActorSpec, context) -> pb.CreateActorReply:
        return self.actors.create(request)

    def GetActor(self, request: pb.GetActorRequest, context) -> pb.ActorInfo:
        return self.actors.get(request)

    def KillActor(self, request: pb.KillActorRequest, context) -> pb.Empty:
        self.actors.kill(request)
        return pb.Empty()

    def ListActors(self, request: pb.Empty, context) -> pb.ActorList:
        return self.actors.list()

    def ReportWorkerDeath(self, request: pb.WorkerDeath, context) -> pb.Empty:
        self.state.worker_died(request)
        self.actors.worker_died(request)
        self.placement_groups.owner_died(request.worker_id)
        self._broadcast_death(request.worker_id, request.node_id)
        return pb.Empty()

    def _broadcast_death(self, worker_id: str, reporter_node_id: str,
                         dead_node_id: str = "") -> None:
        """Leases a dead process (or every process of a dead node) held on other
        nodes must be released there too."""
        from . import rpc
        nodes = [n for n in self.node_list() if n.alive and n.node_id != reporter_node_id]
        if not nodes:
            return
        request = pb.WorkerDeath(worker_id=worker_id, node_id=dead_node_id)

        def send() -> None:
            for node in nodes:
                address = f"{node.ip}:{node.port}"
                stub = self._nm_stubs.get(address)
                if stub is None:
                    stub = self._nm_stubs[address] = rpc.Stub(
                        rpc.channel(address), pbg.NodeManagerStub, self._token)
                try:
                    stub.ReleaseOwner(request, timeout=10)
                except Exception:  # noqa: BLE001 - that node is gone or going
                    pass

        threading.Thread(target=send, daemon=True, name="ember-death-broadcast").start()

    # ------------------------------------------------------------ placement groups
    def CreatePlacementGroup(self, request: pb.PlacementGroupSpec, context
                             ) -> pb.PlacementGroupInfo:
        return self.placement_groups.create(request)

    def GetPlacementGroup(self, request: pb.PlacementGroupRequest, context
                          ) -> pb.PlacementGroupInfo:
        return self.placement_groups.get(request)

    def RemovePlacementGroup(self, request: pb.PlacementGroupRequest, context) -> pb.Empty:
        self.placement_groups.remove(request.pg_id)
        return pb.Empty()

    def ApplyPlacementGroupOps(self, request: pb.PlacementGroupOps, context
                               ) -> pb.PlacementGroupOpResults:
        results = []
        for op in request.ops:
            if op.WhichOneof("op") == "create":
                results.append(self.placement_groups.create(op.create))
            else:
                self.placement_groups.remove(op.remove)
                results.append(pb.PlacementGroupInfo(pg_id=op.remove, found=True))
        return pb.PlacementGroupOpResults(results=results)

    def ListPlacementGroups(self, request: pb.Empty, context) -> pb.PlacementGroupList:
        return self.placement_groups.list()

    def WatchDriver(self, request: pb.DriverInfo, context):
        worker_id = request.worker_id
        with self._lock:
            self._driver_streams[worker_id] = self._driver_streams.get(worker_id, 0) + 1
            self._awaited_drivers.pop(worker_id, None)
        self.store.put_driver(worker_id, request.job_id, True)
        self.state.driver_started(request)
        gone = threading.Event()
        if not context.add_callback(gone.set):
            gone.set()
        gone.wait()
        with self._lock:
            left = self._driver_streams[worker_id] = self._driver_streams[worker_id] - 1
            if not left:
                del self._driver_streams[worker_id]
        if not left:
            self.state.driver_ended(request)
            self._driver_gone(worker_id, request.job_id)
        return
        yield  # pragma: no cover - a generator that never yields: the stream stays open

    def _driver_gone(self, worker_id: str, job_id: int) -> None:
        self.store.put_driver(worker_id, job_id, False)
        self.actors.owner_died(worker_id)
        self.placement_groups.owner_died(worker_id)
        self._broadcast_death(worker_id, "")

    def node_list(self) -> Iterable[pb.NodeInfo]:
        with self._lock:
            return list(self._nodes.values())

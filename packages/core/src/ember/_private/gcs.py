"""The control service: cluster membership, function registry, KV and actors.

One per cluster, on the head. Actor RPCs are delegated to actor_manager.py. State lives in memory and is written through to a
SQLite file in the session directory so a restarted control service can reload
it. Functions are stored in the KV under the ``fn`` namespace by content hash.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Iterable

from .protos import ember_pb2 as pb

logger = logging.getLogger("ember")
from .protos import ember_pb2_grpc as pbg


class KVStore:
    """A namespaced byte KV persisted in SQLite (write-through)."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, bytes], bytes] = {}
        self._db = None
        if path:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS kv (ns TEXT, key BLOB, value BLOB, PRIMARY KEY (ns, key))")
            for ns, key, value in self._db.execute("SELECT ns, key, value FROM kv"):
                self._data[(ns, bytes(key))] = bytes(value)

    def put(self, ns: str, key: bytes, value: bytes, overwrite: bool) -> bool:
        with self._lock:
            exists = (ns, key) in self._data
            if exists and not overwrite:
                return False
            self._data[(ns, key)] = value
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))
            return not exists

    def get(self, ns: str, key: bytes) -> bytes | None:
        with self._lock:
            return self._data.get((ns, key))

    def delete(self, ns: str, key: bytes) -> bool:
        with self._lock:
            found = self._data.pop((ns, key), None) is not None
            if found and self._db is not None:
                self._db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
            return found

    def keys(self, ns: str, prefix: bytes) -> list[bytes]:
        with self._lock:
            return [k for (n, k) in self._data if n == ns and k.startswith(prefix)]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class ControlService(pbg.ControlServiceServicer):
    def __init__(self, db_path: str | None, token: str = "") -> None:
        from .actor_manager import ActorManager

        self.kv = KVStore(db_path)
        self._lock = threading.Lock()
        self._nodes: dict[str, pb.NodeInfo] = {}
        self._token = token
        self._nm_stubs: dict = {}
        self.actors = ActorManager(token, self.node_list)
        from .placement_group_manager import PlacementGroupManager
        self.placement_groups = PlacementGroupManager(token, self.node_list)
        stored = self.kv.get("meta", b"job_counter")
        self._job_counter = int(stored) if stored else 0
        self._last_seen: dict[str, float] = {}
        self._stopped = threading.Event()
        # How long a node may go without a heartbeat before it is declared dead.
        self.node_timeout = float(os.environ.get("EMBER_NODE_TIMEOUT_S", "10"))
        threading.Thread(target=self._monitor_nodes, daemon=True, name="ember-node-monitor").start()

    def RegisterNode(self, request: pb.NodeInfo, context) -> pb.Empty:
        with self._lock:
            node = pb.NodeInfo()
            node.CopyFrom(request)
            node.alive = True
            self._nodes[request.node_id] = node
            self._last_seen[request.node_id] = time.monotonic()
        return pb.Empty()

    def UpdateNode(self, request: pb.NodeInfo, context) -> pb.Empty:
        """A node's resources, and its heartbeat (alive=False: it is leaving)."""
        with self._lock:
            node = self._nodes.get(request.node_id)
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

    def _monitor_nodes(self) -> None:
        """Declare nodes dead when their heartbeats stop (node managers send one a second)."""
        while not self._stopped.wait(min(1.0, self.node_timeout / 4)):
            now = time.monotonic()
            with self._lock:
                silent = [nid for nid, node in self._nodes.items() if node.alive
                          and now - self._last_seen.get(nid, now) > self.node_timeout]
            for node_id in silent:
                self._node_died(node_id, f"no heartbeat for {self.node_timeout:g} s")

    def _node_died(self, node_id: str, reason: str) -> None:
        with self._lock:
            node = self._nodes.get(node_id)
            if node is None or not node.alive:
                return
            node.alive = False
            node.available.clear()
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

    def ListPlacementGroups(self, request: pb.Empty, context) -> pb.PlacementGroupList:
        return self.placement_groups.list()

    def WatchDriver(self, request: pb.DriverInfo, context):
        gone = threading.Event()
        if not context.add_callback(gone.set):
            gone.set()
        gone.wait()
        self.actors.owner_died(request.worker_id)
        self.placement_groups.owner_died(request.worker_id)
        self._broadcast_death(request.worker_id, "")
        return
        yield  # pragma: no cover - a generator that never yields: the stream stays open

    def node_list(self) -> Iterable[pb.NodeInfo]:
        with self._lock:
            return list(self._nodes.values())

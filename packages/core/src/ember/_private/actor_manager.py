"""The control service's actor manager: the I/O around actor_directory.py.

It places actors (asks a node manager for a worker lease, then runs the
constructor on that worker with the StartActor RPC), answers lookups by id or
name (long-polling on a version number so callers learn of state changes
without polling), and stops workers when actors die. Placement happens here
rather than in the creating process so that restarts and detached actors do not
depend on the creator being alive.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import grpc

from . import rpc
from .actor_directory import (ALIVE, DEAD, ActorDirectory, ActorRecord, NameTaken, Place,
                              StopWorker)
from .gcs_store import GcsStore
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg

logger = logging.getLogger("ember")

# Longest a GetActor long-poll holds a server thread before answering "no change".
MAX_POLL_SECONDS = 5.0
# How often placement re-checks the cluster when no node can take the actor yet.
RETRY_PLACEMENT_SECONDS = 0.5


class ActorManager:
    def __init__(self, token: str, nodes: Callable[[], Iterable[pb.NodeInfo]],
                 store: GcsStore | None = None) -> None:
        self._token = token
        self._nodes = nodes
        self.directory = ActorDirectory()
        # Every change is written through before the lock is released, so what a
        # caller has seen is what a restarted control service reloads.
        self._store = store or GcsStore(None)
        self._stored: set[bytes] = set()       # actors whose spec is in the store
        self._cond = threading.Condition()
        self._stubs: dict[tuple[str, Any], rpc.Stub] = {}
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ember-actors")
        # Stops get their own threads: placements can occupy the whole pool while
        # they wait for resources that only those stops would free.
        self._stop_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ember-stops")
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._stop_pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ plumbing
    def _stub(self, address: str, kind: Any) -> rpc.Stub:
        key = (address, kind)
        stub = self._stubs.get(key)
        if stub is None:
            stub = self._stubs[key] = rpc.Stub(rpc.channel(address), kind, self._token)
        return stub

    def restore(self, records: list[ActorRecord]) -> None:
        """Take back the actors a previous control service stored (at start)."""
        with self._cond:
            actions = self.directory.restore(records)
            self._stored.update(r.actor_id for r in records)
            self._apply(actions)

    def _persist(self) -> None:
        """Write the records the last event changed (self._cond held)."""
        changed = self.directory.changed
        if not changed:
            return
        rows = []
        for actor_id in changed:
            record = self.directory.get(actor_id)
            if record is not None:
                rows.append((record, actor_id not in self._stored))
                self._stored.add(actor_id)
        changed.clear()
        self._store.save_actors(rows)

    def _apply(self, actions: list) -> None:
        """Carry out directory actions; called with self._cond held."""
        self._persist()
        for action in actions:
            if isinstance(action, Place):
                self._pool.submit(self._place, action.actor_id, action.attempt)
            elif isinstance(action, StopWorker):
                self._stop_pool.submit(self._stop_worker, action)
        self._cond.notify_all()

    def _event(self, fn: Callable[[], list]) -> None:
        with self._cond:
            self._apply(fn())

    def _node_address(self, node_id: str) -> str | None:
        for node in self._nodes():
            if node.node_id == node_id:
                return f"{node.ip}:{node.port}"
        return None

    def _stop_worker(self, action: StopWorker) -> None:
        address = self._node_address(action.node_id)
        if address is None or not action.lease_id:
            return
        try:
            # Idempotent: a return whose reply was lost is simply sent again.
            rpc.call_with_retry(self._stub(address, pbg.NodeManagerStub).ReturnWorkerLease,
                                pb.ReturnLease(lease_id=action.lease_id, kill_worker=True),
                                timeout=10)
        except grpc.RpcError:
            pass  # the node is gone, and the worker with it

    # ------------------------------------------------------------ placement
    def _choose_node(self, spec: pb.ActorSpec) -> pb.NodeInfo | None:
        need = dict(spec.placement_resources) or dict(spec.resources)
        alive = [n for n in self._nodes() if n.alive]

        def fits(avail: Any) -> bool:
            return all(avail.get(k, 0.0) >= v - 1e-9 for k, v in need.items())

        # Prefer the creator's node, then any node with room now, then any node
        # that could ever hold it (its lease request waits there).
        for group in ([n for n in alive if n.node_id == spec.owner.node_id and fits(n.available)],
                      [n for n in alive if fits(n.available)],
                      [n for n in alive if fits(n.total)]):
            if group:
                return group[0]
        return None

    def _current(self, actor_id: bytes, attempt: int) -> ActorRecord | None:
        with self._cond:
            record = self.directory.get(actor_id)
            if record is None or record.attempt != attempt or record.state == DEAD:
                return None
            return record

    def _place(self, actor_id: bytes, attempt: int) -> None:
        warned = False
        while not self._stopped:
            record = self._current(actor_id, attempt)
            if record is None:
                return
            spec: pb.ActorSpec = record.spec
            node = self._choose_node(spec)
            if node is None:
                if not warned:
                    warned = True
                    logger.warning("no node can host actor %s %s yet", spec.class_name,
                                   dict(spec.placement_resources))
                time.sleep(RETRY_PLACEMENT_SECONDS)
                continue
            nm = self._stub(f"{node.ip}:{node.port}", pbg.NodeManagerStub)
            request = pb.LeaseRequest(
                resources=spec.resources, placement_resources=spec.placement_resources,
                owner_worker_id=spec.owner.worker_id, runtime_env_hash=spec.runtime_env_hash,
                runtime_env=spec.runtime_env,
                name=f"actor {spec.class_name}", for_actor=True, hints=spec.hints,
                # One id per placement attempt: a resend after a lost reply gets
                # the lease already granted instead of leaking it.
                request_id=f"actor:{actor_id.hex()}:{attempt}",
                no_retries=spec.max_restarts == 0)
            node_id = node.node_id
            try:
                reply = rpc.call_with_retry(nm.RequestWorkerLease, request, timeout=30)
                if reply.spillback.port:
                    # That node manager knows a better node: ask it, once.
                    node_id = reply.spillback.node_id
                    nm = self._stub(f"{reply.spillback.ip}:{reply.spillback.port}",
                                    pbg.NodeManagerStub)
                    request.spilled = True
                    reply = rpc.call_with_retry(nm.RequestWorkerLease, request, timeout=30)
            except grpc.RpcError:
                time.sleep(RETRY_PLACEMENT_SECONDS)
                continue
            if not reply.granted:
                if reply.fatal:
                    cause = (f"its runtime_env could not be set up "
                             f"(RuntimeEnvSetupError): {reply.error}"
                             if reply.runtime_env_failed else
                             f"it cannot be placed: {reply.error}")
                    self._event(lambda: self.directory.creation_failed(
                        actor_id, attempt, _runtime_env_error(reply), cause))
                    return
                if reply.error:
                    time.sleep(RETRY_PLACEMENT_SECONDS)
                continue
            self._start_on_worker(actor_id, attempt, node_id, reply)
            return

    def _start_on_worker(self, actor_id: bytes, attempt: int, node_id: str,
                         lease: pb.LeaseReply) -> None:
        worker_id = lease.worker.worker_id
        with self._cond:
            actions = self.directory.placed(actor_id, attempt, node_id=node_id,
                                            lease_id=lease.lease_id, worker_id=worker_id)
            self._apply(actions)
            if actions:
                return
            spec = self.directory.get(actor_id).spec  # type: ignore[union-attr]
        address = f"{lease.worker.ip}:{lease.worker.port}"
        try:
            reply = self._stub(address, pbg.CoreWorkerStub).StartActor(
                pb.StartActorRequest(spec=spec, gpu_ids=lease.gpu_ids), timeout=None)
        except grpc.RpcError as e:
            self._event(lambda: self.directory.worker_died(
                worker_id, f"its worker died while running __init__ ({e.code().name})"))
            return
        if reply.ok:
            self._event(lambda: self.directory.created(actor_id, attempt, address, reply.pid,
                                                       lease.worker.push_port))
        else:
            self._event(lambda: self.directory.creation_failed(
                actor_id, attempt, reply.error, "its constructor (__init__) raised an error"))

    # ------------------------------------------------------------ RPC bodies
    def create(self, spec: pb.ActorSpec) -> pb.CreateActorReply:
        with self._cond:
            try:
                record, created, actions = self.directory.register(
                    spec.actor_id, spec, name=spec.name, namespace=spec.namespace,
                    detached=spec.detached, owner_worker_id=spec.owner.worker_id,
                    max_restarts=spec.max_restarts, get_if_exists=spec.get_if_exists,
                    owner_node_id=spec.owner.node_id)
            except NameTaken as e:
                return pb.CreateActorReply(error=str(e))
            self._apply(actions)
            return pb.CreateActorReply(created=created, info=self._info(record))

    def get(self, request: pb.GetActorRequest) -> pb.ActorInfo:
        deadline = time.monotonic() + min(max(request.timeout, 0.0), MAX_POLL_SECONDS)
        with self._cond:
            while True:
                if request.actor_id:
                    record = self.directory.get(request.actor_id)
                else:
                    record = self.directory.by_name(request.name, request.namespace)
                if record is None:
                    return pb.ActorInfo(found=False)
                if record.version > request.after_version:
                    return self._info(record)
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._info(record)
                self._cond.wait(left)

    def kill(self, request: pb.KillActorRequest) -> None:
        """Kill synchronously: once the caller hears back, the worker is gone and
        its resources are free."""
        with self._cond:
            actions = self.directory.kill(request.actor_id, request.no_restart,
                                          request.reason or "killed by ember.kill()")
            stops = [a for a in actions if isinstance(a, StopWorker)]
            self._apply([a for a in actions if not isinstance(a, StopWorker)])
        for stop in stops:
            self._stop_worker(stop)

    def worker_died(self, request: pb.WorkerDeath) -> None:
        self._event(lambda: self.directory.worker_died(
            request.worker_id, request.reason or "its worker process died unexpectedly"))

    def node_died(self, node_id: str) -> None:
        self._event(lambda: self.directory.node_died(node_id))

    def owner_died(self, worker_id: str) -> None:
        self._event(lambda: self.directory.owner_died(worker_id))

    def list(self) -> pb.ActorList:
        with self._cond:
            return pb.ActorList(actors=[self._info(r) for r in self.directory.actors.values()])

    @staticmethod
    def _info(record: ActorRecord) -> pb.ActorInfo:
        spec: pb.ActorSpec = record.spec
        host, _, port = record.address.rpartition(":")
        return pb.ActorInfo(
            actor_id=record.actor_id, state=record.state,  # type: ignore[arg-type]
            address=pb.Address(ip=host, port=int(port) if port else 0,
                               worker_id=record.worker_id, node_id=record.node_id,
                               push_port=record.push_port),
            name=record.name, namespace=record.namespace, death_cause=record.death_cause,
            creation_error=record.creation_error, num_restarts=record.num_restarts,
            handle_meta=spec.handle_meta, version=record.version, class_name=spec.class_name,
            detached=record.detached, owner_worker_id=record.owner_worker_id,
            node_id=record.node_id, pid=record.pid, resources=spec.resources, found=True,
            job_id=spec.creation.job_id,
            placement_group_id=spec.creation.placement_group_id)


def _runtime_env_error(reply: pb.LeaseReply) -> bytes:
    """The RuntimeEnvSetupError an actor whose env failed dies of, serialized as a
    constructor error is, so its callers get the installer's message (b"": not one)."""
    if not reply.runtime_env_failed:
        return b""
    from . import serialization
    from ..exceptions import RuntimeEnvSetupError
    err = RuntimeEnvSetupError(f"the actor's runtime_env could not be set up: {reply.error}")
    return serialization.to_bytes(serialization.serialize(err))


__all__ = ["ActorManager", "ALIVE", "DEAD"]

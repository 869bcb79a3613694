"""The node manager's lease scheduler: a pure state machine.

It is fed events (a lease was requested, a worker registered or died, a lease
came back, a worker blocked in ``get``) and returns actions for the I/O layer
(node_manager.py) to carry out. No threads, sockets or processes here, so every
rule is unit-tested directly (tests/core/test_scheduler.py).

Policy: requests are served in arrival order, but a request that does not fit
now does not block a later one that does (no head-of-line blocking across
resource shapes). Resources are taken when a lease is granted, not while a
worker starts, so a slow worker start never strands CPUs.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from .resources import NodeResources, ResourceSet


@dataclass(frozen=True)
class Grant:
    request_id: int
    lease_id: bytes
    worker_id: str
    allocation: Any


@dataclass(frozen=True)
class StartWorker:
    env_hash: str


@dataclass(frozen=True)
class KillWorker:
    worker_id: str


@dataclass(frozen=True)
class Infeasible:
    request_id: int
    message: str


@dataclass
class _Request:
    request_id: int
    resources: ResourceSet
    env_hash: str
    name: str
    reported_infeasible: bool = False
    # Must be free to grant, but only `resources` is held (an actor with no
    # explicit resources needs 1 CPU to be placed and holds 0, as in Ray).
    placement: ResourceSet | None = None
    owner: str = ""                   # the worker (or driver) that asked; see owner_died
    owner_node: str = ""
    retriable: bool = True            # for the memory monitor: retriable work dies first
    for_actor: bool = False
    client_request_id: str = ""       # the caller's id: a retried request finds its lease

    @property
    def shape(self) -> ResourceSet:
        return self.placement if self.placement is not None else self.resources


@dataclass
class _Worker:
    worker_id: str
    env_hash: str
    lease_id: bytes | None = None
    idle_since: float = 0.0


@dataclass
class _Lease:
    lease_id: bytes
    worker_id: str
    allocation: Any
    blocked: bool = False
    owner: str = ""
    owner_node: str = ""
    retriable: bool = True
    for_actor: bool = False
    name: str = ""
    client_request_id: str = ""
    seq: int = 0                      # grant order: higher = started more recently


@dataclass
class LeaseScheduler:
    resources: NodeResources
    # How many workers may be starting at once; starting a Python process costs
    # a core for ~100 ms, so more than the core count only slows everyone.
    max_starting: int = 2
    # Idle workers beyond this many are reaped after idle_timeout seconds.
    soft_limit: int = 2
    idle_timeout: float = 10.0
    pending: dict[int, _Request] = field(default_factory=dict)
    workers: dict[str, _Worker] = field(default_factory=dict)
    leases: dict[bytes, _Lease] = field(default_factory=dict)
    starting: dict[str, int] = field(default_factory=dict)
    _lease_ids: Any = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------ events
    def request_lease(self, request_id: int, resources: dict[str, float], env_hash: str = "",
                      name: str = "", placement: dict[str, float] | None = None,
                      owner: str = "", owner_node: str = "", retriable: bool = True,
                      for_actor: bool = False, client_request_id: str = "") -> list:
        request = _Request(request_id, ResourceSet(resources), env_hash, name,
                           placement=ResourceSet(placement) if placement else None, owner=owner,
                           owner_node=owner_node if owner else "", retriable=retriable,
                           for_actor=for_actor, client_request_id=client_request_id)
        try:
            self.resources.can_ever_fit(request.shape)
        except ValueError as e:
            # A malformed request (e.g. GPU 1.5) must not poison the queue.
            return [Infeasible(request_id, f"invalid resource request {request.resources}: {e}")]
        self.pending[request_id] = request
        return self._schedule()

    def cancel_request(self, request_id: int) -> list:
        self.pending.pop(request_id, None)
        return []

    def worker_starting(self, env_hash: str) -> None:
        self.starting[env_hash] = self.starting.get(env_hash, 0) + 1

    def worker_registered(self, worker_id: str, env_hash: str, now: float) -> list:
        if self.starting.get(env_hash, 0) > 0:
            self.starting[env_hash] -= 1
        self.workers[worker_id] = _Worker(worker_id, env_hash, idle_since=now)
        return self._schedule()

    def worker_start_failed(self, env_hash: str) -> list:
        if self.starting.get(env_hash, 0) > 0:
            self.starting[env_hash] -= 1
        return self._schedule()

    def worker_died(self, worker_id: str) -> list:
        worker = self.workers.pop(worker_id, None)
        if worker is not None and worker.lease_id is not None:
            lease = self.leases.pop(worker.lease_id, None)
            if lease is not None:
                self.resources.release(lease.allocation)
        return self._schedule()

    def return_lease(self, lease_id: bytes, kill_worker: bool, now: float) -> list:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return []
        self.resources.release(lease.allocation)
        actions: list = []
        worker = self.workers.get(lease.worker_id)
        if worker is not None:
            worker.lease_id = None
            worker.idle_since = now
            if kill_worker:
                del self.workers[worker.worker_id]
                actions.append(KillWorker(worker.worker_id))
        return actions + self._schedule()

    def set_blocked(self, worker_id: str, blocked: bool) -> list:
        worker = self.workers.get(worker_id)
        if worker is None or worker.lease_id is None:
            return []
        lease = self.leases[worker.lease_id]
        if blocked == lease.blocked:
            return []
        lease.blocked = blocked
        if blocked:
            self.resources.lend_cpu(lease.allocation)
            return self._schedule()
        self.resources.reclaim_cpu(lease.allocation)
        return []

    def owner_died(self, owner: str, now: float) -> list:
        """The process holding leases here is gone: its leases (and their workers) go too,
        or their resources would stay taken forever."""
        actions: list = []
        for request_id in [r.request_id for r in self.pending.values() if r.owner == owner]:
            del self.pending[request_id]
        for lease in [lease for lease in self.leases.values() if owner and lease.owner == owner]:
            actions += self.return_lease(lease.lease_id, True, now)
        return actions

    def owner_node_died(self, node_id: str, now: float) -> list:
        """Every process on that node is gone: release the leases they held here."""
        actions: list = []
        for request_id in [r.request_id for r in self.pending.values()
                           if node_id and r.owner_node == node_id]:
            del self.pending[request_id]
        for lease in [lease for lease in self.leases.values()
                      if node_id and lease.owner_node == node_id]:
            actions += self.return_lease(lease.lease_id, True, now)
        return actions

    def resources_changed(self) -> list:
        """Capacity changed (bundles committed or removed): serve what fits now."""
        return self._schedule()

    def kill_leases_using(self, suffix: str, now: float) -> list:
        """Stop every lease holding a resource whose name ends with ``suffix``
        (a removed placement group's bundle resources)."""
        actions: list = []
        for lease in list(self.leases.values()):
            if any(name.endswith(suffix) for name in lease.allocation.resources):
                actions += self.return_lease(lease.lease_id, True, now)
        return actions

    def tick(self, now: float) -> list:
        """Reap workers idle for too long beyond the soft limit."""
        idle = sorted((w for w in self.workers.values() if w.lease_id is None),
                      key=lambda w: w.idle_since)
        excess = len(self.workers) - self.soft_limit
        actions: list = []
        for worker in idle:
            if excess <= 0:
                break
            if now - worker.idle_since >= self.idle_timeout:
                del self.workers[worker.worker_id]
                actions.append(KillWorker(worker.worker_id))
                excess -= 1
        return actions

    # ------------------------------------------------------------ queries
    def lease_for_request(self, client_request_id: str) -> _Lease | None:
        """The live lease granted to this caller's request id (a retry whose reply was lost)."""
        if not client_request_id:
            return None
        for lease in self.leases.values():
            if lease.client_request_id == client_request_id:
                return lease
        return None

    def pending_for_request(self, client_request_id: str) -> int | None:
        """The queued request carrying this caller's request id, if any."""
        if not client_request_id:
            return None
        for request in self.pending.values():
            if request.client_request_id == client_request_id:
                return request.request_id
        return None

    def lease_of(self, worker_id: str) -> bytes | None:
        worker = self.workers.get(worker_id)
        return worker.lease_id if worker else None

    def num_idle(self) -> int:
        return sum(1 for w in self.workers.values() if w.lease_id is None)

    def infeasible(self) -> list[str]:
        return [f"{r.name or 'task'} {r.shape}" for r in self.pending.values()
                if r.reported_infeasible]

    # ------------------------------------------------------------ policy
    def _schedule(self) -> list:
        actions: list = []
        waiting_for_worker: dict[str, int] = {}
        for req in list(self.pending.values()):
            if not self.resources.can_ever_fit(req.shape):
                if not req.reported_infeasible:
                    req.reported_infeasible = True
                    actions.append(Infeasible(req.request_id, (
                        f"{req.name or 'a task'} requests {req.shape} but this node has "
                        f"{self.resources.total} in total; it will wait until a node that fits "
                        "joins. Lower the request or add a node with these resources.")))
                continue
            worker = self._idle_worker(req.env_hash)
            if worker is None:
                waiting_for_worker[req.env_hash] = waiting_for_worker.get(req.env_hash, 0) + 1
                continue
            if req.placement is not None and not req.placement.fits_in(self.resources.available):
                continue
            allocation = self.resources.try_allocate(req.resources)
            if allocation is None:
                continue
            seq = next(self._lease_ids)
            lease_id = seq.to_bytes(8, "little")
            worker.lease_id = lease_id
            self.leases[lease_id] = _Lease(lease_id, worker.worker_id, allocation,
                                           owner=req.owner, owner_node=req.owner_node,
                                           retriable=req.retriable, for_actor=req.for_actor,
                                           name=req.name,
                                           client_request_id=req.client_request_id, seq=seq)
            del self.pending[req.request_id]
            actions.append(Grant(req.request_id, lease_id, worker.worker_id, allocation))
        # Start workers for requests that would fit now but have no idle worker.
        total_starting = sum(self.starting.values())
        for env_hash, count in waiting_for_worker.items():
            fits_now = sum(1 for r in self.pending.values()
                           if r.env_hash == env_hash and r.shape.fits_in(self.resources.available))
            need = min(count, fits_now) - self.starting.get(env_hash, 0)
            while need > 0 and total_starting < self.max_starting:
                self.worker_starting(env_hash)
                actions.append(StartWorker(env_hash))
                total_starting += 1
                need -= 1
        return actions

    def _idle_worker(self, env_hash: str) -> _Worker | None:
        for worker in self.workers.values():
            if worker.lease_id is None and worker.env_hash == env_hash:
                return worker
        return None

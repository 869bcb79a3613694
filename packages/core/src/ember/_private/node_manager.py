"""The node manager: worker pool, leases, object-store bookkeeping and logs.

One per node. Owners ask it for a worker lease (RequestWorkerLease blocks until
the scheduler grants one), then talk to the worker directly; the node manager
is not on the per-task path. Decisions live in scheduler.py; this module does
the I/O: starting and reaping worker processes, answering RPCs, tailing logs.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from . import cluster_policy, rpc
from .log_monitor import LogMonitor
from .log_rotation import RotationConfig
from .memory_monitor import Candidate, MemoryConfig, MemoryMonitor
from .metrics_export import MetricsService, NodeSnapshot
from .metrics_store import MetricsStore
from .node_bundles import BundlesMixin
from .object_transfer import ObjectTransfer
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg
from .resources import NodeResources
from .runtime_env import WORKER_RUNTIME_ENV_ENV
from .scheduler import Grant, Infeasible, KillWorker, LeaseScheduler, StartWorker
from .shm_store import ShmStore
from .object_spiller import spill_dir
from .store_manager import StoreFull, StoreManager
from .worker_fork import ForkedWorker, ForkServer

# A lease request that cannot be served yet is answered "not granted" after this
# long so the owner can re-check (and warn about infeasible requests) instead of
# a gRPC call hanging forever.
LEASE_POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 1.0
# How long a spillback counts against its target in this node's view: long
# enough for the target's own resource report to reach us.
SPILL_MEMORY_SECONDS = 0.5
# A view of the cluster younger than this is not refreshed before a decision.
VIEW_FRESH_SECONDS = 0.05
# An infeasible demand stays in GetStatus this long after its owner last asked.
INFEASIBLE_MEMORY_SECONDS = 5.0


@dataclass
class _PendingLease:
    event: threading.Event = field(default_factory=threading.Event)
    reply: pb.LeaseReply | None = None


@dataclass
class _WorkerProc:
    proc: subprocess.Popen | ForkedWorker
    env_hash: str
    worker_id: str = ""
    port: int = 0
    push_port: int = 0          # framed PushTasks listener (transports/framed.py)
    registered: bool = False
    started: float = field(default_factory=time.time)   # for the state API


class NodeManager(BundlesMixin, pbg.NodeManagerServicer):
    def __init__(self, *, node_id: str, session_dir: str, token: str, gcs_address: str,
                 total: dict[str, float], gpu_ids: list[str], ip: str = "127.0.0.1",
                 shm_dir: str, shm_prefix: str, worker_watch_fd: int,
                 labels: dict[str, str] | None = None,
                 fork_server: ForkServer | None = None) -> None:
        self.node_id = node_id
        self.session_dir = session_dir
        self.token = token
        self.gcs_address = gcs_address
        self.ip = ip
        self.port = 0
        self.total = total
        self.labels = dict(labels or {})
        self.shm_dir = shm_dir
        self.shm_prefix = shm_prefix
        self.store = ShmStore(shm_dir, shm_prefix)
        # Capacity, spilling to disk and restoring (store_manager.py).
        self.objects = StoreManager(self.store, spill_dir(session_dir, node_id),
                                    int(total.get("object_store_memory", 0)))
        self._worker_watch_fd = worker_watch_fd
        self._forks = fork_server     # default-environment workers start as forks of it
        num_cpus = int(total.get("CPU", 1))
        self.scheduler = LeaseScheduler(NodeResources(total, gpu_ids),
                                        max_starting=max(1, min(num_cpus, 4)),
                                        soft_limit=max(1, num_cpus))
        self._lock = threading.Lock()
        self._pending: dict[int, _PendingLease] = {}
        self._request_ids = iter(range(1, 1 << 62))
        self._procs: dict[int, _WorkerProc] = {}          # pid -> process
        self._by_worker: dict[str, _WorkerProc] = {}
        self._env_bytes: dict[str, bytes] = {}             # runtime_env hash -> its JSON
        self._stopping = threading.Event()
        self._log_dir = os.path.join(session_dir, "logs")
        self.logs = LogMonitor(self._log_dir, RotationConfig.from_env().session_max_bytes)
        # Metrics of this node's processes, served on metrics_export_port (set by main).
        self.metrics = MetricsService(MetricsStore(), self.metrics_snapshot)
        self.metrics_export_port = 0
        self._resources_dirty = threading.Event()
        # A GcsClient (rpc.Stub-like, retries through control-service restarts).
        self._gcs: Any = None
        # The cluster as last heard from the control service (this node's own
        # entry is replaced by live state when deciding).
        self._view: dict[str, cluster_policy.NodeView] = {}
        self._spread_turn = 0
        self._view_time = 0.0
        self._recent_spills: collections.deque = collections.deque()  # (when, node, shape)
        self._stubs: dict[tuple[str, type], rpc.Stub] = {}
        # Placement-group bundles held here: pg id -> index -> (allocation,
        # resources added once committed, or None while only prepared).
        self._bundles: dict[bytes, dict[int, list]] = {}
        self._infeasible: dict[str, float] = {}     # demand -> when last asked
        self.transfer = ObjectTransfer(self.store, node_id, self._stub_for,
                                       self.objects.copy_sealed, space=self.objects)
        self._oom_kills: dict[str, str] = {}    # worker id -> why the memory monitor killed it
        self.memory_monitor = MemoryMonitor(MemoryConfig.from_env(), f"{ip} ({node_id[:12]})",
                                            self._oom_candidates, self._oom_kill)
        self._runtime_envs: Any = None
        self._runtime_envs_lock = threading.Lock()     # callers may hold self._lock

    @property
    def runtime_envs(self) -> Any:
        """runtime_env setup per env hash, in threads off the lease path (runtime_env/).
        Made (and its setup code imported) when the first runtime_env reaches this
        node: a new node starts sooner without it."""
        with self._runtime_envs_lock:
            if self._runtime_envs is None:
                from .runtime_env.driver import kv_getter
                from .runtime_env.node_envs import NodeRuntimeEnvs
                self._runtime_envs = NodeRuntimeEnvs(
                    self.session_dir, lambda uri: kv_getter(self._gcs)(uri),
                    in_use=lambda: [wp.env_hash for wp in list(self._procs.values())
                                    if wp.env_hash],
                    node_id=self.node_id)
            return self._runtime_envs

    # ------------------------------------------------------------ lifecycle
    def start_background(self) -> None:
        threading.Thread(target=self._reaper_loop, name="ember-reaper", daemon=True).start()
        threading.Thread(target=self._gcs_sync_loop, name="ember-gcs-sync", daemon=True).start()
        self.logs.start()
        self.memory_monitor.start()
        self.objects.start()

    def prestart_workers(self, n: int) -> None:
        """Start ``n`` default workers, in the background: forking one waits for the
        fork server, which may still be importing, and the node's registration (what
        a starting cluster waits for) should not wait behind it. They count as
        starting at once, so a lease arriving meanwhile does not start more."""
        with self._lock:
            for _ in range(n):
                self.scheduler.worker_starting("")
        if n:
            threading.Thread(target=self._start_prestarted, args=(n,), daemon=True,
                             name="ember-prestart").start()

    def _start_prestarted(self, n: int) -> None:
        if self._forks is not None:
            self._forks.wait_ready()        # outside the lock: leases are served meanwhile
        for _ in range(n):
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._start_worker("")
                except Exception:  # noqa: BLE001 - to this node's log; a lease starts another
                    import traceback
                    traceback.print_exc()
                    self._apply(self.scheduler.worker_start_failed(""))

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.memory_monitor.stop()
        if self._gcs is not None:
            # Leaving on purpose: say so, rather than let the heartbeat time out.
            try:
                self._gcs.UpdateNode(pb.NodeInfo(node_id=self.node_id, alive=False), timeout=2,
                                     reconnect_s=0)
            except grpc.RpcError:
                pass
        with self._lock:
            procs = list(self._procs.values())
            for pending in self._pending.values():
                pending.reply = pb.LeaseReply(granted=False, error="the node is shutting down")
                pending.event.set()
        for wp in procs:
            _signal(wp.proc, signal.SIGKILL)
        for wp in procs:
            try:
                wp.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._forks is not None:
            self._forks.close()
        self.transfer.stop()
        self.store.cleanup_all()
        self.objects.stop()
        self.logs.stop()

    # ------------------------------------------------------------ worker processes
    def _start_worker(self, env_hash: str) -> None:
        env = dict(os.environ)
        python, cwd = sys.executable, None
        if env_hash:
            prepared = self.runtime_envs.prepared(env_hash)
            if prepared is None:    # evicted since its lease was queued: set up again
                self._apply(self.scheduler.worker_start_failed(env_hash))
                return
            env = prepared.process_env(env)
            env[WORKER_RUNTIME_ENV_ENV] = self._env_bytes.get(env_hash, b"").decode()
            python, cwd = prepared.python, prepared.cwd
        env[rpc.TOKEN_ENV] = self.token
        env["EMBER_NODE_MANAGER_ADDRESS"] = f"{self.ip}:{self.port}"
        env["EMBER_SESSION_DIR"] = self.session_dir
        env["EMBER_RUNTIME_ENV_HASH"] = env_hash
        env["EMBER_WATCH_FD"] = str(self._worker_watch_fd)
        env["EMBER_GCS_ADDRESS"] = self.gcs_address
        env["EMBER_NODE_ID"] = self.node_id
        env["EMBER_SHM_DIR"] = self.shm_dir
        env["EMBER_SHM_PREFIX"] = self.shm_prefix
        env["EMBER_NODE_IP"] = self.ip
        env.setdefault("PYTHONUNBUFFERED", "1")
        stamp = f"{time.time():.6f}".replace(".", "")
        out_path = os.path.join(self._log_dir, f"worker-{stamp}.out")
        err_path = os.path.join(self._log_dir, f"worker-{stamp}.err")
        proc: subprocess.Popen | ForkedWorker | None = None
        if not env_hash and self._forks is not None:
            proc = self._forks.spawn(env, out_path, err_path)    # None: start it with exec
        if proc is None:
            with open(out_path, "ab") as out, open(err_path, "ab") as err:
                proc = subprocess.Popen(
                    [python, "-m", "ember._private.worker_main"], cwd=cwd,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                    pass_fds=(self._worker_watch_fd,), start_new_session=True,
                )
        self._procs[proc.pid] = _WorkerProc(proc, env_hash)
        self.logs.add(proc.pid, out_path, err_path)

    def _apply(self, actions: list) -> None:
        """Carry out scheduler actions. Called with self._lock held."""
        for action in actions:
            if isinstance(action, Grant):
                pending = self._pending.pop(action.request_id, None)
                reply = self._lease_reply(action.lease_id, action.worker_id, action.allocation)
                if pending is None:
                    # The requester went away; give the lease straight back.
                    self._apply(self.scheduler.return_lease(action.lease_id, False, time.monotonic()))
                    continue
                pending.reply = reply
                pending.event.set()
            elif isinstance(action, StartWorker):
                self._start_worker(action.env_hash)
            elif isinstance(action, KillWorker):
                wp = self._by_worker.pop(action.worker_id, None)
                if wp is not None:
                    _signal(wp.proc, signal.SIGKILL)
            elif isinstance(action, Infeasible):
                pending = self._pending.get(action.request_id)
                request = self.scheduler.pending.get(action.request_id)
                if request is not None:
                    self._infeasible[f"{request.name or 'task'} {request.shape}"] = \
                        time.monotonic()
                if pending is not None:
                    pending.reply = pb.LeaseReply(granted=False, error=action.message)
                    pending.event.set()
        self._resources_dirty.set()

    def _lease_reply(self, lease_id: bytes, worker_id: str, allocation) -> pb.LeaseReply:
        wp = self._by_worker.get(worker_id)
        return pb.LeaseReply(
            granted=True, lease_id=lease_id,
            worker=pb.Address(node_id=self.node_id, ip=self.ip,
                              port=wp.port if wp else 0, worker_id=worker_id,
                              push_port=wp.push_port if wp else 0),
            gpu_ids=list(allocation.gpu_ids) or self._bundle_gpus(allocation),
            resources=allocation.resources.to_dict())

    def _reaper_loop(self) -> None:
        while not self._stopping.wait(0.05):
            try:
                self._reap_once()
            except Exception:  # noqa: BLE001 - the reaper must outlive any one bad event
                import traceback
                traceback.print_exc()

    def _reap_once(self) -> None:
        owners_gone: list[str] = []
        with self._lock:
            dead = [(pid, wp) for pid, wp in self._procs.items() if wp.proc.poll() is not None]
            for pid, wp in dead:
                del self._procs[pid]
                self.logs.finish(pid)
                if wp.registered:
                    self.metrics.process_gone(wp.worker_id)
                    self._by_worker.pop(wp.worker_id, None)
                    self.objects.writer_gone(wp.worker_id)
                    owners_gone.append(wp.worker_id)
                    self._apply(self.scheduler.worker_died(wp.worker_id))
                    self._apply(self.scheduler.owner_died(wp.worker_id, time.monotonic()))
                    self._report_death(wp)
                else:
                    self._apply(self.scheduler.worker_start_failed(wp.env_hash))
            self._apply(self.scheduler.tick(time.monotonic()))
        for worker_id in owners_gone:   # file deletes: outside the node's lock
            self.objects.owner_gone(worker_id)

    def _report_death(self, wp: _WorkerProc) -> None:
        """Tell the control service, which restarts or buries actors on (or owned by) it."""
        gcs = self._gcs
        if gcs is None or self._stopping.is_set():
            return
        code = wp.proc.returncode
        reason = (f"its worker process (pid {wp.proc.pid}) was killed by signal {-code}"
                  if code is not None and code < 0 else
                  f"its worker process (pid {wp.proc.pid}) exited with code {code}")
        if getattr(wp.proc, "status_lost", False):
            reason = (f"its worker process (pid {wp.proc.pid}) ended after the node's worker "
                      "fork server died, so its exit status is unknown")
        # Killed by the memory monitor: say so (it becomes the actor's death cause).
        reason = self._oom_kills.get(wp.worker_id) or reason
        request = pb.WorkerDeath(worker_id=wp.worker_id, node_id=self.node_id, reason=reason)

        def send() -> None:
            # A blocking call on its own thread: a dropped gRPC future would
            # cancel the call, and the reaper must not wait on the network.
            try:
                gcs.ReportWorkerDeath(request, timeout=10)
            except Exception:  # noqa: BLE001 - control service gone: the cluster is stopping
                pass

        threading.Thread(target=send, daemon=True, name="ember-report-death").start()

    def _stub_for(self, address: str, kind: type) -> rpc.Stub:
        key = (address, kind)
        stub = self._stubs.get(key)
        if stub is None:
            stub = self._stubs[key] = rpc.Stub(rpc.channel(address), kind, self.token)
        return stub

    def _gcs_sync_loop(self) -> None:
        last_view = last_push = 0.0
        while not self._stopping.is_set():
            dirty = self._resources_dirty.wait(0.2)
            if self._gcs is None:
                continue
            # An update doubles as the heartbeat: send one at least every second.
            if dirty or time.monotonic() - last_push >= HEARTBEAT_SECONDS:
                if dirty:
                    time.sleep(0.02)  # coalesce bursts of grants into one update
                    self._resources_dirty.clear()
                last_push = time.monotonic()
                self._push_resources()
            if time.monotonic() - last_view >= 0.2:
                last_view = time.monotonic()
                self._refresh_view()

    def _push_resources(self) -> None:
        if self._gcs is None:
            return
        with self._lock:
            info = self._resources_info()
        try:
            # The loop is the retry: never wait here for a control service restart.
            self._gcs.UpdateNode(info, timeout=5, reconnect_s=0)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                # A control service that lost its state: join it again.
                try:
                    self._gcs.RegisterNode(self.node_info(), timeout=5, reconnect_s=0)
                except grpc.RpcError:
                    pass

    def _resources_info(self) -> pb.NodeInfo:
        """This node's resources now, as UpdateNode sends them (call with the lock held)."""
        # Total changes too, as placement-group bundles come and go.
        return pb.NodeInfo(node_id=self.node_id, alive=True,
                           available=self.scheduler.resources.available.to_dict(),
                           total=self.scheduler.resources.total.to_dict())

    def _fits_now(self, request: pb.LeaseRequest) -> bool:
        shape = dict(request.placement_resources) or dict(request.resources)
        free = self.scheduler.resources.available
        return all(free.get(k, 0.0) >= v - 1e-9 for k, v in shape.items() if v > 0)

    def _refresh_view(self) -> None:
        try:
            # A stale view beats a lease request stuck behind a control service restart.
            nodes = self._gcs.GetNodes(pb.Empty(), timeout=5,
                                       reconnect_s=0).nodes
        except grpc.RpcError:
            return
        self._view_time = time.monotonic()
        self._view = {n.node_id: cluster_policy.NodeView(
            n.node_id, f"{n.ip}:{n.port}", dict(n.total), dict(n.available), dict(n.labels),
            n.alive) for n in nodes}

    def _decide(self, request: pb.LeaseRequest) -> cluster_policy.Decision:
        """Serve here, or send the owner to a better node (called with self._lock held)."""
        view = dict(self._view)
        now = time.monotonic()
        while self._recent_spills and now - self._recent_spills[0][0] > SPILL_MEMORY_SECONDS:
            self._recent_spills.popleft()
        for _, node_id, shape in self._recent_spills:
            node = view.get(node_id)
            if node is not None:
                view[node_id] = node = dataclasses.replace(node, available={
                    k: node.available.get(k, 0.0) - shape.get(k, 0.0)
                    for k in set(node.available) | set(shape)})
        # Requests already queued here (say, waiting for a worker to start) will
        # take their resources: count them as taken, or a burst of requests
        # would all see this node as idle and queue behind each other.
        free = self.scheduler.resources.available.to_dict()
        for queued in self.scheduler.pending.values():
            for name, value in queued.shape.items():
                free[name] = free.get(name, 0.0) - value
        view[self.node_id] = cluster_policy.NodeView(
            self.node_id, f"{self.ip}:{self.port}", self.scheduler.resources.total.to_dict(),
            free, self.labels, True)
        hints = request.hints
        ask = cluster_policy.Ask(
            shape=dict(request.placement_resources) or dict(request.resources),
            strategy=hints.strategy or "DEFAULT", affinity_node_id=hints.affinity_node_id,
            affinity_soft=hints.affinity_soft, label_selector=dict(hints.label_selector),
            spilled=request.spilled)
        if ask.strategy == "SPREAD":
            self._spread_turn += 1
        return cluster_policy.choose(ask, self.node_id, view, self._spread_turn)

    def node_info(self) -> pb.NodeInfo:
        return pb.NodeInfo(node_id=self.node_id, ip=self.ip, port=self.port, total=self.total,
                           available=self.scheduler.resources.available.to_dict(), alive=True,
                           shm_dir=self.shm_dir, shm_prefix=self.shm_prefix,
                           labels=self.labels, start_time=time.time(),
                           metrics_export_port=self.metrics_export_port)

    def metrics_snapshot(self) -> NodeSnapshot:
        """Resources, workers by state and the object store, for a metrics scrape."""
        with self._lock:
            sched = self.scheduler
            workers = {"STARTING": float(sum(sched.starting.values())), "IDLE": 0.0,
                       "LEASED": 0.0, "BLOCKED": 0.0, "ACTOR": 0.0}
            for w in sched.workers.values():
                lease = sched.leases.get(w.lease_id) if w.lease_id is not None else None
                state = ("IDLE" if lease is None else "ACTOR" if lease.for_actor
                         else "BLOCKED" if lease.blocked else "LEASED")
                workers[state] += 1
            snap = NodeSnapshot(resources_total=sched.resources.total.to_dict(),
                                resources_available=sched.resources.available.to_dict(),
                                workers=workers)
        st = self.objects.stats()
        snap.store_used, snap.store_capacity = st.used, st.capacity
        snap.store_num_objects = st.num_in_memory
        snap.spilled_bytes = st.spilled_bytes
        snap.total_spilled_bytes = st.total_spilled_bytes
        snap.total_restored_bytes = st.total_restored_bytes
        return snap

    # ------------------------------------------------------------ RPCs
    def RequestWorkerLease(self, request: pb.LeaseRequest, context) -> pb.LeaseReply:
        pending = _PendingLease()
        with self._lock:
            granted = self._retried_lease(request)
            if granted is not None:
                return granted
            decision = self._decide(request)
            # A refusal always looks again (a hard affinity to a node that joined
            # a moment ago must not fail on a view that predates it); queueing
            # here looks again unless the view is very fresh.
            refuse = decision.kind in ("infeasible", "fail")
            # A soft affinity to a node this view has never seen would quietly
            # fall back elsewhere: the node may have joined since the last look.
            wanted = request.hints.affinity_node_id
            refuse = refuse or bool(wanted and wanted not in self._view)
            stale = refuse or (decision.kind == "local" and not self._fits_now(request))
        if request.runtime_env_hash and not refuse and decision.kind != "spill":
            # Queue here only once its runtime_env is ready on this node.
            not_ready = self._runtime_env_gate(request)
            if not_ready is not None:
                return not_ready
        if refuse or (stale and time.monotonic() - self._view_time > VIEW_FRESH_SECONDS):
            # About to refuse it, call it infeasible, or queue it here behind busy workers:
            # the view may predate a node joining, a bundle being committed or
            # another node finishing its work. Look again first.
            self._refresh_view()
            with self._lock:
                decision = self._decide(request)
        with self._lock:
            if decision.kind == "spill":
                target = self._view.get(decision.node_id)
                if target is not None:
                    # Assume the work we send there takes its share until that node's
                    # own report can show it, so the next request of a burst goes
                    # elsewhere instead of queueing behind it.
                    shape = dict(request.placement_resources) or dict(request.resources)
                    self._recent_spills.append((time.monotonic(), target.node_id, shape))
                    ip, _, port = target.address.rpartition(":")
                    return pb.LeaseReply(granted=False, spillback=pb.Address(
                        node_id=target.node_id, ip=ip, port=int(port)))
            elif decision.kind == "fail":
                return pb.LeaseReply(granted=False, error=decision.message, fatal=True)
            elif decision.kind == "infeasible" and len(self._view) > 1:
                # Nothing in the cluster fits; with one node the local scheduler
                # words it.
                self._note_infeasible(request)
                return pb.LeaseReply(granted=False, error=(
                    f"{request.name or 'a task'}: {decision.message}. Lower the request or "
                    "add a node that fits."))
            request_id = next(self._request_ids)
            self._pending[request_id] = pending
            self._apply(self.scheduler.request_lease(
                request_id, dict(request.resources), request.runtime_env_hash, request.name,
                placement=dict(request.placement_resources) or None,
                # Actor leases belong to the control service, not the creator.
                owner="" if request.for_actor else request.owner_worker_id,
                owner_node=request.owner_node_id, retriable=not request.no_retries,
                for_actor=request.for_actor, client_request_id=request.request_id))
        if not pending.event.wait(LEASE_POLL_SECONDS) or pending.reply is None:
            with self._lock:
                if pending.reply is None:
                    self._pending.pop(request_id, None)
                    self.scheduler.cancel_request(request_id)
                    return pb.LeaseReply(granted=False)
        if not pending.reply.granted:
            with self._lock:
                self._pending.pop(request_id, None)
                self.scheduler.cancel_request(request_id)
        return pending.reply

    def _runtime_env_gate(self, request: pb.LeaseRequest) -> pb.LeaseReply | None:
        """None when the request's runtime_env is set up here; else the reply: "not
        yet" (the owner asks again; setup goes on in a thread) or its failure."""
        env_hash = request.runtime_env_hash
        self._env_bytes.setdefault(env_hash, request.runtime_env)
        status, detail = self.runtime_envs.ensure(env_hash, request.runtime_env,
                                                  LEASE_POLL_SECONDS)
        if status == "ready":
            return None
        if status == "pending":
            return pb.LeaseReply(granted=False)
        return pb.LeaseReply(granted=False, error=str(detail), fatal=True,
                             runtime_env_failed=True)

    def _retried_lease(self, request: pb.LeaseRequest) -> pb.LeaseReply | None:
        """A request id seen before is a retry whose reply was lost (lock held): answer
        with the lease already granted to it, never a second one; a copy still
        queued is dropped (its caller gave up on it) and this one takes its place."""
        lease = self.scheduler.lease_for_request(request.request_id)
        if lease is not None:
            return self._lease_reply(lease.lease_id, lease.worker_id, lease.allocation)
        prior = self.scheduler.pending_for_request(request.request_id)
        if prior is not None:
            self.scheduler.cancel_request(prior)
            stale = self._pending.pop(prior, None)
            if stale is not None:
                stale.reply = pb.LeaseReply(granted=False)
                stale.event.set()
        return None

    def ReturnWorkerLease(self, request: pb.ReturnLease, context) -> pb.Empty:
        with self._lock:
            self._apply(self.scheduler.return_lease(request.lease_id, request.kill_worker,
                                                    time.monotonic()))
        return pb.Empty()

    def RegisterWorker(self, request: pb.RegisterWorkerRequest, context) -> pb.RegisterWorkerReply:
        with self._lock:
            wp = self._procs.get(request.pid)
            if wp is not None and not self._stopping.is_set():
                wp.worker_id = request.worker_id
                wp.port = request.port
                wp.push_port = request.push_port
                wp.registered = True
                self._by_worker[request.worker_id] = wp
                self._apply(self.scheduler.worker_registered(
                    request.worker_id, request.runtime_env_hash, time.monotonic()))
        return pb.RegisterWorkerReply(node_id=self.node_id, shm_dir=self.shm_dir,
                                      shm_prefix=self.shm_prefix, gcs_address=self.gcs_address)

    def SetBlocked(self, request: pb.BlockedRequest, context) -> pb.Empty:
        with self._lock:
            self._apply(self.scheduler.set_blocked(request.worker_id, request.blocked))
        return pb.Empty()

    def CreateObject(self, request: pb.CreateObjectRequest, context) -> pb.CreateObjectReply:
        """Room for an object a local process is about to write (spilling others first)."""
        try:
            credit = self.objects.create(request.object_id, request.size, request.worker_id)
        except StoreFull as e:
            return pb.CreateObjectReply(ok=False, error=str(e))
        return pb.CreateObjectReply(ok=True, credit=credit)

    def ObjectsSealed(self, request: pb.ObjectsRequest, context) -> pb.Empty:
        self.objects.sealed([(o.object_id, o.size) for o in request.objects], request.worker_id,
                            [(o.owner_worker_id, o.owner_node_id) for o in request.objects])
        return pb.Empty()

    def FreeObjects(self, request: pb.ObjectsRequest, context) -> pb.Empty:
        self.objects.free([obj.object_id for obj in request.objects])
        return pb.Empty()

    def KillWorker(self, request: pb.KillWorkerRequest, context) -> pb.Empty:
        with self._lock:
            wp = self._by_worker.get(request.worker_id)
            if wp is not None:
                _signal(wp.proc, signal.SIGKILL if request.force else signal.SIGTERM)
        return pb.Empty()

    def SubscribeLogs(self, request: pb.Empty, context):
        q: queue.Queue = queue.Queue()
        self.logs.subscribe(q)
        context.add_callback(lambda: q.put(None))
        try:
            # An empty first batch says "subscribed": a driver waits for it, so the
            # output of its first task cannot be read here before anyone listens.
            yield pb.LogBatch()
            while True:
                lines = q.get()
                if lines is None or self._stopping.is_set():
                    return
                yield pb.LogBatch(lines=lines)
        finally:
            self.logs.unsubscribe(q)

    def _note_infeasible(self, request: pb.LeaseRequest) -> None:
        """Remember a demand nothing can hold, for `ember status` (lock held)."""
        shape = dict(request.placement_resources) or dict(request.resources)
        self._infeasible[f"{request.name or 'task'} {shape}"] = time.monotonic()

    def _recent_infeasible(self) -> list[str]:
        # Owners re-ask every second while the demand lasts; older ones are gone.
        now = time.monotonic()
        for key in [k for k, t in self._infeasible.items() if now - t > INFEASIBLE_MEMORY_SECONDS]:
            del self._infeasible[key]
        return sorted(self._infeasible)

    def ReleaseOwner(self, request: pb.WorkerDeath, context) -> pb.Empty:
        """A process elsewhere died (told by the control service): drop its leases here."""
        self.objects.owner_gone(request.worker_id, request.node_id)
        with self._lock:
            if request.worker_id:
                self.objects.writer_gone(request.worker_id)
                self._apply(self.scheduler.owner_died(request.worker_id, time.monotonic()))
            elif request.node_id:
                self._apply(self.scheduler.owner_node_died(request.node_id, time.monotonic()))
        return pb.Empty()

    def PullObject(self, request: pb.PullRequest, context) -> pb.PullReply:
        reply = self.transfer.pull(request)
        if reply.copied and request.owner.ip:
            self._tell_owner(request)
        return reply

    def _tell_owner(self, request: pb.PullRequest) -> None:
        """The owner frees every copy when the object goes: it must know of this one."""
        update = pb.LocationUpdate(object_id=request.object_id, location=pb.Address(
            node_id=self.node_id, ip=self.ip, port=self.port))
        stub = self._stub_for(request.owner.ip, pbg.CoreWorkerStub)
        try:
            stub.AddObjectLocation(update, timeout=10)
        except grpc.RpcError:
            pass  # the owner is gone; so is the object, and this copy goes at shutdown

    def ReadObject(self, request: pb.ReadRequest, context):
        return self.transfer.read(request)

    # ------------------------------------------------------------ memory monitor
    def _oom_candidates(self) -> list[Candidate]:
        with self._lock:
            return [Candidate(lease.worker_id, wp.proc.pid, lease.owner, lease.retriable,
                              lease.seq, lease.for_actor, lease.name)
                    for lease in self.scheduler.leases.values()
                    if (wp := self._by_worker.get(lease.worker_id)) is not None]

    def _oom_kill(self, victim: Candidate, message: str) -> None:
        with self._lock:
            self._oom_kills[victim.worker_id] = message
            while len(self._oom_kills) > 1000:
                del self._oom_kills[next(iter(self._oom_kills))]
            wp = self._by_worker.get(victim.worker_id)
            if wp is not None:
                _signal(wp.proc, signal.SIGKILL)

    def GetWorkerFailureCause(self, request: pb.WorkerFailureRequest, context
                              ) -> pb.WorkerFailureReply:
        with self._lock:
            message = self._oom_kills.get(request.worker_id, "")
        return pb.WorkerFailureReply(oom=bool(message), message=message)

    def GetStatus(self, request: pb.Empty, context) -> pb.NodeStatus:
        with self._lock:
            return pb.NodeStatus(
                node=self.node_info(), num_workers=len(self._procs),
                num_idle_workers=self.scheduler.num_idle(),
                pending_leases=len(self.scheduler.pending),
                infeasible=self._recent_infeasible(),
                workers=[pb.WorkerStatus(worker_id=wp.worker_id, pid=pid, port=wp.port,
                                         start_time=wp.started)
                         for pid, wp in self._procs.items()],
                **self.objects.status_fields())


def _signal(proc: subprocess.Popen | ForkedWorker, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except (ProcessLookupError, OSError):
        pass

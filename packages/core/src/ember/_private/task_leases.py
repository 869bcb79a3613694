"""An owner's worker leases: asking node managers for them, returning them.

Part of the task submitter (task_submitter.py inherits ``LeaseMixin``; the
mixin uses its lock, queues and timers): a lease is requested per scheduling
key while tasks wait (at most ``MAX_LEASE_REQUESTS_PER_KEY`` outstanding),
follows spillbacks to other nodes, is resent with the same request id when a
call or its reply is lost, and is returned once its worker has been idle for
``IDLE_LEASE_SECONDS``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

from . import rpc
from .protos import ember_pb2 as pb
from .transports import base as transports
from .transports.grpc_stream import merged_batches  # noqa: F401 - its old home

logger = logging.getLogger("ember")

IDLE_LEASE_SECONDS = 0.05
MAX_LEASE_REQUESTS_PER_KEY = 4
# Lease requests and returns whose call or reply was lost (UNAVAILABLE) are sent
# again this many times, with the same request id, before giving up.
LEASE_RPC_RETRIES = 5


class LeasedWorker:
    """A worker leased from a node manager, and the PushTasks stream to it."""

    def __init__(self, submitter: Any, key: tuple, reply: pb.LeaseReply,
                 nm_address: str) -> None:
        self.key = key
        self.nm_address = nm_address    # the node manager that granted the lease
        self.lease_id = reply.lease_id
        self.address = f"{reply.worker.ip}:{reply.worker.port}"
        self.worker_id = reply.worker.worker_id
        self.gpu_ids = list(reply.gpu_ids)
        self.in_flight: dict[bytes, Any] = {}   # task id -> PendingTask
        self.idle_since = time.monotonic()
        # When this worker last made progress (a result, or a push while idle):
        # only a worker that is visibly fast gets more tasks queued behind its
        # current one, so a long task never traps short ones behind it.
        self.last_progress = 0.0
        self.dead = False
        self.exiting = False
        # An idle-return check is scheduled: at most one per worker, so a
        # worker that goes idle after every task costs no timer wake-up each.
        self.return_check = False
        # The PushTasks stream (framed socket or gRPC, transports/base.py); the
        # reader thread connects, then settles the results that come back.
        self.call = transports.open_push(submitter.core, reply.worker)
        self._reader = threading.Thread(target=submitter._read_results, args=(self,),
                                        daemon=True, name="ember-results")
        self._reader.start()

    def send(self, batch: pb.TaskBatch) -> None:
        self.call.send(batch)

    def close(self) -> None:
        self.call.close()


class LeaseMixin:
    """Lease requests and returns of ``TaskSubmitter`` (see the module docstring)."""

    _lock: Any
    _queues: Any
    _workers: Any
    _lease_requests: Any
    _stopped: bool
    # Set up by TaskSubmitter.__init__; declared so the mixin type-checks alone.
    core: Any
    _lease_seq: Any
    _key_resources: dict[tuple, dict]
    _key_names: dict[tuple, str]
    _key_hints: dict[tuple, Any]
    _key_runtime_env: dict[tuple, bytes]
    _lease_futures: set
    _warned_infeasible: set[tuple]
    _schedule: Any
    _dispatch: Any
    _finish_with_exception: Any

    def _request_lease(self, key: tuple, nm_address: str = "", spilled: bool = False,
                       request_id: str = "", attempt: int = 0) -> None:
        """Ask a node manager (the local one, or one it redirected us to) for a worker.

        ``request_id`` names this one lease across resends: a resend after a lost
        reply gets the lease the node manager already granted, not a second one.
        """
        core = self.core
        request_id = request_id or f"{core.worker_id}:{next(self._lease_seq)}"
        request = pb.LeaseRequest(resources=self._key_resources[key],
                                  owner_worker_id=core.worker_id, runtime_env_hash=key[1],
                                  spilled=spilled, name=self._key_names.get(key, ""),
                                  owner_node_id=core.node_id, request_id=request_id,
                                  no_retries=len(key) > 3 and bool(key[3]),
                                  runtime_env=self._key_runtime_env.get(key, b""))
        hints = self._key_hints.get(key)
        if hints is not None:
            request.hints.CopyFrom(hints)
        nm_address = nm_address or core.node_manager_address
        try:
            stub = core.node_manager_stub(nm_address)
            fut = stub.RequestWorkerLease.future(request, timeout=60)
        except Exception as e:  # noqa: BLE001 - channel closed during shutdown
            self._lease_failed(key, e)
            return
        # gRPC cancels a call whose future is garbage-collected, and the
        # future's only other reference is a cycle through its callback: hold it.
        self._lease_futures.add(fut)
        fut.add_done_callback(
            lambda f: self._on_lease_reply(key, f, nm_address, spilled, request_id, attempt))

    def _on_lease_reply(self, key: tuple, fut: Any, nm_address: str, spilled: bool = False,
                        request_id: str = "", attempt: int = 0) -> None:
        self._lease_futures.discard(fut)
        try:
            reply = fut.result()
        except grpc.RpcError as e:
            if rpc.is_retryable(e) and attempt < LEASE_RPC_RETRIES and not self._stopped:
                # The request or its reply was lost: send the same request again
                # (same id), so a lease granted meanwhile is found, not leaked.
                self._schedule(rpc.backoff(attempt), lambda: self._resend_lease(
                    key, nm_address, spilled, request_id, attempt + 1))
                return
            if nm_address != self.core.node_manager_address:
                # The node we were sent to is gone: start over from the local node.
                with self._lock:
                    if not self._stopped:
                        self._request_lease(key)
                        return
            self._lease_failed(key, e)
            return
        with self._lock:
            if self._stopped:
                self._lease_requests[key] -= 1
                return
            if reply.spillback.port:
                # Redirected to a node with room: the request stays outstanding.
                self._request_lease(key, f"{reply.spillback.ip}:{reply.spillback.port}",
                                    spilled=True)
                return
            self._lease_requests[key] -= 1
            if reply.granted:
                try:
                    worker = LeasedWorker(self, key, reply, nm_address)
                except Exception as e:  # noqa: BLE001
                    self._lease_failed(key, e, counted=True)
                    return
                self._workers[key].append(worker)
            elif reply.error and reply.fatal:
                self._unschedulable(key, reply.error, reply.runtime_env_failed)
                return
            elif reply.error:
                if key not in self._warned_infeasible:
                    self._warned_infeasible.add(key)
                    logger.warning("Ember: %s", reply.error)
                    print(f"(ember) warning: {reply.error}", flush=True)
                # Ask again later: the request may become feasible when a node joins.
                self._lease_requests[key] += 1
                self._schedule(1.0, lambda: self._retry_lease(key))
                return
            self._dispatch(key)

    def _resend_lease(self, key: tuple, nm_address: str, spilled: bool, request_id: str,
                      attempt: int) -> None:
        with self._lock:
            if self._stopped:
                self._lease_requests[key] -= 1
                return
            self._request_lease(key, nm_address, spilled, request_id, attempt)

    def _retry_lease(self, key: tuple) -> None:
        with self._lock:
            if self._queues[key] and not self._stopped:
                self._request_lease(key)
            else:
                self._lease_requests[key] -= 1

    def _unschedulable(self, key: tuple, message: str, runtime_env: bool = False) -> None:
        """No node can ever run these tasks (e.g. hard affinity to a dead node), or
        their runtime_env failed to set up (a later submission tries again)."""
        from ..exceptions import RuntimeEnvSetupError, TaskUnschedulableError
        tasks = list(self._queues[key])
        self._queues[key].clear()
        for task in tasks:
            if runtime_env:
                self._finish_with_exception(task, RuntimeEnvSetupError(
                    f"{task.spec.name}: its runtime_env could not be set up: {message}"))
            else:
                self._finish_with_exception(task, TaskUnschedulableError(
                    f"{task.spec.name} cannot be scheduled: {message}"))

    def _lease_failed(self, key: tuple, error: Exception, counted: bool = False) -> None:
        from ..exceptions import EmberError
        with self._lock:
            if not counted:
                self._lease_requests[key] -= 1
            if self._stopped:
                return
            tasks = list(self._queues[key])
            self._queues[key].clear()
            for task in tasks:
                self._finish_with_exception(task, EmberError(
                    f"could not get a worker from the node manager ({error}); the cluster may "
                    "have shut down: call ember.init() again"))

    def _idle(self, worker: LeasedWorker, now: float) -> None:
        """The worker has nothing to run: return its lease if it stays idle
        ``IDLE_LEASE_SECONDS`` (back-to-back submissions reuse it). Lock held."""
        worker.idle_since = now
        if not worker.return_check:
            worker.return_check = True
            self._schedule(IDLE_LEASE_SECONDS, lambda: self._maybe_return(worker))

    def _maybe_return(self, worker: LeasedWorker) -> None:
        with self._lock:
            worker.return_check = False
            if worker.dead or worker.in_flight or self._queues[worker.key]:
                return      # busy again: its next idle moment schedules a new check
            idle = time.monotonic() - worker.idle_since
            if idle < IDLE_LEASE_SECONDS * 0.9:
                # Busy and idle again since this check was set: wait the rest.
                worker.return_check = True
                self._schedule(IDLE_LEASE_SECONDS - idle, lambda: self._maybe_return(worker))
                return
            self._release_worker(worker, kill=False)

    def _release_worker(self, worker: LeasedWorker, kill: bool) -> None:
        if worker.dead:
            return
        worker.dead = True
        if worker in self._workers[worker.key]:
            self._workers[worker.key].remove(worker)
        worker.close()
        self._return_lease(worker, kill)

    def _return_lease(self, worker: LeasedWorker, kill: bool, attempt: int = 0) -> None:
        core = self.core
        request = pb.ReturnLease(lease_id=worker.lease_id, kill_worker=kill)
        address = worker.nm_address

        def send() -> None:
            try:
                core.node_manager_stub(address).ReturnWorkerLease(request, timeout=10)
            except grpc.RpcError as e:
                # Returning is idempotent (lease ids are never reused): resend a
                # lost one, or the node keeps the resources taken for good.
                if rpc.is_retryable(e) and attempt < LEASE_RPC_RETRIES and not self._stopped:
                    self._schedule(rpc.backoff(attempt),
                                   lambda: self._return_lease(worker, kill, attempt + 1))

        core.notify(send)

    def _oom_cause(self, worker: LeasedWorker) -> str:
        """Why the worker died if its node's memory monitor killed it, else "" (as Ray,
        the owner asks the node manager after losing a worker)."""
        try:
            reply = rpc.call_with_retry(
                self.core.node_manager_stub(worker.nm_address).GetWorkerFailureCause,
                pb.WorkerFailureRequest(worker_id=worker.worker_id), timeout=5, attempts=3)
        except Exception:  # noqa: BLE001 - node gone: an ordinary crash, then
            return ""
        return reply.message if reply.oom else ""

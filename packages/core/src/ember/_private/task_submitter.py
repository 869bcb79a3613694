"""Owner-side task submission: dependency resolution, leases, pipelined push.

The life of a task, seen from its owner:

1. ``submit`` registers the return ids as pending, counts argument refs as
   "submitted" (so they stay alive) and waits for top-level ref arguments.
2. Once they are ready each becomes an inline value or a shared-memory id in
   the spec; a failed argument fails the task with the same error.
3. The task joins the queue of its scheduling key (resources + runtime env).
   The owner holds worker leases per key, asking the node manager for more
   while tasks wait; tasks are pushed to leased workers over one long-lived
   gRPC stream per worker, several in flight when tasks are short.
4. Results come back on the same stream; idle leases are returned after a
   short grace period so back-to-back submissions reuse the worker.

No per-task RPC to the node manager or the control service happens here.
Leases (requesting, following spillbacks, returning) are in task_leases.py.
"""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


from . import ids, serialization
from .object_ref import ObjectRef, ObjectRefGenerator
from .protos import ember_pb2 as pb
from .task_events import FAILED, PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER
from .task_leases import MAX_LEASE_REQUESTS_PER_KEY, LeasedWorker, LeaseMixin
from .timers import Timers

logger = logging.getLogger("ember")

MAX_PIPELINE_DEPTH = 16
# Tasks faster than this (mean) are pipelined several deep per worker; slower
# ones go one at a time so they spread across workers.
PIPELINE_BELOW_SECONDS = 0.002
PROGRESS_WINDOW_SECONDS = 0.01
# A task killed by the memory monitor waits this long before its first retry,
# doubling each time (as in Ray), so the node can recover first.
OOM_RETRY_DELAY_SECONDS = 1.0
OOM_RETRY_MAX_DELAY_SECONDS = 30.0


@dataclass
class PendingTask:
    # Few objects per task for the garbage collector to track: a task in flight lives
    # long enough to reach the old generation, and full collections scale with it.
    spec: pb.TaskSpec
    key: tuple
    arg_ids: Sequence[bytes]      # () when it has no ref arguments
    return_ids: tuple[bytes, ...]
    retries_left: int
    retry_exceptions: Any
    unresolved: int = 0
    state: str = "deps"           # deps -> queued -> pushed -> done
    worker: Any = None
    cancelled: bool = False
    force_cancel: bool = False
    sink: Any = None              # actor calls: where the task goes once resolved
    actor: Any = None             # actor calls: the caller-side actor state
    oom_retries: int = 0          # times the memory monitor killed it (sets the backoff)


@dataclass
class _GeneratorState:
    items: dict[int, ObjectRef] = field(default_factory=dict)
    total: int | None = None


class TaskSubmitter(LeaseMixin):
    def __init__(self, core: Any) -> None:
        self.core = core
        self._lock = threading.RLock()
        self._tasks: dict[bytes, PendingTask] = {}
        self._queues: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)
        self._workers: dict[tuple, list[LeasedWorker]] = collections.defaultdict(list)
        self._lease_requests: dict[tuple, int] = collections.defaultdict(int)
        self._key_resources: dict[tuple, dict] = {}
        self._key_hints: dict[tuple, pb.SchedulingHints] = {}
        self._key_runtime_env: dict[tuple, bytes] = {}    # key -> runtime_env lease bytes
        self._key_names: dict[tuple, str] = {}    # a task name per key, for messages
        self._exec_ema: dict[bytes, float] = {}   # function id -> mean run time
        self._warned_infeasible: set[tuple] = set()
        self._generators: dict[bytes, _GeneratorState] = {}
        self._lease_futures: set = set()
        self._gen_cond = threading.Condition(self._lock)
        self._lease_seq = itertools.count(1)
        self._stopped = False
        self._timers = Timers("ember-timers")
        self._schedule = self._timers.schedule

    # ------------------------------------------------------------ submission
    def submit(self, *, function_id: bytes, name: str, args: tuple, kwargs: dict,
               num_returns: int, resources: dict[str, float], max_retries: int,
               retry_exceptions: Any, max_calls: int, env_vars: dict[str, str],
               runtime_env_hash: str = "", hints: pb.SchedulingHints | None = None,
               placement: tuple[bytes, int, bool] | None = None, runtime_env: bytes = b""
               ) -> list[ObjectRef] | ObjectRefGenerator:
        spec = pb.TaskSpec(function_id=function_id, name=name, num_returns=num_returns,
                           max_calls=max_calls, env_vars=env_vars, resources=resources)
        if placement is not None:
            spec.placement_group_id = placement[0]
            spec.capture_child_tasks = placement[2]
        hint_key = hints.SerializeToString(deterministic=True) if hints is not None else b""
        # Retriability is part of the key: the node manager's memory monitor
        # kills work that cannot be retried last.
        key = (tuple(sorted(resources.items())), runtime_env_hash, hint_key, max_retries == 0)
        if hints is not None and key not in self._key_hints:
            with self._lock:
                self._key_hints[key] = hints
        if runtime_env_hash and key not in self._key_runtime_env:
            with self._lock:
                self._key_runtime_env[key] = runtime_env
        task, deps, refs = self.prepare(spec, args, kwargs, key, max_retries, retry_exceptions)
        self.start(task, deps)
        return refs

    def prepare(self, spec: pb.TaskSpec, args: tuple, kwargs: dict, key: tuple,
                max_retries: int, retry_exceptions: Any = False, sink: Any = None
                ) -> tuple[PendingTask, list, Any]:
        """Fill in ``spec``'s ids and arguments and register its returns.

        Returns (task, top-level ref arguments to resolve, what ``.remote()``
        returns). ``sink``, when given, receives the task once its arguments
        are resolved instead of the lease queue (actor calls use it).
        """
        core = self.core
        task_id = spec.task_id or ids.new_task_id()
        spec.task_id = task_id
        spec.job_id = core.job_id
        spec.owner.ip = core.address
        spec.owner.node_id = core.node_id
        spec.owner.worker_id = core.worker_id
        if kwargs:
            all_args: Any = (*args, *kwargs.values())
            spec.kwarg_names.extend(kwargs.keys())
        else:
            all_args = args
        deps: list[tuple[int, ObjectRef]] = []
        arg_ids: list[bytes] = []
        for i, value in enumerate(all_args):
            if isinstance(value, ObjectRef):
                deps.append((i, value))
                arg_ids.append(value._id)
                spec.args.add()
                continue
            ser = serialization.serialize(value)
            # Refs nested in an argument must outlive the task: count them as submitted.
            arg_ids.extend(r._id for r in ser.contained_refs)
            if ser.total_size > _inline_limit():
                # Large arguments are put once into shared memory, like ray.put.
                ref = core.put(value)
                deps.append((i, ref))
                arg_ids.append(ref._id)
                spec.args.add()
            else:
                spec.args.add(data=serialization.to_bytes(ser))
        num_returns = spec.num_returns
        streaming = num_returns == -1
        return_ids = () if streaming else tuple(ids.object_id_for(task_id, i + 1)
                                                for i in range(num_returns))
        for oid in return_ids:
            core.register_pending(oid)
        if arg_ids:
            with core._rc_lock:
                core.refs.add_submitted(arg_ids)
        task = PendingTask(spec, key, arg_ids or (), return_ids, max_retries, retry_exceptions,
                           unresolved=len(deps), sink=sink)
        refs: Any = [ObjectRef(oid, core.address) for oid in return_ids]
        with self._lock:
            self._tasks[task_id] = task
            if sink is None and key not in self._key_resources:
                # Same key, same resources (they are part of it): copied once.
                self._key_resources[key] = dict(spec.resources)
                self._key_names[key] = spec.name
            if streaming:
                self._generators[task_id] = _GeneratorState()
            parent = getattr(core.current, "task", None)
            if parent is not None:
                parent.children.append(task_id)
        core.task_events.submitted(spec, key, parent)
        core.recovery.on_submit(task, deps)     # lineage, to rebuild lost returns
        if streaming:
            refs = ObjectRefGenerator(task_id, core)
        return task, deps, refs

    def start(self, task: PendingTask, deps: list) -> None:
        """Resolve the task's ref arguments, then hand it on (queue or sink)."""
        if not deps:
            self._enqueue(task)
        else:
            for index, ref in deps:
                self._resolve_dep(task, index, ref)

    def _resolve_dep(self, task: PendingTask, index: int, ref: ObjectRef) -> None:
        core = self.core

        def done(data: bytes | None, in_shm: bool, is_error: bool, locations: Any = ()) -> None:
            with self._lock:
                if task.state != "deps":
                    return
                arg = task.spec.args[index]
                if is_error:
                    self._finish_with_error_bytes(task, data or b"")
                    return
                if in_shm:
                    arg.is_shm = True
                    arg.shm_object_id = ref._id
                    # Where copies are: a worker on another node pulls one.
                    arg.locations.extend(locations or [core.location])
                    # Whom to ask if no copy can be fetched (object_recovery.py).
                    arg.owner_address = ref._owner or core.address
                else:
                    arg.data = bytes(data or b"")
                task.unresolved -= 1
                ready = task.unresolved == 0
            if ready:
                self._enqueue(task)

        if ref._owner in ("", core.address):
            if not core.memory_store.on_ready(
                    ref._id, lambda e: done(e.data, e.in_shm, e.is_error, e.locations)):
                from ..exceptions import ObjectLostError
                err = ObjectLostError(ref.hex(), core.address,
                                      detail="it was freed before the task ran")
                done(serialization.to_bytes(serialization.serialize(err)), False, True)
            return

        def fetch() -> None:
            try:
                obj, _ = core._fetch_borrowed(ref, None)
                if obj.in_shm:
                    done(None, True, False, list(obj.locations))
                else:
                    done(obj.data, False, obj.is_error)
            except Exception as e:  # noqa: BLE001 - the error becomes the task's result
                done(serialization.to_bytes(serialization.serialize(e)), False, True)

        threading.Thread(target=fetch, daemon=True, name="ember-dep").start()

    def _enqueue(self, task: PendingTask) -> None:
        with self._lock:
            if task.state != "deps":
                return
            task.state = "queued"
            if task.sink is not None:
                task.sink(task)
                return
            self._queues[task.key].append(task)
            self.core.task_events.record(task.spec.task_id, task.spec.attempt_number,
                                         PENDING_NODE_ASSIGNMENT)
            self._dispatch(task.key)

    # ------------------------------------------------------------ dispatch
    def _dispatch(self, key: tuple) -> None:
        q = self._queues[key]
        workers = self._workers[key]
        batches: dict[LeasedWorker, list[pb.TaskSpec]] = {}
        now = time.monotonic()
        record = self.core.task_events.record
        while q:
            # Per function, not per key: a slow function sharing a resource shape
            # with a fast one must not be pipelined behind itself.
            depth = self._depth(q[0].spec.function_id)
            live = [w for w in workers if not w.dead and not w.exiting and (
                not w.in_flight or (len(w.in_flight) < depth
                                    and now - w.last_progress < PROGRESS_WINDOW_SECONDS))]
            if not live:
                break
            worker = min(live, key=lambda w: len(w.in_flight))
            task = q.popleft()
            if task.state != "queued":
                continue
            if not worker.in_flight:
                worker.last_progress = now
            task.state = "pushed"
            task.worker = worker
            worker.in_flight[task.spec.task_id] = task
            spec = task.spec
            record(spec.task_id, spec.attempt_number, SUBMITTED_TO_WORKER)
            if worker.gpu_ids:
                del spec.gpu_ids[:]
                spec.gpu_ids.extend(worker.gpu_ids)
            batches.setdefault(worker, []).append(spec)
        for worker, specs in batches.items():
            worker.send(pb.TaskBatch(tasks=specs))
        # Ask for more workers while tasks wait; a worker busy with a long task
        # does not count as capacity.
        wanted = min(len(q), MAX_LEASE_REQUESTS_PER_KEY)
        while self._lease_requests[key] < wanted:
            self._lease_requests[key] += 1
            self._request_lease(key)
        if not q:
            now = time.monotonic()
            for worker in workers:
                if not worker.in_flight:
                    self._idle(worker, now)

    def _depth(self, function_id: bytes) -> int:
        ema = self._exec_ema.get(function_id)
        if ema is None or ema > PIPELINE_BELOW_SECONDS:
            return 1
        return MAX_PIPELINE_DEPTH

    # ------------------------------------------------------------ results
    def _read_results(self, worker: LeasedWorker) -> None:
        for batch in worker.call:       # ends when the stream breaks or closes
            self._on_results(worker, batch.results)
        oom = self._oom_cause(worker) if worker.in_flight and not self._stopped else ""
        with self._lock:
            lost = list(worker.in_flight.values())
            worker.in_flight.clear()
            was_dead = worker.dead
            worker.dead = True
            if worker in self._workers[worker.key]:
                self._workers[worker.key].remove(worker)
            for task in lost:
                self._worker_lost(task, oom)
            if not was_dead and not self._stopped:
                self._return_lease(worker, kill=True)
            if not self._stopped:
                self._dispatch(worker.key)

    def _worker_lost(self, task: PendingTask, oom: str = "") -> None:
        from ..exceptions import OutOfMemoryError, TaskCancelledError, WorkerCrashedError
        if task.cancelled:
            self._finish_with_exception(task, TaskCancelledError(task.spec.task_id.hex()))
        elif oom and task.retries_left != 0 and not self._stopped:
            # Back off before retrying so the node's memory can recover (Ray: 1 s, doubling).
            task.retries_left -= 1
            self.core.task_events.retrying(task.spec, ("OUT_OF_MEMORY", oom))
            delay = min(OOM_RETRY_MAX_DELAY_SECONDS,
                        OOM_RETRY_DELAY_SECONDS * 2 ** task.oom_retries)
            task.oom_retries += 1
            task.state = "backoff"
            task.worker = None
            self._schedule(delay, lambda: self._end_backoff(task))
        elif oom:
            self._finish_with_exception(task, OutOfMemoryError(
                f"Task {task.spec.name} failed: {oom}. It was killed "
                f"{task.oom_retries + 1} time(s) and has no retries left (max_retries)."))
        elif task.retries_left != 0 and not self._stopped:
            task.retries_left -= 1
            self.core.task_events.retrying(task.spec, (
                "WORKER_DIED", f"the worker running {task.spec.name} died; retrying"))
            task.state = "queued"
            task.worker = None
            self._queues[task.key].append(task)
        else:
            self._finish_with_exception(task, WorkerCrashedError(
                f"the worker running {task.spec.name} died unexpectedly (crashed or was killed) "
                "and no retries are left: check the worker's log in the session's logs "
                "directory; raise max_retries to retry"))

    def _end_backoff(self, task: PendingTask) -> None:
        with self._lock:
            if task.state != "backoff" or self._stopped:
                return
            task.state = "queued"
            self._queues[task.key].append(task)
            self._dispatch(task.key)

    def _on_results(self, worker: LeasedWorker, results: Any) -> None:
        """One ResultBatch from a worker: settle every result under the lock, push
        the next tasks in one batch, then hand the returns over (outside it)."""
        done: list[tuple[PendingTask | None, pb.TaskResult]] = []
        with self._lock:
            for result in results:
                task = self._tasks.get(result.task_id)
                if result.generator_item:
                    self._on_generator_item(result)
                    continue
                worker.in_flight.pop(result.task_id, None)
                worker.last_progress = time.monotonic()
                if result.worker_exiting:
                    worker.exiting = True
                if task is not None:
                    fid = task.spec.function_id
                    ema = self._exec_ema.get(fid)
                    self._exec_ema[fid] = (result.exec_seconds if ema is None
                                           else 0.8 * ema + 0.2 * result.exec_seconds)
                if task is not None and self._should_retry(task, result):
                    task.retries_left -= 1
                    self.core.task_events.retrying(task.spec)
                    task.state = "queued"
                    self._queues[task.key].append(task)
                    continue
                if task is not None:
                    task.state = "done"
                    self._tasks.pop(result.task_id, None)
                if result.generator_done:
                    self._end_generator(result)
                done.append((task, result))
            if worker.exiting and not worker.in_flight:
                self._release_worker(worker, kill=True)
            # Retried tasks and those still queued go to the other workers.
            self._dispatch(worker.key)

        def send(batch: pb.TaskBatch) -> None:
            if not worker.dead:
                worker.send(batch)

        for task, result in done:
            if task is not None:
                self.core.recovery.on_finished(task)
            self._deliver_returns(task, result, send)

    def _deliver_returns(self, task: PendingTask | None, result: pb.TaskResult,
                         send: Callable[[pb.TaskBatch], None]) -> None:
        """Hand a finished call's returns to their refs (plain tasks and actor calls).

        Stores every return; if some hold refs, tells the worker through ``send``
        (which sends a TaskBatch unless the connection is dead) that it may drop
        the pins it keeps on them, now that this process borrows them; then
        drops the task's hold on its arguments. Called without the lock.
        """
        core = self.core
        pins = []
        for ret in result.returns:
            self._store_return(ret)
            if ret.contained:
                pins.append(result.task_id)
        if pins:
            send(pb.TaskBatch(release_pins=pins))
        if task is not None:
            core.task_events.finished(result.task_id, task.spec.attempt_number, result.returns)
            if task.arg_ids:
                core._run_rc(lambda: core.refs.remove_submitted(task.arg_ids))

    def _store_return(self, ret: pb.ReturnObject) -> None:
        core = self.core
        if ret.contained:
            # The value holds refs: become a borrower of each before the
            # worker drops its pins (it waits for release_pins).
            inner: list[ObjectRef] = [ObjectRef(c.object_id, c.owner.ip) for c in ret.contained]
            owners = {c.object_id: c.owner.ip for c in ret.contained}
            core.flush_borrows()
            core._run_rc(lambda: core.refs.set_inner(ret.object_id, tuple(owners), owners))
            del inner
        if not core.memory_store.set_ready(
                ret.object_id, data=None if ret.in_shm else ret.data, in_shm=ret.in_shm,
                is_error=ret.is_error, size=ret.size,
                node_id=ret.locations[0].node_id if ret.locations else "",
                locations=list(ret.locations)):
            core.recovery.on_refused_return(ret)    # a copy nobody would free

    def _should_retry(self, task: PendingTask, result: pb.TaskResult) -> bool:
        if task.retries_left == 0 or task.cancelled or not task.retry_exceptions:
            return False
        errors = [r for r in result.returns if r.is_error]
        if not errors:
            return False
        if task.retry_exceptions is True:
            return True
        try:
            err = serialization.deserialize(errors[0].data)
            cause = getattr(err, "cause", err)
            return isinstance(cause, tuple(task.retry_exceptions))
        except Exception:  # noqa: BLE001
            return False

    def _end_generator(self, result: pb.TaskResult) -> None:
        """A streaming call ended. Returns on the final message are an error that
        ended it before it could stream one (cancelled, actor gone, bad call):
        they become its last item, so iterating raises instead of ending quietly.
        Called with the lock held."""
        gen = self._generators.get(result.task_id)
        if gen is None:
            return
        total = result.num_generator_items
        for ret in result.returns:
            self.core.register_pending(ret.object_id)
            self._store_return(ret)
            gen.items[total] = ObjectRef(ret.object_id, self.core.address)
            total += 1
        gen.total = total
        self._gen_cond.notify_all()

    def _on_generator_item(self, result: pb.TaskResult) -> None:
        core = self.core
        gen = self._generators.get(result.task_id)
        for ret in result.returns:
            core.register_pending(ret.object_id)
            self._store_return(ret)
            if gen is not None:
                gen.items[result.generator_index] = ObjectRef(ret.object_id, core.address)
        self._gen_cond.notify_all()

    def next_generator_item(self, task_id: bytes, index: int, timeout: float | None):
        from ..exceptions import GetTimeoutError
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._gen_cond:
            while True:
                gen = self._generators.get(task_id)
                if gen is None:
                    return None
                if index in gen.items:
                    return gen.items.pop(index)
                if gen.total is not None and index >= gen.total:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise GetTimeoutError(f"no generator item within {timeout}s")
                self._gen_cond.wait(remaining)

    def generator_ready(self, task_id: bytes, index: int) -> bool:
        with self._lock:
            gen = self._generators.get(task_id)
            return gen is None or index in gen.items or (gen.total is not None
                                                         and index >= gen.total)

    def wait_generator_progress(self, timeout: float) -> None:
        """Block until some streaming call produces or ends (or ``timeout`` passes)."""
        with self._gen_cond:
            self._gen_cond.wait(timeout)

    def release_generator(self, task_id: bytes) -> None:
        with self._lock:
            self._generators.pop(task_id, None)

    # ------------------------------------------------------------ failure & cancel
    def _finish_with_exception(self, task: PendingTask, exc: BaseException) -> None:
        self._finish_with_error_bytes(task, serialization.to_bytes(serialization.serialize(exc)))

    def _finish_with_error_bytes(self, task: PendingTask, data: bytes) -> None:
        core = self.core
        task.state = "done"
        core.task_events.record(task.spec.task_id, task.spec.attempt_number, FAILED, data)
        self._tasks.pop(task.spec.task_id, None)
        if task.spec.num_returns == -1:
            gen = self._generators.get(task.spec.task_id)
            if gen is not None:
                oid = ids.object_id_for(task.spec.task_id, len(gen.items) + 1)
                core.register_pending(oid)
                core.memory_store.set_ready(oid, data=data, is_error=True, size=len(data))
                gen.items[len(gen.items)] = ObjectRef(oid, core.address)
                gen.total = len(gen.items)
                self._gen_cond.notify_all()
        for oid in task.return_ids:
            core.memory_store.set_ready(oid, data=data, is_error=True, size=len(data))
        core.notify(lambda: core._run_rc(lambda: core.refs.remove_submitted(task.arg_ids)))

    def cancel(self, object_id: bytes, force: bool, recursive: bool) -> None:
        from ..exceptions import TaskCancelledError
        task_id = ids.task_id_of(object_id)
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.state == "done":
                return
            task.cancelled = True
            if task.actor is not None:
                self.core.actors.cancel(task, force, recursive)
                return
            if task.state in ("deps", "queued", "backoff"):
                if task.state == "queued":
                    try:
                        self._queues[task.key].remove(task)
                    except ValueError:
                        pass
                self._finish_with_exception(task, TaskCancelledError(task_id.hex()))
                return
            worker = task.worker
        if worker is not None and not worker.dead:
            worker.send(pb.TaskBatch(cancels=[pb.CancelRequest(
                task_id=task_id, force=force, recursive=recursive)]))

    # ------------------------------------------------------------ timers
    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            workers = [w for ws in self._workers.values() for w in ws]
            for w in workers:
                w.dead = True
                w.close()
        self._timers.stop()


def _inline_limit() -> int:
    from .core_worker import INLINE_THRESHOLD
    return INLINE_THRESHOLD

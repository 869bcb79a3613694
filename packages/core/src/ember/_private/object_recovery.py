"""Rebuilding lost objects from lineage: the I/O around ``lineage.py``.

Who notices a loss: whoever needs an object and can fetch no copy of it.

- the owner, in ``ember.get`` (``owned_copy``);
- a borrower, in ``ember.get`` (``borrowed_copy``), and a worker loading a task
  argument (``arg_view``): they ask the owner again with ``GetObject(recover=True)``.

The owner then checks the object's holders against the control service's node
table: a holder is gone once its node is declared dead (no heartbeat for
``EMBER_NODE_TIMEOUT_S``). While some holder still looks alive the reader tries
again (a passing failure, or a death not declared yet). When none is, the
object is lost: the lineage table plans which tasks to re-run (the object's
task, after those of its lost or freed inputs); the owner makes their returns
pending again, re-registers freed inputs for the time their consumers need
them, and resubmits the tasks. Readers wait for the new value like any pending
object. If the plan fails (``put`` object, actor call, retries used up, lineage
evicted), the object becomes that error for every reader.

``EMBER_MAX_LINEAGE_BYTES`` bounds the lineage each owner keeps (default 1 GiB,
Ray's ``max_lineage_bytes``).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from . import ids, serialization
from .lineage import DEFAULT_MAX_LINEAGE_BYTES, Failure, LineageTable, ObjectStatus, Unrecoverable
from .object_ref import ObjectRef
from .protos import ember_pb2 as pb

logger = logging.getLogger("ember")

MAX_LINEAGE_ENV = "EMBER_MAX_LINEAGE_BYTES"
_ACTOR_REASON = ("objects returned by actor calls are not rebuilt, since re-running a "
                 "method would not replay the actor's state; keep a copy elsewhere, or "
                 "return it from a task")
_ACTOR_CALL_NAMES = 1 << 16
# Readers keep asking while the owner still sees a holder alive: the control
# service declares a silent node dead after EMBER_NODE_TIMEOUT_S.
_CONFIRM_MARGIN_S = 30.0


def max_lineage_bytes() -> int:
    """The lineage bound from ``EMBER_MAX_LINEAGE_BYTES`` (bytes; default 1 GiB).

    >>> os.environ["EMBER_MAX_LINEAGE_BYTES"] = "1000"; max_lineage_bytes()
    1000
    """
    raw = os.environ.get(MAX_LINEAGE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_LINEAGE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{MAX_LINEAGE_ENV}={raw!r} is not a byte count: set it to a "
                         "non-negative integer (e.g. 1073741824), or unset it")
    return value


def _confirm_seconds() -> float:
    try:
        timeout = float(os.environ.get("EMBER_NODE_TIMEOUT_S", "10"))
    except ValueError:
        timeout = 10.0
    return timeout + _CONFIRM_MARGIN_S


def _spec_size(spec: pb.TaskSpec) -> int:
    # What a kept spec costs, roughly: its inline arguments, the rest of the spec and
    # the Python objects around it. Not spec.ByteSize(): protobuf encodes the whole
    # spec to size it, ~4 ms for a sort's reduce task with 200 inline partitions.
    args = spec.args
    return 256 + len(spec.name) + 64 * len(args) + sum(len(arg.data) for arg in args)


class ObjectRecovery:
    """One per CoreWorker: records lineage and rebuilds lost objects it owns."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.table = LineageTable(max_lineage_bytes())
        self._lock = threading.Lock()
        # Actor calls' objects are never rebuilt; for the error that says so, their
        # names by task id, the newest _ACTOR_CALL_NAMES (a dict insert per call, not
        # a lineage record with its release: actor calls run at 10-20k/s). An
        # OrderedDict, not a dict: evicting a plain dict's oldest key with
        # next(iter(d)) walks every slot freed before it until the dict is rebuilt,
        # so once full each call cost more, up to 80 us (rate 21k -> 8k calls/s).
        self._actor_calls: OrderedDict[bytes, str] = OrderedDict()

    # ------------------------------------------------------------ bookkeeping
    def on_submit(self, task: Any, deps: list) -> None:
        """A task was submitted (task_submitter.prepare): record its lineage."""
        spec = task.spec
        if spec.num_returns == -1 or task.key == ("actor-create",):
            return  # streaming items and actor constructors are never rebuilt
        if task.sink is not None:
            calls = self._actor_calls
            calls[spec.task_id] = spec.name
            if len(calls) > _ACTOR_CALL_NAMES:
                calls.popitem(last=False)
            return
        me = self.core.address
        payload = (spec, task.key, tuple((i, ref._id, ref._owner) for i, ref in deps),
                   tuple(task.arg_ids), task.retry_exceptions)
        owned = tuple(ref._id for _, ref in deps if ref._owner in ("", me))
        with self._lock:
            self.table.add(spec.task_id, tuple(task.return_ids), owned, payload,
                           task.retries_left, _spec_size(spec), spec.name)

    def on_finished(self, task: Any) -> None:
        """A run of the task ended: keep the retries it has left for rebuilds (and,
        if ref arguments were resolved into its spec since it was recorded, its size)."""
        size = _spec_size(task.spec) if task.arg_ids else None
        with self._lock:
            self.table.update(task.spec.task_id, task.retries_left, size)

    def on_freed(self, object_id: bytes) -> None:
        """An owned object is no longer referenced: its lineage may go."""
        with self._lock:
            self.table.release(object_id)

    def on_refused_return(self, ret: pb.ReturnObject) -> None:
        """A task (re-)made an object its owner already holds, or no longer wants:
        another copy to free along with the object, or one to free now."""
        if not ret.in_shm or not ret.locations:
            return
        core = self.core
        entry = core.memory_store.get(ret.object_id)
        if entry is None:
            for loc in ret.locations:
                core._outbox.put(("free", (f"{loc.ip}:{loc.port}",
                                           [pb.SealedObject(object_id=ret.object_id)])))
        elif entry.in_shm:
            known = {loc.node_id for loc in entry.locations}
            for loc in ret.locations:
                if loc.node_id not in known:
                    core.memory_store.add_location(ret.object_id, loc)
        elif entry.ready:
            # It already holds an inline value or an error (e.g. the task was
            # failed meanwhile): nothing refers to this copy.
            for loc in ret.locations:
                core._outbox.put(("free", (f"{loc.ip}:{loc.port}",
                                           [pb.SealedObject(object_id=ret.object_id)])))

    # ------------------------------------------------------------ the owner
    def recover(self, object_id: bytes) -> str:
        """Someone could fetch no copy of owned ``object_id``: rebuild it if it is lost.

        Returns "freed" (unknown here), "pending" (being made or rebuilt),
        "available" (a holder looks alive: try again), "rebuilding" (tasks
        resubmitted) or "failed" (the object now holds the error).
        """
        core = self.core
        entry = core.memory_store.get(object_id)
        if entry is None:
            return "freed"
        if not entry.ready:
            return "pending"
        if not entry.in_shm:
            return "available"
        alive = self._alive_nodes()
        if alive is None:
            return "available"  # the control service cannot tell now
        starts = []
        holds: list[bytes] = []
        with self._lock:
            entry = core.memory_store.get(object_id)
            if entry is None:
                return "freed"
            if not entry.ready:
                return "pending"
            status = self._status(alive)
            if status(object_id) is not ObjectStatus.LOST:
                return "available"
            plan = self.table.recover(object_id, status)
            if plan.error is not None:
                self._fail(object_id, plan.error, alive)
                return "failed"
            for step in plan.resubmit:
                for rid in step.return_ids:
                    current = core.memory_store.get(rid)
                    if current is None:
                        # Freed, but a consumer being rebuilt needs it: own it again
                        # until it is made (the consumer counts it from then on).
                        core.register_pending(rid)
                        with core._rc_lock:
                            core.refs.add_submitted([rid])
                        holds.append(rid)
                    elif current.ready and (rid == object_id or status(rid) is ObjectStatus.LOST):
                        core.memory_store.reset(rid)
                starts.append(self._rebuild(step.payload, step.retries_left))
        logger.info("Ember: rebuilding lost object %s by re-running %d task(s): %s",
                    object_id.hex(), len(starts), ", ".join(t.spec.name for t, _ in starts))
        submitter = core.submitter
        for task, deps in starts:
            # Outside self._lock: start() may resolve arguments and dispatch right away.
            with submitter._lock:
                submitter._tasks[task.spec.task_id] = task
            submitter.start(task, deps)
        for rid in holds:
            core.memory_store.on_ready(rid, lambda _e, rid=rid: core.notify(
                lambda: core._run_rc(lambda: core.refs.remove_submitted([rid]))))
        return "rebuilding"

    def _alive_nodes(self) -> set[str] | None:
        try:
            nodes = self.core.gcs.GetNodes(pb.Empty(), timeout=10)
        except Exception:  # noqa: BLE001 - control service unreachable: cannot decide
            return None
        return {n.node_id for n in nodes.nodes if n.alive}

    def _status(self, alive: set[str]):
        store = self.core.memory_store

        def status(oid: bytes) -> ObjectStatus:
            entry = store.get(oid)
            if entry is None:
                return ObjectStatus.FREED
            if not entry.ready:
                return ObjectStatus.PENDING
            if not entry.in_shm or any(loc.node_id in alive for loc in entry.locations):
                return ObjectStatus.AVAILABLE
            return ObjectStatus.LOST

        return status

    def _rebuild(self, payload: tuple, retries_left: int) -> tuple[Any, list]:
        """A fresh PendingTask for a finished task's spec (arguments re-resolved)."""
        from .task_submitter import PendingTask
        core = self.core
        spec, key, deps, arg_ids, retry_exceptions = payload
        fresh = pb.TaskSpec()
        fresh.CopyFrom(spec)
        del fresh.gpu_ids[:]
        for index, _, _ in deps:
            fresh.args[index].Clear()
        # A rebuild is another attempt of the same task (task events key on it).
        fresh.attempt_number = spec.attempt_number = spec.attempt_number + 1
        from .task_events import PENDING_NODE_ASSIGNMENT
        core.task_events.record(fresh.task_id, fresh.attempt_number, PENDING_NODE_ASSIGNMENT)
        return_ids = tuple(ids.object_id_for(spec.task_id, i + 1)
                           for i in range(spec.num_returns))
        with core._rc_lock:
            core.refs.add_submitted(list(arg_ids))
        task = PendingTask(fresh, key, tuple(arg_ids), return_ids, retries_left, retry_exceptions,
                           unresolved=len(deps))
        # Unregistered refs: the rebuild must not change the objects' counts.
        refs: list[tuple[int, ObjectRef[Any]]] = [
            (index, ObjectRef(oid, owner, _register=False)) for index, oid, owner in deps]
        return task, refs

    def _fail(self, object_id: bytes, why: Unrecoverable, alive: set[str]) -> None:
        """The object cannot be rebuilt: it becomes the error, for every reader."""
        err = self._error(object_id, why, alive)
        data = serialization.to_bytes(serialization.serialize(err))
        store = self.core.memory_store
        if store.reset(object_id):
            store.set_ready(object_id, data=data, is_error=True, size=len(data))
        logger.warning("Ember: %s", err)

    def _error(self, object_id: bytes, why: Unrecoverable, alive: set[str]) -> Exception:
        from ..exceptions import (
            ObjectReconstructionFailedError,
            ObjectReconstructionFailedLineageEvictedError,
            ObjectReconstructionFailedMaxAttemptsExceededError,
        )
        owner = self.core.address
        hex_id = object_id.hex()
        inner = "" if why.object_id == object_id else (
            f" (it is an input of the task that made {hex_id}, which needs it to be rebuilt)")
        if why.failure is Failure.PUT:
            entry = self.core.memory_store.get(why.object_id)
            nodes = sorted({loc.node_id for loc in entry.locations}) if entry is not None else []
            where = ", ".join(nodes) or "a node that died"
            msg = (f"object {why.object_id.hex()} was created by ember.put and its only copy "
                   f"was on node {where}, which is gone{inner}; put objects cannot be rebuilt; "
                   "put it again, or make it with a task so Ember can re-run that task")
            return ObjectReconstructionFailedError(hex_id, "PUT", msg, owner)
        if why.failure is Failure.MAX_ATTEMPTS:
            return ObjectReconstructionFailedMaxAttemptsExceededError(hex_id, owner,
                                                                      detail=why.detail)
        if why.failure is Failure.EVICTED:
            return ObjectReconstructionFailedLineageEvictedError(
                hex_id, owner, detail=f"{why.detail} to keep lineage under {MAX_LINEAGE_ENV}="
                                      f"{self.table.max_bytes} bytes")
        if why.failure is Failure.UNKNOWN:
            name = self._actor_calls.get(ids.task_id_of(why.object_id))
            if name is not None:
                return ObjectReconstructionFailedError(
                    hex_id, "ACTOR_TASK", f"it was returned by {name}: {_ACTOR_REASON}", owner)
        reason = "ACTOR_TASK" if why.failure is Failure.NOT_RECONSTRUCTABLE else "LINEAGE_UNKNOWN"
        return ObjectReconstructionFailedError(hex_id, reason, why.detail, owner)

    # ------------------------------------------------------------ readers
    def owned_copy(self, ref: ObjectRef, entry: Any, deadline: float | None = None
                   ) -> tuple[Any, memoryview | None]:
        """This process's view of owned shared-memory object ``ref``, rebuilt if lost.

        Returns (entry, view); view is None when the entry is no longer in shared
        memory (the rebuild failed and it holds the error).
        """
        from ..exceptions import GetTimeoutError, ObjectLostError
        core = self.core
        give_up = time.monotonic() + _confirm_seconds()
        pause = 0.1
        while True:
            err = None
            if not entry.ready:
                outcome = "pending"     # another reader started a rebuild meanwhile
            elif not entry.in_shm:
                return entry, None
            else:
                view, err = self._try_view(ref._id, entry.locations, core.address)
                if view is not None:
                    return entry, view
                outcome = self.recover(ref._id)
            if outcome == "freed":
                raise ObjectLostError(ref.hex(), core.address, detail="it was freed while in use")
            if outcome == "available":
                pause = self._pause_or_raise(ref, err, give_up, deadline, pause)
            else:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                done = core.memory_store.wait_ready([ref._id], 1, left,
                                                    on_first_wait=core._blocked)
                core._unblocked()
                if not done:
                    raise GetTimeoutError(f"ember.get timed out while {ref.hex()} was being "
                                          "rebuilt after its node died: raise timeout=")
            entry = core.memory_store.get(ref._id)
            if entry is None:
                raise ObjectLostError(ref.hex(), core.address, detail="it was freed while in use")

    def borrowed_copy(self, ref: ObjectRef, obj: pb.ReturnObject, deadline: float | None = None
                      ) -> tuple[pb.ReturnObject, memoryview | None]:
        """Like ``owned_copy`` for an object owned elsewhere: asks its owner to rebuild it."""
        core = self.core
        give_up = time.monotonic() + _confirm_seconds()
        pause = 0.1
        while True:
            view, err = self._try_view(ref._id, obj.locations, ref._owner)
            if view is not None:
                return obj, view
            before = {loc.node_id for loc in obj.locations}
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            obj, _ = core._fetch_borrowed(ref, left, recover=True)
            if not obj.in_shm:
                return obj, None
            if {loc.node_id for loc in obj.locations} == before:
                # Same holders: the owner still sees one alive. Ask again soon.
                pause = self._pause_or_raise(ref, err, give_up, deadline, pause)

    def arg_view(self, arg: pb.Arg, spec: pb.TaskSpec) -> memoryview:
        """A task argument in shared memory, rebuilt by its owner if every copy is gone."""
        from .core_worker import _as_raisable
        core = self.core
        oid = arg.shm_object_id
        owner = arg.owner_address or spec.owner.ip
        view, _ = self._try_view(oid, arg.locations, owner)
        if view is not None:
            return view
        ref: ObjectRef[Any] = ObjectRef(oid, owner, _register=False)
        if owner == core.address:
            from ..exceptions import ObjectLostError
            entry = core.memory_store.get(oid)
            if entry is None:
                raise ObjectLostError(oid.hex(), owner, detail="it was freed before the task ran")
            entry, view = self.owned_copy(ref, entry)
            data, is_error = entry.data, entry.is_error
        else:
            obj, view = self.borrowed_copy(
                ref, pb.ReturnObject(object_id=oid, in_shm=True, locations=arg.locations))
            data, is_error = obj.data, obj.is_error
        if view is not None:
            return view
        if is_error:
            raise _as_raisable(serialization.deserialize(data or b""))
        return memoryview(bytes(data or b""))

    def _try_view(self, object_id: bytes, locations: Any, owner: str
                  ) -> tuple[memoryview | None, Exception | None]:
        import grpc

        from ..exceptions import ObjectFetchTimedOutError
        try:
            return self.core.local_view(object_id, locations, owner), None
        except ObjectFetchTimedOutError as e:
            return None, e
        except grpc.RpcError as e:   # this node's manager is unreachable
            return None, ObjectFetchTimedOutError(object_id.hex(), owner, detail=(
                f"this node's manager could not be asked for it ({e.code().name})"))

    @staticmethod
    def _pause_or_raise(ref: ObjectRef, err: Exception | None, give_up: float,
                        deadline: float | None, pause: float) -> float:
        from ..exceptions import GetTimeoutError, ObjectFetchTimedOutError
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise GetTimeoutError(f"ember.get timed out: no copy of {ref.hex()} could be "
                                  "fetched yet (a node holding it may be down): raise timeout=")
        if now >= give_up:
            raise err or ObjectFetchTimedOutError(
                ref.hex(), ref._owner, detail="no copy could be fetched, yet the nodes "
                                              "holding it are still listed as alive")
        time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - now)))
        return min(1.0, pause * 2)

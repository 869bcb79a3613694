"""CoreWorker: the runtime inside every driver and worker process.

It owns the objects this process creates (memory store + reference counts),
serves them to borrowers (GetObject), submits tasks (task_submitter.py) and,
in workers, executes them (task_executor.py). Every process runs one small gRPC
server for the CoreWorker service so that owners and borrowers can reach it.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextvars
import functools
import hashlib
import os
import queue
import threading
import time
from typing import Any, Callable

import grpc

from . import get_stall, ids, rpc, serialization, worker_state
from .memory_store import Entry, MemoryStore
from .object_ref import ObjectRef, ObjectRefGenerator
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg
from .reference_counter import FreeObject, ReferenceCounter, SendRemoveBorrow
from .shm_store import ShmStore

# Values up to this size travel inline in messages; larger ones go through
# shared memory (Ray uses the same 100 KiB cut-off).
INLINE_THRESHOLD = 100 * 1024
# How long the sender thread gathers dropped refs before freeing them.
FREE_BATCH_SECONDS = 0.005

_NONE_BYTES = serialization.to_bytes(serialization.serialize(None))

_current_task: contextvars.ContextVar[Any] = contextvars.ContextVar("ember_task", default=None)


class _Current:
    """The task running in this context: per thread, and per asyncio task in
    async actors (a ContextVar, not a thread-local, so concurrent coroutines on
    one event loop each see their own call)."""

    @property
    def task(self) -> Any:
        return _current_task.get()

    @task.setter
    def task(self, value: Any) -> None:
        _current_task.set(value)


class CoreWorker(pbg.CoreWorkerServicer):
    def __init__(self, *, is_driver: bool, token: str, node_id: str, gcs_address: str,
                 node_manager_address: str, shm_dir: str, shm_prefix: str, job_id: int,
                 worker_id: str | None = None, namespace: str = "",
                 runtime_env: dict | None = None, bind_ip: str = "127.0.0.1") -> None:
        from .actor_submitter import ActorSubmitter
        from .task_submitter import TaskSubmitter

        self.is_driver = is_driver
        self.token = token
        self.node_id = node_id
        self.job_id = job_id
        self.namespace = namespace
        self.runtime_env = runtime_env or {}
        self.worker_id = worker_id or ids.new_unique_hex()
        self.gcs_address = gcs_address
        self.node_manager_address = node_manager_address
        self.memory_store = MemoryStore()
        # The last object read stays mapped 1 s (tasks sharing an argument reuse it).
        self.shm = ShmStore(shm_dir, shm_prefix, keep_recent_s=1.0)
        from . import task_events
        self.task_events = task_events.from_env()   # fed by the submitters and the executor
        self.refs = ReferenceCounter()
        self._rc_lock = threading.Lock()
        self._deferred_decrefs: collections.deque[bytes] = collections.deque()
        self._pending_borrows: dict[str, list[bytes]] = {}
        self._stubs: dict[str, rpc.Stub] = {}
        self._stubs_lock = threading.Lock()
        self._functions: dict[bytes, Any] = {}
        self._exported: dict[int, bytes] = {}
        # SimpleQueue: its put() is reentrant, so finalizers (ObjectRef.__del__,
        # which the GC may run inside any code, even while this queue is in use)
        # can hand work to the sender thread without risking a self-deadlock.
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stopped = threading.Event()
        self.current = _Current()        # current task context in workers
        self.executor: Any = None         # set in worker processes
        self.push_port = 0                # a worker's framed PushTasks port (worker_main)
        self.actor_id: bytes | None = None  # set in a worker hosting an actor
        self.actor_handle_meta: Any = None
        self.actor_name = ""
        self.actor_placement_group = b""
        # Objects whose release means "the last handle to this actor is gone".
        self.actor_lifetime_refs: dict[bytes, bytes] = {}

        self.server = rpc.make_server(token, max_workers=32)
        pbg.add_CoreWorkerServicer_to_server(self, self.server)
        # Bound to the node's address (loopback unless the node was started with
        # --node-ip-address), so owners on other nodes can reach this process.
        port = rpc.bind(self.server, bind_ip, 0)
        self.address = f"{bind_ip}:{port}"
        # Calls to the control service wait out its restart (gcs_client.py).
        from .gcs_client import GcsClient
        self.gcs = GcsClient(gcs_address, token, warn=is_driver)
        self.node_manager = rpc.Stub(rpc.channel(node_manager_address), pbg.NodeManagerStub, token)
        from .store_client import StoreClient
        self.store_client = StoreClient(self.node_manager, self.worker_id)  # room in the store
        nm_ip, _, nm_port = node_manager_address.rpartition(":")
        # Where this process's shared-memory objects live, as other nodes reach it.
        self.location = pb.Address(node_id=node_id, ip=nm_ip, port=int(nm_port))
        self._nm_stubs: dict[str, rpc.Stub] = {node_manager_address: self.node_manager}
        from .object_recovery import ObjectRecovery
        self.recovery = ObjectRecovery(self)    # lineage: rebuilds owned objects that are lost
        self.submitter = TaskSubmitter(self)
        self.actors = ActorSubmitter(self, self.submitter)
        self._sender = threading.Thread(target=self._sender_loop, name="ember-sender", daemon=True)

    def start(self) -> None:
        from . import task_events
        self.server.start()
        self._sender.start()
        task_events.start_sending(self)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.task_events.stop()
        self.actors.stop()
        self.submitter.stop()
        self._outbox.put(None)
        self.server.stop(grace=0)
        with self._stubs_lock:
            for stub in self._stubs.values():
                stub.channel.close()
            self._stubs.clear()

    # ------------------------------------------------------------ stubs
    def core_stub(self, address: str) -> rpc.Stub:
        with self._stubs_lock:
            stub = self._stubs.get(address)
            if stub is None:
                stub = self._stubs[address] = rpc.Stub(
                    rpc.channel(address), pbg.CoreWorkerStub, self.token)
            return stub

    def node_manager_stub(self, address: str) -> rpc.Stub:
        """A stub for any node's manager (this node's, or one a lease spilled to)."""
        with self._stubs_lock:
            stub = self._nm_stubs.get(address)
            if stub is None:
                stub = self._nm_stubs[address] = rpc.Stub(
                    rpc.channel(address), pbg.NodeManagerStub, self.token)
            return stub

    # ------------------------------------------------------------ reference counting
    def ref_created(self, object_id: bytes, owner: str) -> None:
        with self._rc_lock:
            if owner and owner != self.address and not self.refs.is_owned(object_id):
                if self.refs.add_borrowed(object_id, owner):
                    self._pending_borrows.setdefault(owner, []).append(object_id)
            self.refs.add_local(object_id)

    def ref_deleted(self, object_id: bytes) -> None:
        # A finalizer may run while this thread already holds the lock (GC can
        # fire anywhere), so never block here: defer to the sender thread.
        if self._rc_lock.acquire(blocking=False):
            try:
                actions = self.refs.remove_local(object_id)
            finally:
                self._rc_lock.release()
            if actions:
                self._outbox.put(("actions", actions))
        else:
            self._deferred_decrefs.append(object_id)
            self._outbox.put(("drain", None))

    def _run_rc(self, fn: Callable[[], list]) -> None:
        with self._rc_lock:
            actions = fn()
        if actions:
            self._perform(actions)

    def _perform(self, actions: list) -> None:
        frees: dict[str, list[pb.SealedObject]] = {}
        for action in actions:
            if isinstance(action, FreeObject):
                actor_id = self.actor_lifetime_refs.pop(action.object_id, None)
                if actor_id is not None:
                    self.actors.out_of_scope(actor_id)
                self.recovery.on_freed(action.object_id)
                entry = self.memory_store.delete(action.object_id)
                if entry is not None and entry.in_shm:
                    self.shm.release(action.object_id.hex())
                    # Every copy goes: the one where it was made and any pulled since.
                    for loc in entry.locations or [self.location]:
                        frees.setdefault(f"{loc.ip}:{loc.port}", []).append(
                            pb.SealedObject(object_id=action.object_id))
            elif isinstance(action, SendRemoveBorrow):
                self._outbox.put(("unborrow", (action.owner, action.object_id)))
        for address, objects in frees.items():
            self._outbox.put(("free", (address, objects)))

    def flush_borrows(self) -> None:
        """Register this process as a borrower with the refs' owners, synchronously.

        Called after deserializing values that hold refs owned elsewhere and
        before the value that carried them may be released, so the owner never
        frees an object a borrower is about to use.
        """
        with self._rc_lock:
            pending, self._pending_borrows = self._pending_borrows, {}
        for owner, object_ids in pending.items():
            try:
                self.core_stub(owner).UpdateBorrowers(
                    pb.BorrowUpdate(add=object_ids, borrower=pb.Address(ip=self.address)),
                    timeout=30)
            except grpc.RpcError:
                pass  # the owner is gone; gets of its objects raise OwnerDiedError

    def _sender_loop(self) -> None:
        """Background delivery of fire-and-forget messages, batched per target."""
        while True:
            item = self._outbox.get()
            if item is None:
                return
            if item[0] == "actions" and not self._stopped.is_set():
                # Dropped refs arrive one by one (one per task in a loop of
                # get(f.remote())): gather them for a moment so this thread
                # wakes once per burst, not once per ref. Frees are not urgent.
                time.sleep(FREE_BATCH_SECONDS)
            batch = [item]
            while True:
                try:
                    nxt = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._outbox.put(None)
                    break
                batch.append(nxt)
            frees: dict[str, list[pb.SealedObject]] = {}
            unborrow: dict[str, list[bytes]] = {}
            for kind, payload in batch:
                if kind == "actions":
                    self._perform(payload)
                elif kind == "drain":
                    while self._deferred_decrefs:
                        oid = self._deferred_decrefs.popleft()
                        self._run_rc(functools.partial(self.refs.remove_local, oid))
                elif kind == "free":
                    frees.setdefault(payload[0], []).extend(payload[1])
                elif kind == "unborrow":
                    unborrow.setdefault(payload[0], []).append(payload[1])
                elif kind == "call":
                    try:
                        payload()
                    except Exception:  # noqa: BLE001 - best-effort notifications
                        pass
            # Actions performed above may have queued more; pick them up next loop.
            for address, objects in frees.items():
                try:
                    self.node_manager_stub(address).FreeObjects(
                        pb.ObjectsRequest(objects=objects), timeout=10)
                except grpc.RpcError:
                    pass  # that node is gone, and its copies with it
            try:
                for owner, object_ids in unborrow.items():
                    self.core_stub(owner).UpdateBorrowers(
                        pb.BorrowUpdate(remove=object_ids, borrower=pb.Address(ip=self.address)),
                        timeout=10)
            except grpc.RpcError:
                pass

    def notify(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the sender thread (off the caller's hot path)."""
        self._outbox.put(("call", fn))

    # ------------------------------------------------------------ objects
    def put_serialized(self, object_id: bytes, ser: serialization.SerializedObject,
                       *, owned_inner: bool = True, owner: Any = None
                       ) -> tuple[bytes | None, int]:
        """Store a serialized value locally; returns (inline bytes or None, size).

        ``owner``: the owning process's pb.Address when it is not this one (a task's
        return belongs to its caller)."""
        size = ser.total_size
        if size <= INLINE_THRESHOLD:
            return serialization.to_bytes(ser), size
        self.store_client.reserve(object_id, size)   # may spill others; ObjectStoreFullError
        self.shm.create_and_write(object_id.hex(), ser)
        sealed = self.store_client.sealed_request(
            object_id, size, owner if owner is not None else pb.Address(
                worker_id=self.worker_id, node_id=self.node_id))
        self.notify(lambda: self.node_manager.ObjectsSealed(sealed, timeout=10))
        return None, size

    def put(self, value: Any, _owner: Any = None) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError("ember.put() of an ObjectRef is not allowed: pass the ref itself, "
                            "or put the value it points to (ember.get(ref))")
        object_id = ids.object_id_for(ids.new_task_id(), ids.PUT_INDEX_BASE)
        ser = serialization.serialize(value)
        inner = tuple(r.binary() for r in ser.contained_refs)
        data, size = self.put_serialized(object_id, ser)
        with self._rc_lock:
            self.refs.add_owned(object_id, inner)
        self.memory_store.put_ready(object_id, data=data, in_shm=data is None, size=size,
                                    node_id=self.node_id,
                                    locations=[self.location] if data is None else None)
        return ObjectRef(object_id, self.address)

    def new_actor_lifetime_ref(self, actor_id: bytes) -> ObjectRef:
        """An owned, empty object whose release stops the actor (see actor_class.py)."""
        object_id = ids.object_id_for(ids.new_task_id(), 0)
        with self._rc_lock:
            self.refs.add_owned(object_id)
        self.memory_store.put_ready(object_id, data=_NONE_BYTES, in_shm=False,
                                    size=len(_NONE_BYTES), node_id=self.node_id)
        self.actor_lifetime_refs[object_id] = actor_id
        return ObjectRef(object_id, self.address)

    def register_pending(self, object_id: bytes) -> None:
        with self._rc_lock:
            self.refs.add_owned(object_id)
        self.memory_store.add_pending(object_id)

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        from ..exceptions import GetTimeoutError

        deadline = None if timeout is None else time.monotonic() + timeout
        owned: list[ObjectRef] = []
        borrowed: list[ObjectRef] = []
        for r in refs:
            (owned if r._owner in ("", self.address) else borrowed).append(r)
        if owned:
            oids = [r._id for r in owned]
            if len(oids) == 1:
                self.actors.poll_result(oids[0])
            # Waits as memory_store.wait_ready, and says why if it stalls.
            done = get_stall.wait_owned(self, oids, timeout)
            self._unblocked()
            if len(done) < len(set(oids)):
                raise GetTimeoutError(
                    f"ember.get timed out after {timeout}s with {len(set(oids)) - len(done)} of "
                    f"{len(set(oids))} objects not ready: increase timeout= or check that the "
                    "tasks are not blocked or starved of resources (ember status)")
        fetched: dict[bytes, tuple[pb.ReturnObject, Any]] = {}
        for ref in borrowed:
            if ref._id not in fetched:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                fetched[ref._id] = self._fetch_borrowed(ref, left)
        values = []
        for ref in refs:
            if ref._id in fetched:
                values.append(self._materialize_borrowed(ref, *fetched[ref._id], deadline))
            else:
                entry = self.memory_store.get(ref._id)
                values.append(self._materialize(ref, entry, deadline))
        if self._pending_borrows:
            self.flush_borrows()
        return values

    def _materialize(self, ref: ObjectRef, entry: Entry | None,
                     deadline: float | None = None) -> Any:
        from ..exceptions import ObjectLostError

        if entry is None:
            raise ObjectLostError(ref.hex(), self.address, detail=(
                "the object was freed; keep an ObjectRef to it while you need it"))
        view = None
        if entry.in_shm or not entry.ready:
            # Rebuilt from lineage if every copy is gone (object_recovery.py).
            entry, view = self.recovery.owned_copy(ref, entry, deadline)
        if view is not None:
            value = serialization.deserialize(view)
        else:
            value = serialization.deserialize(entry.data or b"")
        if entry.is_error:
            raise _as_raisable(value)
        return value

    def local_view(self, object_id: bytes, locations: Any, owner: str) -> memoryview | None:
        """This node's copy of a shared-memory object: restored from disk if it was
        spilled, pulled from another node if need be."""
        view = self.shm.get(object_id.hex())
        if view is not None:
            return view
        from .store_client import fetch_view
        return fetch_view(self, object_id, locations or (), owner)

    def _fetch_borrowed(self, ref: ObjectRef, timeout: float | None,
                        recover: bool = False) -> tuple[pb.ReturnObject, Any]:
        """Long-poll the owner; ``recover``: no copy could be fetched, so the
        owner checks the holders and rebuilds the object if they are gone."""
        from ..exceptions import GetTimeoutError, OwnerDiedError, ObjectLostError

        if not recover and self.shm.contains(ref._id.hex()):
            return pb.ReturnObject(object_id=ref._id, in_shm=True), None
        deadline = None if timeout is None else time.monotonic() + timeout
        blocked = False
        try:
            while True:
                step = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
                try:
                    # A lost call is resent a few times: only an owner that stays
                    # unreachable is dead.
                    reply = rpc.call_with_retry(
                        self.core_stub(ref._owner).GetObject,
                        pb.GetObjectRequest(object_id=ref._id, timeout=step, recover=recover),
                        timeout=step + 30, attempts=3)
                    recover = False
                except grpc.RpcError as e:
                    raise OwnerDiedError(ref.hex(), ref._owner, detail=(
                        f"its owner is unreachable ({e.code().name})")) from None
                if reply.error:
                    raise ObjectLostError(ref.hex(), ref._owner, detail=reply.error)
                if reply.ready:
                    return reply.object, None
                if deadline is not None and time.monotonic() >= deadline:
                    raise GetTimeoutError(
                        f"ember.get timed out after {timeout}s waiting for {ref.hex()}: increase "
                        "timeout= or check that the task producing it is not blocked")
                if not blocked:
                    blocked = True
                    self._blocked()
        finally:
            if blocked:
                self._unblocked()

    def _materialize_borrowed(self, ref: ObjectRef, obj: pb.ReturnObject, _: Any,
                              deadline: float | None = None) -> Any:
        view = None
        if obj.in_shm:
            # The owner rebuilds it if every copy is gone (object_recovery.py).
            obj, view = self.recovery.borrowed_copy(ref, obj, deadline)
        if view is not None:
            value = serialization.deserialize(view)
        else:
            value = serialization.deserialize(obj.data)
        if obj.is_error:
            raise _as_raisable(value)
        return value

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list[ObjectRef], list[ObjectRef]]:
        owned_ids = [r._id for r in refs if r._owner in ("", self.address)]
        borrowed = [r for r in refs if r._owner not in ("", self.address)]
        ready_borrowed: set[bytes] = set()
        futures: dict[bytes, concurrent.futures.Future] = {}
        for ref in borrowed:
            futures[ref._id] = self._borrowed_ready_future(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        blocked = False
        try:
            while True:
                done = self.memory_store.wait_ready(owned_ids, 0, 0) if owned_ids else set()
                ready_borrowed = {oid for oid, f in futures.items() if f.done()}
                if len(done) + len(ready_borrowed) >= num_returns:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                if not blocked:
                    blocked = True
                    self._blocked()
                step = 0.05 if borrowed else (remaining if remaining is not None else 1.0)
                self.memory_store.wait_ready(owned_ids, len(done) + 1,
                                             step if remaining is None else min(step, remaining))
        finally:
            if blocked:
                self._unblocked()
        ready_ids = done | ready_borrowed
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for ref in refs:
            (ready if ref._id in ready_ids and len(ready) < num_returns else not_ready).append(ref)
        return ready, not_ready

    def _borrowed_ready_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def poll() -> None:
            try:
                self._fetch_borrowed(ref, None)
            except Exception:  # noqa: BLE001 - an error is also "ready" for wait
                pass
            fut.set_result(True)

        threading.Thread(target=poll, daemon=True, name="ember-wait").start()
        return fut

    def future_for(self, ref: ObjectRef) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def resolve(*_: Any) -> None:
            try:
                fut.set_result(self.get([ref], None)[0])
            except BaseException as e:  # noqa: BLE001 - delivered through the future
                fut.set_exception(e)

        if ref._owner in ("", self.address):
            if not self.memory_store.on_ready(ref._id, lambda e: resolve()):
                resolve()
        else:
            threading.Thread(target=resolve, daemon=True, name="ember-future").start()
        return fut

    def _blocked(self) -> None:
        if self.executor is not None:
            self.executor.set_blocked(True)

    def _unblocked(self) -> None:
        if self.executor is not None:
            self.executor.set_blocked(False)

    # ------------------------------------------------------------ functions
    def export_function(self, fn: Any, pickled: bytes | None = None) -> bytes:
        key = id(fn)
        fid = self._exported.get(key)
        if fid is not None:
            return fid
        import cloudpickle

        data = pickled if pickled is not None else cloudpickle.dumps(fn)
        fid = hashlib.sha1(data).digest()[:16]
        self.gcs.KVPut(pb.KVRequest(ns="fn", key=fid, value=data, overwrite=False), timeout=60)
        self._functions[fid] = fn
        self._exported[key] = fid
        return fid

    def load_function(self, fid: bytes) -> Any:
        fn = self._functions.get(fid)
        if fn is None:
            import cloudpickle

            reply = self.gcs.KVGet(pb.KVRequest(ns="fn", key=fid), timeout=60)
            if not reply.found:
                raise RuntimeError(f"function {fid.hex()} is not registered with the control service")
            fn = self._functions[fid] = cloudpickle.loads(reply.value)
        return fn

    # ------------------------------------------------------------ generators
    def next_generator_item(self, task_id: bytes, index: int, timeout: float | None):
        return self.submitter.next_generator_item(task_id, index, timeout)

    def release_generator(self, task_id: bytes) -> None:
        """Called from ObjectRefGenerator.__del__: never take a lock here (the GC
        may run the finalizer in a thread that holds it); the sender thread does."""
        self._outbox.put(("call", lambda: self.submitter.release_generator(task_id)))

    # ------------------------------------------------------------ RPCs (as owner)
    def GetObject(self, request: pb.GetObjectRequest, context) -> pb.GetObjectReply:
        oid = request.object_id
        if self.memory_store.get(oid) is None:
            return pb.GetObjectReply(error="the owner no longer has this object (it was freed)")
        if request.recover:
            self.recovery.recover(oid)      # the caller could fetch no copy
        timeout = None if request.timeout < 0 else request.timeout
        if not self.memory_store.wait_ready([oid], 1, timeout):
            return pb.GetObjectReply(ready=False)
        entry = self.memory_store.get(oid)
        if entry is None:
            return pb.GetObjectReply(error="the owner no longer has this object (it was freed)")
        reply = pb.GetObjectReply(ready=True, object=pb.ReturnObject(
            object_id=oid, data=bytes(entry.data) if entry.data is not None else b"",
            in_shm=entry.in_shm, size=entry.size, is_error=entry.is_error,
            locations=entry.locations))
        # Lost and being rebuilt meanwhile (object_recovery.py): the caller asks again.
        return reply if entry.ready else pb.GetObjectReply(ready=False)

    def AddObjectLocation(self, request: pb.LocationUpdate, context) -> pb.Empty:
        if not self.memory_store.add_location(request.object_id, request.location):
            # Freed meanwhile: that copy must not outlive it.
            loc = request.location
            objects = [pb.SealedObject(object_id=request.object_id)]
            self._outbox.put(("free", (f"{loc.ip}:{loc.port}", objects)))
        return pb.Empty()

    def UpdateBorrowers(self, request: pb.BorrowUpdate, context) -> pb.Empty:
        borrower = request.borrower.ip
        with self._rc_lock:
            for oid in request.add:
                self.refs.add_borrower(oid, borrower)
            actions: list = []
            for oid in request.remove:
                actions += self.refs.remove_borrower(oid, borrower)
        if actions:
            self._perform(actions)
        return pb.Empty()

    def StartActor(self, request: pb.StartActorRequest, context) -> pb.StartActorReply:
        if self.executor is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this process does not run actors")
        return self.executor.start_actor(request)

    def PushTasks(self, request_iterator, context):
        if self.executor is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this process does not run tasks")
        return self.executor.serve_stream(request_iterator, context)

    def GetObjectsInfo(self, request: pb.ObjectsInfoRequest, context) -> pb.ObjectsInfoReply:
        from . import object_info
        return object_info.snapshot(self, request.limit)

    def Exit(self, request: pb.Empty, context) -> pb.Empty:
        threading.Timer(0.05, lambda: os._exit(0)).start()
        return pb.Empty()


def _as_raisable(err: Any) -> BaseException:
    from ..exceptions import TaskError

    if isinstance(err, TaskError):
        return err.as_instanceof_cause()
    if isinstance(err, BaseException):
        return err
    return RuntimeError(f"task failed: {err!r}")


def install(core: CoreWorker) -> None:
    worker_state.core = core


def uninstall() -> None:
    worker_state.core = None

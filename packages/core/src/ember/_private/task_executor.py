"""Worker-side task execution.

Tasks arrive in batches on a PushTasks stream from the owner holding this
worker's lease; they run one at a time on the main thread (so signal handling,
``KeyboardInterrupt`` and thread-local libraries behave as in a plain script),
and each result is sent back on the same stream as soon as it is ready.

A worker can instead be dedicated to one actor (StartActor): the constructor
runs on the main thread, then method calls arrive on callers' streams and run
as actor_host.py decides (main thread, thread pools or an event loop).
"""
from __future__ import annotations

import inspect
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import ids, serialization
from .object_ref import ObjectRef
from .protos import ember_pb2 as pb
from .task_events import FAILED, FINISHED, RUNNING
from .task_marks import TaskMarks

IDLE_POLL_ENV = "EMBER_WORKER_IDLE_POLL_US"


def idle_poll_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long an idle main thread reads its last caller's connection before it sleeps
    (``_next_task``); 300 us covers a synchronous caller's turnaround here, 0 turns it
    off. Read per worker, not at import: forked workers share their imports.

    >>> idle_poll_seconds({"EMBER_WORKER_IDLE_POLL_US": "0"})
    0.0
    """
    source = os.environ if env is None else env
    return float(source.get(IDLE_POLL_ENV, "300")) / 1e6


class _Stream:
    """One owner's connection: where results of its tasks go.

    ``out.put(result)`` hands a result over (None: the stream is over): a queue
    the gRPC handler drains, or the framed transport's ResultSink, which writes
    it at once from the calling thread.
    """

    def __init__(self, out: Any = None) -> None:
        self.out: Any = out if out is not None else queue.SimpleQueue()
        self.closed = False


class _Running:
    def __init__(self, spec: pb.TaskSpec, stream: _Stream) -> None:
        self.spec = spec
        self.stream = stream
        self.children: list[bytes] = []
        self.cancelled = False


class TaskExecutor:
    def __init__(self, core: Any) -> None:
        self.core = core
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._queued: dict[bytes, tuple[pb.TaskSpec, _Stream]] = {}
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._main_thread_id = threading.get_ident()
        self._calls = 0
        self._pins: dict[bytes, list[ObjectRef]] = {}
        self._blocked = False
        self.actor: Any = None          # actor_host.ActorHost once StartActor succeeded
        self._exiting = False           # exit_actor() was called
        # (ServerConnection, its on_batch) that sent the latest task: _next_task reads it.
        self._last_conn: tuple[Any, Callable[[pb.TaskBatch], None]] | None = None
        self._polling: Any = None       # the ServerConnection the main thread has claimed
        self._idle_poll_s = idle_poll_seconds()

    # ------------------------------------------------------------ stream (gRPC threads)
    def serve_stream(self, request_iterator, context):
        stream = _Stream()

        def reader() -> None:
            try:
                for batch in request_iterator:
                    self._on_batch(batch, stream)
            except Exception:  # noqa: BLE001 - the owner hung up
                pass
            stream.closed = True
            stream.out.put(None)

        threading.Thread(target=reader, daemon=True, name="ember-push-reader").start()
        while True:
            item = stream.out.get()
            if item is None:
                return
            results = [item]
            while True:
                try:
                    nxt = stream.out.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stream.out.put(None)
                    break
                results.append(nxt)
            exiting = any(r.worker_exiting for r in results)
            yield pb.ResultBatch(results=results)
            if exiting:
                # max_calls reached: the result is out, now leave (with this
                # worker's task events sent, or they would be lost).
                threading.Timer(0.2, self._exit_now).start()

    def serve_connection(self, conn: Any) -> None:
        """The framed transport's server side, on the connection's thread: run the
        batches read from ``conn`` (a transports.framed.ServerConnection); results
        go to ``conn.sink.put``. While the main thread is idle it reads the
        connection that sent the last task itself (``_next_task``).

        Returns when the owner ends the stream or the connection breaks, as the
        gRPC handler's request iterator does.
        """
        stream = _Stream(conn.sink)

        def on_batch(batch: pb.TaskBatch) -> None:
            if conn.pollable:
                self._last_conn = (conn, on_batch)
            self._on_batch(batch, stream)

        try:
            conn.serve(on_batch)
        finally:
            stream.closed = True
            last = self._last_conn
            if last is not None and last[0] is conn:
                self._last_conn = None
            stream.out.put(None)

    def exit_soon(self) -> None:
        """max_calls reached and the last result sent: leave shortly."""
        threading.Timer(0.2, self._exit_now).start()

    def _exit_now(self, code: int = 0) -> None:
        self.core.task_events.flush(timeout=2.0)
        os._exit(code)

    def _on_batch(self, batch: pb.TaskBatch, stream: _Stream) -> None:
        host = self.actor
        for spec in batch.tasks:
            if spec.actor_id and host is not None:
                problem = self._check_actor_call(spec, host)
                if problem is not None:
                    stream.out.put(problem)
                    continue
                if host.mode != "main":
                    host.dispatch(spec, stream)
                    continue
            with self._lock:
                self._queued[spec.task_id] = (spec, stream)
            self._tasks.put(spec.task_id)
        for task_id in batch.release_pins:
            self._pins.pop(task_id, None)
        for cancel in batch.cancels:
            self._cancel(cancel)

    def _cancel(self, cancel: pb.CancelRequest) -> None:
        with self._lock:
            queued = self._queued.pop(cancel.task_id, None)
            running = self._running
        if queued is not None:
            spec, stream = queued
            stream.out.put(self._cancelled_result(spec))
            return
        host = self.actor
        if host is not None:
            # Actor calls off the main thread are cancelled by their host; a
            # running call on the main thread runs on (its state must stay whole).
            if host.mode != "main":
                host.cancel(cancel.task_id)
            return
        if running is None or running.spec.task_id != cancel.task_id:
            return
        running.cancelled = True
        if cancel.recursive:
            for child in list(running.children):
                self.core.submitter.cancel(ids.object_id_for(child, 1), cancel.force, True)
        if cancel.force:
            running.stream.out.put(self._cancelled_result(running.spec))
            threading.Timer(0.2, lambda: os._exit(1)).start()
            return
        # A signal interrupts blocking calls (sleep, I/O) on the main thread;
        # the handler raises TaskCancelledError inside the task.
        signal.pthread_kill(self._main_thread_id, signal.SIGINT)

    def _cancelled_result(self, spec: pb.TaskSpec) -> pb.TaskResult:
        from ..exceptions import TaskCancelledError
        err = serialization.to_bytes(serialization.serialize(TaskCancelledError(spec.task_id.hex())))
        return _failed_result(spec, err, cancelled=True)

    # ------------------------------------------------------------ main thread
    def _on_sigint(self, signum: int, frame: Any) -> None:
        running = self._running
        if running is not None and running.cancelled:
            from ..exceptions import TaskCancelledError
            raise TaskCancelledError(running.spec.task_id.hex())

    def run_forever(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)
        while True:
            task_id = self._next_task()
            if isinstance(task_id, tuple):      # StartActor: run the constructor here
                self._create_actor(*task_id)
                continue
            with self._lock:
                item = self._queued.pop(task_id, None)
            if item is None:
                continue  # cancelled while queued
            spec, stream = item
            if stream.closed:
                continue
            try:
                result = self._execute(spec, stream)
            except BaseException as e:  # noqa: BLE001 - a late async cancel
                result = self._error_result(spec, e)
            self._calls += 1
            if spec.max_calls and self._calls >= spec.max_calls:
                result.worker_exiting = True
            self.deliver(spec, result, stream)

    def _next_task(self) -> Any:
        """The next item for the main thread. When there is none yet, first read the
        connection that sent the last task for a moment (idle_poll_seconds): a synchronous
        caller's next call usually arrives within that, and this thread then needs no
        wake-up to get it (transports/framed.py, ServerConnection)."""
        try:
            item = self._tasks.get_nowait()
        except queue.Empty:
            item = None
        if item is None:
            item = self._poll_last_connection()
        if item is None:
            if self._polling is not None:       # asleep: its own thread reads it
                self._polling.release()
                self._polling = None
            item = self._tasks.get()
        if self._polling is not None:
            self._polling.busy()
        return item

    def _poll_last_connection(self) -> Any:
        last = self._last_conn
        host = self.actor
        if last is None or self._idle_poll_s <= 0 or (host is not None and host.mode != "main"):
            return None
        conn, on_batch = last
        if self._polling is not conn:
            if self._polling is not None:
                self._polling.release()
            self._polling = conn
        conn.claim()
        tasks = self._tasks
        conn.poll_until(lambda: not tasks.empty(), self._idle_poll_s, on_batch)
        try:
            return tasks.get_nowait()
        except queue.Empty:
            return None

    def deliver(self, spec: pb.TaskSpec, result: pb.TaskResult, stream: _Stream) -> None:
        self.core.task_events.finished(spec.task_id, spec.attempt_number, result.returns)
        stream.out.put(result)
        if result.actor_exiting:
            self._finish_exit()

    # ------------------------------------------------------------ actors
    def start_actor(self, request: pb.StartActorRequest) -> pb.StartActorReply:
        """StartActor RPC: queue the constructor for the main thread and wait for it."""
        done = threading.Event()
        box: list[pb.StartActorReply] = []
        self._tasks.put((request, done, box))
        done.wait()
        return box[0]

    def _create_actor(self, request: pb.StartActorRequest, done: threading.Event,
                      box: list) -> None:
        from .actor_host import ActorHost
        core = self.core
        spec = request.spec
        creation = spec.creation
        # The actor's environment is set once, for its whole life.
        env = dict(creation.env_vars)
        env[_GPU_ENV] = ",".join(request.gpu_ids)
        os.environ.update(env)
        del creation.gpu_ids[:]
        creation.gpu_ids.extend(request.gpu_ids)
        creation.resources.update(spec.resources)
        running = _Running(creation, None)  # type: ignore[arg-type]
        core.current.task = running
        core.task_events.record(creation.task_id, creation.attempt_number, RUNNING,
                                spec.actor_id)
        _mark_task_name(f"{spec.class_name}.__init__")
        try:
            core.actor_id = spec.actor_id
            core.actor_name = spec.name
            core.actor_placement_group = creation.placement_group_id
            core.actor_handle_meta = pickle.loads(spec.handle_meta) if spec.handle_meta else None
            cls = core.load_function(creation.function_id)
            args, kwargs = self._load_args(creation)
            if core._pending_borrows:
                core.flush_borrows()
            instance = cls(*args, **kwargs)
            self.actor = ActorHost(self, instance, spec, list(request.gpu_ids))
            box.append(pb.StartActorReply(ok=True, pid=os.getpid()))
        except BaseException as e:  # noqa: BLE001 - the error goes to every caller
            core.actor_id = None
            box.append(pb.StartActorReply(ok=False, error=self._error_bytes(creation, e)))
        finally:
            core.current.task = None
            reply = box[0] if box else None
            core.task_events.record(creation.task_id, creation.attempt_number,
                                    FINISHED if reply is not None and reply.ok else FAILED,
                                    reply.error if reply is not None and not reply.ok else None)
            sys.stdout.flush()
            sys.stderr.flush()
            _mark_task_name(spec.class_name)
            done.set()

    def _check_actor_call(self, spec: pb.TaskSpec, host: Any) -> pb.TaskResult | None:
        """An immediate error result for a call this actor cannot take, else None."""
        if self._exiting:
            return self._exit_result(spec, after=True)
        if spec.actor_id != host.actor_id:
            return self._error_result(spec, RuntimeError(
                f"this worker hosts actor {host.actor_id.hex()}, not {spec.actor_id.hex()}"))
        problem = host.check_group(spec)
        if problem is not None:
            return self._error_result(spec, ValueError(problem))
        return None

    def _exit_result(self, spec: pb.TaskSpec, after: bool = False) -> pb.TaskResult:
        from ..exceptions import ActorDiedError
        cause = ("the actor exited via exit_actor() before this call ran" if after else
                 "the actor exited intentionally via exit_actor() in this call")
        err = ActorDiedError(self.core.actor_id.hex() if self.core.actor_id else "", cause)
        data = serialization.to_bytes(serialization.serialize(err))
        return _failed_result(spec, data, actor_exiting=not after)

    def _finish_exit(self) -> None:
        """exit_actor(): the caller has its answer; have the control service bury us."""
        core = self.core

        def leave() -> None:
            time.sleep(0.05)  # let the stream carry the last result out
            try:
                core.gcs.KillActor(pb.KillActorRequest(
                    actor_id=core.actor_id, no_restart=True,
                    reason="it exited intentionally via exit_actor()"), timeout=10)
            finally:
                time.sleep(1.0)
                os._exit(0)

        threading.Thread(target=leave, daemon=True, name="ember-actor-exit").start()

    def _callable(self, spec: pb.TaskSpec) -> Any:
        if not spec.actor_id:
            return self.core.load_function(spec.function_id)
        host = self.actor
        if host is None:
            raise RuntimeError("this worker hosts no actor (it was not created here)")
        builtin = host.builtin(spec.method_name)
        if builtin is not None:
            return builtin
        return getattr(host.instance, spec.method_name)

    def _prepare_call(self, spec: pb.TaskSpec) -> pb.TaskResult | tuple[Any, list, dict]:
        """What every call does before running, sync or async: ``(fn, args, kwargs)``.

        Returns the call's result instead if the actor has already exited (the
        call must not run). Registers this worker as a borrower of the refs found
        in the arguments before the call runs, so their owners keep them. Raises
        what resolving the function or loading the arguments raised: the caller
        makes that the call's error.
        """
        if self._exiting:
            return self._exit_result(spec, after=True)
        fn = self._callable(spec)
        args, kwargs = self._load_args(spec)
        if self.core._pending_borrows:
            self.core.flush_borrows()
        return fn, args, kwargs

    def _execute(self, spec: pb.TaskSpec, stream: _Stream) -> pb.TaskResult:
        from .actor_host import ActorExit
        core = self.core
        running = _Running(spec, stream)
        is_actor_call = bool(spec.actor_id)
        on_main = threading.get_ident() == self._main_thread_id
        saved_env = {} if is_actor_call else _apply_env(spec)
        if on_main:
            # An actor's output is prefixed with its class, as in Ray: (Counter pid=..).
            _mark_task_name(spec.name.rsplit(".", 1)[0] if is_actor_call else spec.name,
                            spec.task_id)
        start = time.perf_counter()
        if on_main:
            with self._lock:
                self._running = running
        if is_actor_call and self.actor is not None:
            self._attach_actor_resources(spec)
        core.current.task = running
        core.task_events.record(spec.task_id, spec.attempt_number, RUNNING)
        try:
            call = self._prepare_call(spec)
            if isinstance(call, pb.TaskResult):
                return call
            fn, args, kwargs = call
            if spec.num_returns == -1:
                return self._run_generator(spec, fn, args, kwargs, stream, start)
            value = fn(*args, **kwargs)
            if inspect.iscoroutine(value):
                import asyncio
                value = asyncio.run(value)
            result = self._returns(spec, value)
        except ActorExit:
            self._exiting = True
            return self._exit_result(spec)
        except BaseException as e:  # noqa: BLE001 - every failure becomes the task's error
            if running.cancelled:
                # The interrupt may have landed anywhere (say, halfway through an
                # import, leaving a module half-initialised for every later task):
                # this worker is not trusted again. It answers, then exits.
                result = self._cancelled_result(spec)
                result.worker_exiting = True
                return result
            result = self._error_result(spec, e)
        finally:
            if on_main:
                with self._lock:
                    self._running = None
            core.current.task = None
            _restore_env(saved_env)
            if on_main:
                sys.stdout.flush()
                sys.stderr.flush()
        result.exec_seconds = time.perf_counter() - start
        return result

    async def _execute_async(self, spec: pb.TaskSpec, stream: _Stream) -> pb.TaskResult:
        """Run one call of an async actor on its event loop."""
        import asyncio

        from .actor_host import ActorExit, call_async
        core = self.core
        core.current.task = _Running(spec, stream)   # a ContextVar: this asyncio task only
        self._attach_actor_resources(spec)
        core.task_events.record(spec.task_id, spec.attempt_number, RUNNING)
        start = time.perf_counter()
        try:
            if any(arg.is_shm for arg in spec.args) or core._pending_borrows:
                # Loading may pull an object from another node or call an owner:
                # do it off the event loop so the actor's other calls keep going.
                loop = asyncio.get_running_loop()
                call = await loop.run_in_executor(None, self._prepare_call, spec)
            else:
                call = self._prepare_call(spec)
            if isinstance(call, pb.TaskResult):
                return call
            fn, args, kwargs = call
            if spec.num_returns == -1:
                return await self._run_async_generator(spec, fn, args, kwargs, stream)
            result = self._returns(spec, await call_async(fn, args, kwargs))
        except ActorExit:
            self._exiting = True
            return self._exit_result(spec)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure becomes the call's error
            result = self._error_result(spec, e)
        result.exec_seconds = time.perf_counter() - start
        return result

    async def _run_async_generator(self, spec, fn, args, kwargs, stream: _Stream) -> pb.TaskResult:
        import asyncio
        index = 0
        try:
            gen = fn(*args, **kwargs)
            if inspect.isasyncgen(gen):
                async for value in gen:
                    self._emit_item(spec, stream, index, value)
                    index += 1
            elif inspect.isgenerator(gen):
                for value in gen:
                    self._emit_item(spec, stream, index, value)
                    index += 1
            else:
                raise TypeError(f"{spec.name} was declared num_returns='streaming' but is not "
                                "a generator: use yield, or drop num_returns")
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001
            self._emit_error_item(spec, stream, index, e)
            index += 1
        return pb.TaskResult(task_id=spec.task_id, generator_done=True,
                             num_generator_items=index)

    def _attach_actor_resources(self, spec: pb.TaskSpec) -> None:
        """An actor call runs with the actor's resources, GPUs and placement group."""
        host = self.actor
        if host is None:
            return
        if (host.gpu_ids or host.resources) and not spec.resources:
            spec.gpu_ids.extend(host.gpu_ids)
            spec.resources.update(host.resources)
        creation = host.spec.creation
        if creation.placement_group_id and not spec.placement_group_id:
            spec.placement_group_id = creation.placement_group_id
            spec.capture_child_tasks = creation.capture_child_tasks

    def _load_args(self, spec: pb.TaskSpec) -> tuple[list, dict]:
        values = []
        for arg in spec.args:
            if arg.is_shm:
                # Its owner rebuilds it if every copy is gone (object_recovery.py).
                view = self.core.recovery.arg_view(arg, spec)
                values.append(serialization.deserialize(view))
            else:
                values.append(serialization.deserialize(arg.data))
        n_kw = len(spec.kwarg_names)
        if not n_kw:
            return values, {}
        return values[:-n_kw], dict(zip(spec.kwarg_names, values[-n_kw:]))

    def _returns(self, spec: pb.TaskSpec, value: Any) -> pb.TaskResult:
        result = pb.TaskResult(task_id=spec.task_id)
        n = spec.num_returns
        if n == 0:
            return result
        if n == 1:
            values = [value]
        else:
            if not isinstance(value, (tuple, list)) or len(value) != n:
                raise ValueError(
                    f"task {spec.name} was declared with num_returns={n} but returned "
                    f"{type(value).__name__}"
                    + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else "")
                    + f": return a tuple of exactly {n} values or change num_returns")
            values = list(value)
        for i, v in enumerate(values):
            self._add_return(result, spec, ids.object_id_for(spec.task_id, i + 1), v)
        return result

    def _add_return(self, result: pb.TaskResult, spec: pb.TaskSpec, object_id: bytes,
                    value: Any) -> None:
        ser = serialization.serialize(value)
        data, size = self.core.put_serialized(object_id, ser, owner=spec.owner)
        ret = result.returns.add(object_id=object_id, in_shm=data is None, size=size)
        if data is not None:
            ret.data = data
        else:
            ret.locations.append(self.core.location)
        if ser.contained_refs:
            # Keep the refs alive until the caller has registered as a borrower.
            self._pins.setdefault(spec.task_id, []).extend(ser.contained_refs)
            for ref in ser.contained_refs:
                ret.contained.add(object_id=ref._id, owner=pb.Address(
                    ip=ref._owner or self.core.address))

    def _run_generator(self, spec, fn, args, kwargs, stream: _Stream, start: float) -> pb.TaskResult:
        index = 0
        try:
            gen = fn(*args, **kwargs)
            if not inspect.isgenerator(gen):
                raise TypeError(f"{spec.name} was declared num_returns='streaming' but is not a "
                                "generator function: use yield, or drop num_returns")
            for value in gen:
                self._emit_item(spec, stream, index, value)
                index += 1
        except BaseException as e:  # noqa: BLE001
            self._emit_error_item(spec, stream, index, e)
            index += 1
        return pb.TaskResult(task_id=spec.task_id, generator_done=True,
                             num_generator_items=index)

    def _emit_item(self, spec: pb.TaskSpec, stream: _Stream, index: int, value: Any) -> None:
        item = pb.TaskResult(task_id=spec.task_id, generator_item=True, generator_index=index)
        self._add_return(item, spec, ids.object_id_for(spec.task_id, index + 1), value)
        stream.out.put(item)

    def _emit_error_item(self, spec: pb.TaskSpec, stream: _Stream, index: int,
                         exc: BaseException) -> None:
        item = pb.TaskResult(task_id=spec.task_id, generator_item=True, generator_index=index)
        err = self._error_bytes(spec, exc)
        item.returns.add(object_id=ids.object_id_for(spec.task_id, index + 1), data=err,
                         is_error=True, size=len(err))
        stream.out.put(item)

    def _error_bytes(self, spec: pb.TaskSpec, exc: BaseException) -> bytes:
        from ..exceptions import TaskError
        err = TaskError.from_exception(exc, spec.name, os.getpid())
        try:
            return serialization.to_bytes(serialization.serialize(err))
        except Exception:  # noqa: BLE001 - the cause itself is not picklable
            err = TaskError(spec.name, getattr(err, "traceback_str", str(exc)), None, os.getpid())
            return serialization.to_bytes(serialization.serialize(err))

    def _error_result(self, spec: pb.TaskSpec, exc: BaseException) -> pb.TaskResult:
        return _failed_result(spec, self._error_bytes(spec, exc))

    # ------------------------------------------------------------ blocking
    def set_blocked(self, blocked: bool) -> None:
        """Lend this worker's CPU back while it waits in get/wait (no deadlock on nesting)."""
        if blocked == self._blocked or threading.get_ident() != self._main_thread_id:
            return
        self._blocked = blocked
        core = self.core
        try:
            core.node_manager.SetBlocked(pb.BlockedRequest(worker_id=core.worker_id,
                                                           blocked=blocked), timeout=10)
        except Exception:  # noqa: BLE001 - node manager gone: we are exiting anyway
            pass


def _failed_result(spec: pb.TaskSpec, error: bytes, *, cancelled: bool = False,
                   actor_exiting: bool = False) -> pb.TaskResult:
    """A result whose every return slot holds ``error`` (a streaming call ends with it)."""
    result = pb.TaskResult(task_id=spec.task_id, cancelled=cancelled,
                           actor_exiting=actor_exiting)
    for i in range(max(spec.num_returns, 1)):
        result.returns.add(object_id=ids.object_id_for(spec.task_id, i + 1), data=error,
                           is_error=True, size=len(error))
    if spec.num_returns == -1:
        result.generator_done = True
    return result


_GPU_ENV = "CUDA_VISIBLE_DEVICES"


def _apply_env(spec: pb.TaskSpec) -> dict[str, str | None]:
    changes = dict(spec.env_vars)
    if spec.gpu_ids:
        changes[_GPU_ENV] = ",".join(spec.gpu_ids)
    elif spec.resources.get("GPU", 0) == 0 and _GPU_ENV not in changes:
        # A CPU task must not grab a GPU that another task was assigned.
        changes[_GPU_ENV] = ""
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_marks = TaskMarks()


def _mark_task_name(name: str, task_id: bytes = b"") -> None:
    """Say whose output follows (task_marks.py: at once only when the name changes)."""
    _marks.mark(name, task_id)

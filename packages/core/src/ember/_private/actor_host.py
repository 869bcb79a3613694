"""Worker-side home of an actor: its instance and how its calls run.

Three execution models, chosen when the actor is created (Ray's rules):

* default (max_concurrency 1, no concurrency groups, no ``async def``): calls
  run one at a time on the worker's main thread, in arrival order, like tasks;
* threaded (``max_concurrency > 1`` or concurrency groups on a sync actor): one
  thread pool per concurrency group, sized by its limit;
* async (any ``async def`` method): one event loop on its own thread; each
  concurrency group is a semaphore (default group: ``max_concurrency``, 1000
  unless set).

Results go back on the stream of the caller that sent the call.
"""
from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .protos import ember_pb2 as pb

MAIN, THREADS, ASYNC = "main", "threads", "async"


class ActorExit(SystemExit):
    """Raised by ``ember.actor.exit_actor()``; the executor turns it into a clean exit."""


class ActorHost:
    def __init__(self, executor: Any, instance: Any, spec: pb.ActorSpec,
                 gpu_ids: list[str]) -> None:
        self.executor = executor
        self.instance = instance
        self.spec = spec
        self.actor_id = spec.actor_id
        self.gpu_ids = list(gpu_ids)
        self.resources = dict(spec.resources)
        groups = {name: int(n) for name, n in spec.concurrency_groups.items()}
        default = max(1, spec.max_concurrency)
        self._limits = {"": default, **groups}
        if spec.is_async:
            self.mode = ASYNC
        elif default > 1 or groups:
            self.mode = THREADS
        else:
            self.mode = MAIN
        self._lock = threading.Lock()
        self._futures: dict[bytes, tuple[Future, pb.TaskSpec, Any]] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._atasks: dict[bytes, asyncio.Task] = {}
        self._precancelled: set[bytes] = set()
        self._dispatched: set[bytes] = set()   # handed to the loop, not started
        self._sems: dict[str, asyncio.Semaphore] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        if self.mode == THREADS:
            self._pools = {name: ThreadPoolExecutor(max_workers=n, thread_name_prefix=
                                                    f"ember-actor-{name or 'default'}")
                           for name, n in self._limits.items()}
        elif self.mode == ASYNC:
            self.loop = asyncio.new_event_loop()
            ready = threading.Event()
            threading.Thread(target=self._run_loop, args=(ready,), daemon=True,
                             name="ember-actor-loop").start()
            ready.wait()

    def _run_loop(self, ready: threading.Event) -> None:
        assert self.loop is not None
        asyncio.set_event_loop(self.loop)
        self._sems = {name: asyncio.Semaphore(n) for name, n in self._limits.items()}
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def builtin(self, name: str) -> Any:
        """Methods every actor has (Ray's names): readiness, termination, run-a-function."""
        if name == "__ray_ready__":
            return lambda: True
        if name == "__ray_terminate__":
            def terminate() -> None:
                raise ActorExit(0)
            return terminate
        if name == "__ray_call__":
            return lambda fn, *args, **kwargs: fn(self.instance, *args, **kwargs)
        return None

    # ------------------------------------------------------------ dispatch
    def check_group(self, spec: pb.TaskSpec) -> str | None:
        """An error message if the call names a concurrency group the actor lacks."""
        group = spec.concurrency_group
        if group and group not in self._limits:
            defined = sorted(g for g in self._limits if g) or ["(none)"]
            return (f"{spec.name} asks for concurrency group {group!r}, which actor "
                    f"{self.spec.class_name} does not define (it has {', '.join(defined)}): "
                    "add it to concurrency_groups= on the actor class or fix the name")
        return None

    def dispatch(self, spec: pb.TaskSpec, stream: Any) -> None:
        """Start a call on a thread pool or the event loop (not the main thread)."""
        group = spec.concurrency_group
        if self.mode == THREADS:
            fut = self._pools[group].submit(self._run_sync, spec, stream)
            with self._lock:
                self._futures[spec.task_id] = (fut, spec, stream)
            task_id = spec.task_id
            fut.add_done_callback(lambda _f: self._forget(task_id))
        else:
            assert self.loop is not None
            with self._lock:
                self._dispatched.add(spec.task_id)
            asyncio.run_coroutine_threadsafe(self._run_async(spec, stream, group), self.loop)

    def _forget(self, task_id: bytes) -> None:
        with self._lock:
            self._futures.pop(task_id, None)

    def _run_sync(self, spec: pb.TaskSpec, stream: Any) -> None:
        result = self.executor._execute(spec, stream)
        self.executor.deliver(spec, result, stream)

    async def _run_async(self, spec: pb.TaskSpec, stream: Any, group: str) -> None:
        executor = self.executor
        task_id = spec.task_id
        current = asyncio.current_task()
        assert current is not None
        self._atasks[task_id] = current
        with self._lock:
            self._dispatched.discard(task_id)
        try:
            if task_id in self._precancelled:
                self._precancelled.discard(task_id)
                raise asyncio.CancelledError
            async with self._sems[group]:
                result = await executor._execute_async(spec, stream)
        except asyncio.CancelledError:
            result = executor._cancelled_result(spec)
        finally:
            self._atasks.pop(task_id, None)
        executor.deliver(spec, result, stream)

    # ------------------------------------------------------------ cancel
    def cancel(self, task_id: bytes) -> None:
        """Cancel a call that is not on the main thread.

        A threaded call still waiting for a thread is dropped and answered as
        cancelled; one already running cannot be interrupted safely and runs
        on. An async call is cancelled at its next ``await``.
        """
        if self.mode == THREADS:
            with self._lock:
                entry = self._futures.get(task_id)
            if entry is not None and entry[0].cancel():
                self.executor.deliver(entry[1], self.executor._cancelled_result(entry[1]),
                                      entry[2])
        elif self.mode == ASYNC and self.loop is not None:
            self.loop.call_soon_threadsafe(self._cancel_in_loop, task_id)

    def _cancel_in_loop(self, task_id: bytes) -> None:
        task = self._atasks.get(task_id)
        if task is not None:
            task.cancel()
            return
        with self._lock:
            waiting = task_id in self._dispatched
        if waiting:   # sent to the loop, not started yet; a finished call needs nothing
            self._precancelled.add(task_id)


async def call_async(fn: Any, args: list, kwargs: dict) -> Any:
    """Call an actor method on the event loop, awaiting it if it is a coroutine."""
    value = fn(*args, **kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value

"""``Pool``: a drop-in ``multiprocessing.Pool`` whose processes are Ember actors.

>>> from ember.util.multiprocessing import Pool
>>> def square(x):
...     return x * x
>>> with Pool(processes=2) as pool:
...     pool.map(square, range(5))
[0, 1, 4, 9, 16]

How it works: the pool starts one actor per process slot (each runs
``initializer(*initargs)`` once, in its own worker process). Work is cut into
chunks (``chunksize`` items each, one actor call per chunk) that wait in the
pool, in submission order, until an actor is free: each actor runs one chunk at
a time, so a slow chunk never holds up others queued behind it. A background
thread of the driver hands out chunks and collects results; it is event-driven
(``ObjectRef.future()`` callbacks, no polling) and exits whenever the pool is
idle. Only the public ``ember`` API is used.

Differences from the standard library, all deliberate:

* A function that raises fails its whole chunk (as in ``multiprocessing``) and
  the error re-raises from ``get()``/iteration as an ``ember.exceptions.TaskError``
  that is also an instance of the original exception class, with the remote
  traceback in its message.
* An actor that dies (say the function called ``os._exit``) fails its chunk
  with an ``ActorError`` and is replaced; the standard library would hang.
* An initializer that raises makes ``Pool(...)`` raise instead of restarting
  workers forever.
* ``imap``/``imap_unordered`` read their input lazily and keep at most a few
  chunks per process ahead of the consumer while the pool is running, so huge or
  endless iterables work (``close()`` lifts the limit, so ``join()`` still runs
  everything).
* ``terminate()`` fails every unfinished result with ``RuntimeError`` instead of
  leaving ``get()`` to block forever.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import queue
import threading
import warnings
from multiprocessing import TimeoutError
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import ember

from ._results import (_CLOSE, _ONE, _RUN, _STAR, _TERMINATE, ApplyResult, AsyncResult,
                       IMapIterator, IMapUnorderedIterator, MapResult, _Apply, _Chunk,
                       _Job, _check_timeout)

if TYPE_CHECKING:
    from ember import ObjectRef

__all__ = ["Pool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator",
           "IMapUnorderedIterator", "TimeoutError"]

logger = logging.getLogger(__name__)


class _PoolActor:
    """One process slot of a Pool. Runs the initializer once, then chunks."""

    def __init__(self, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
        if initializer is not None:
            initializer(*initargs)

    def ping(self) -> None:
        return None

    def run_batch(self, func: Callable[..., Any], mode: int, items: list) -> list:
        if mode == _ONE:
            return [func(x) for x in items]
        if mode == _STAR:
            return [func(*args) for args in items]
        return [func(*args, **kwds) for args, kwds in items]


_actor_cls: Any = None


def _actor_class() -> Any:
    # Made remote on first use so that importing this module stays cheap.
    # num_cpus=0, as in Ray: the pool's size, not the scheduler, bounds parallelism.
    global _actor_cls
    if _actor_cls is None:
        _actor_cls = ember.remote(num_cpus=0)(_PoolActor)
    return _actor_cls


class _Worker:
    __slots__ = ("actor", "busy", "tasks")

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.busy = False   # running a chunk (one at a time)
        self.tasks = 0      # chunks handed to this actor, for maxtasksperchild


class Pool:
    """A pool of actor processes with the ``multiprocessing.Pool`` API.

    Args:
        processes: number of actors; defaults to the cluster's CPU count. Must not
            exceed it.
        initializer: called as ``initializer(*initargs)`` once in each actor.
        initargs: arguments for ``initializer``.
        maxtasksperchild: replace an actor after it has run this many chunks.
        context: accepted for compatibility and ignored (a warning is logged).
        ray_address: cluster to connect to if Ember is not initialized yet (also
            ``"local"`` for a new local cluster); by default ``ember.init()`` is
            called, which honours ``EMBER_ADDRESS``.
        ray_remote_args: options for the actors (as in ``ray.util.multiprocessing``).

    Using the pool after ``close()``/``terminate()`` raises ``ValueError("Pool not
    running")``. As a context manager it calls ``terminate()`` on exit, like
    ``multiprocessing``.

    >>> with Pool(2, initializer=print, initargs=("ready",)) as pool:
    ...     pool.starmap(pow, [(2, 3), (3, 2)])
    [8, 9]
    """

    def __init__(self, processes: int | None = None,
                 initializer: Callable[..., Any] | None = None,
                 initargs: Iterable[Any] | None = None,
                 maxtasksperchild: int | None = None, context: Any = None,
                 ray_address: str | None = None,
                 ray_remote_args: Mapping[str, Any] | None = None) -> None:
        self._state = _TERMINATE  # until started, so __del__ and terminate are no-ops
        if processes is not None and (isinstance(processes, bool)
                                      or not isinstance(processes, int)):
            raise TypeError(f"processes must be an int or None, got {type(processes).__name__}")
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if maxtasksperchild is not None and (
                isinstance(maxtasksperchild, bool) or not isinstance(maxtasksperchild, int)
                or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if ray_remote_args is not None and not isinstance(ray_remote_args, Mapping):
            raise TypeError(f"ray_remote_args must be a dict of actor options, got "
                            f"{type(ray_remote_args).__name__}")
        if context is not None:
            logger.warning("Pool(context=...) is ignored: Ember starts the pool's processes "
                           "as actors")
        self._initializer = initializer
        self._initargs = tuple(initargs) if initargs is not None else ()
        self._maxtasksperchild = maxtasksperchild
        self._remote_args = dict(ray_remote_args or {})

        self._lock = threading.Lock()
        self._processes = self._connect(processes, ray_address)
        self._jobs: collections.deque[_Job] = collections.deque()  # chunks left to hand out
        self._inflight: dict[ObjectRef[Any], tuple[_Worker, _Chunk]] = {}
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()  # finished refs, wake-ups
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()  # closed or terminated, and all work done
        self._stopping: list[ObjectRef[Any]] = []  # graceful actor exits, for join()

        self._workers = [self._new_worker() for _ in range(self._processes)]
        try:
            # Surface a failing initializer (or bad ray_remote_args) here.
            ember.get([w.actor.ping.remote() for w in self._workers])
        except BaseException as e:
            for w in self._workers:
                _kill(w.actor)
            cause = getattr(e, "cause_error", None)  # ActorDiedError: what __init__ raised
            if isinstance(cause, ember.exceptions.TaskError):
                raise cause.as_instanceof_cause() from e
            raise
        self._state = _RUN

    def _connect(self, processes: int | None, address: str | None) -> int:
        if not ember.is_initialized():
            if address is None and not os.environ.get("EMBER_ADDRESS"):
                ember.init(num_cpus=processes)
            elif address == "local":
                ember.init(num_cpus=processes)
            else:
                ember.init(address=address)
        cpus = int(ember.cluster_resources().get("CPU", 0))
        if processes is None:
            processes = cpus
            if processes < 1:
                raise ValueError("Processes in the pool must be >0: the cluster has no CPUs")
        if processes > cpus:
            raise ValueError(f"Tried to start a pool with {processes} processes on a cluster "
                             f"with only {cpus} CPUs")
        return processes

    def _new_worker(self) -> _Worker:
        cls = _actor_class()
        if self._remote_args:
            cls = cls.options(**self._remote_args)
        return _Worker(cls.remote(self._initializer, self._initargs))

    def __repr__(self) -> str:
        return f"<ember.util.multiprocessing.Pool state={self._state} pool_size={self._processes}>"

    def __reduce__(self) -> Any:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    def __del__(self) -> None:
        # Warn only, as the stdlib does: the GC may run this in any thread, even
        # one holding Ember's locks, so it must not call into the runtime. The
        # actors go anyway: dropping their last handles stops them.
        if getattr(self, "_state", None) == _RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning,
                          source=self)

    def _check_running(self) -> None:
        if self._state != _RUN:
            raise ValueError("Pool not running")

    # ------------------------------------------------------------------ public API
    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (),
              kwds: Mapping[str, Any] | None = None, *,
              kwargs: Mapping[str, Any] | None = None) -> Any:
        """Run ``func(*args, **kwds)`` in one of the actors and return its result.

        ``kwargs=`` is accepted as Ray's spelling of ``kwds=``.

        >>> pool.apply(divmod, (7, 2))
        (3, 1)
        """
        return self.apply_async(func, args, kwds, kwargs=kwargs).get()

    def apply_async(self, func: Callable[..., Any], args: Iterable[Any] = (),
                    kwds: Mapping[str, Any] | None = None,
                    callback: Callable[[Any], Any] | None = None,
                    error_callback: Callable[[BaseException], Any] | None = None, *,
                    kwargs: Mapping[str, Any] | None = None) -> ApplyResult:
        """Start ``func(*args, **kwds)`` in one of the actors; return an ``AsyncResult``.

        ``callback(result)`` or ``error_callback(exception)`` runs in the pool's
        background thread when the call finishes; keep it short.

        >>> r = pool.apply_async(divmod, (7, 2))
        >>> r.get(timeout=10)
        (3, 1)
        """
        self._check_running()
        _check_callable(func)
        if kwds is not None and kwargs is not None:
            raise TypeError("pass keyword arguments as kwds= or kwargs=, not both")
        keywords = dict(kwds if kwds is not None else kwargs or {})
        job = _Apply(self, func, tuple(args or ()), keywords, callback, error_callback)
        self._submit(job)
        return job

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any],
            chunksize: int | None = None) -> list[Any]:
        """``[func(x) for x in iterable]``, run in chunks across the actors.

        >>> pool.map(abs, [-1, -2, 3])
        [1, 2, 3]
        """
        return self._map_async(func, iterable, chunksize, _ONE, None, None).get()

    def map_async(self, func: Callable[[Any], Any], iterable: Iterable[Any],
                  chunksize: int | None = None, callback: Callable[[Any], Any] | None = None,
                  error_callback: Callable[[BaseException], Any] | None = None) -> MapResult:
        """Like :meth:`map` but returns an ``AsyncResult`` whose ``get()`` is the list.

        ``callback(list_of_results)`` runs once if every chunk succeeds, otherwise
        ``error_callback(exception)`` runs once, with the first error.

        >>> pool.map_async(abs, [-1, -2]).get(timeout=10)
        [1, 2]
        """
        return self._map_async(func, iterable, chunksize, _ONE, callback, error_callback)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[Any]:
        """``[func(*args) for args in iterable]``, run in chunks across the actors.

        >>> pool.starmap(pow, [(2, 3), (3, 2)])
        [8, 9]
        """
        return self._map_async(func, iterable, chunksize, _STAR, None, None).get()

    def starmap_async(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                      chunksize: int | None = None,
                      callback: Callable[[Any], Any] | None = None,
                      error_callback: Callable[[BaseException], Any] | None = None) -> MapResult:
        """Like :meth:`starmap` but returns an ``AsyncResult``.

        >>> pool.starmap_async(pow, [(2, 3)]).get(timeout=10)
        [8]
        """
        return self._map_async(func, iterable, chunksize, _STAR, callback, error_callback)

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any],
             chunksize: int = 1) -> IMapIterator:
        """Lazy :meth:`map`: an iterator over the results, in input order.

        The input is read as chunks are handed out, a few chunks ahead of what
        you consume.

        >>> for y in pool.imap(abs, range(-3, 0)):
        ...     print(y)
        """
        self._check_running()
        _check_callable(func)
        job = IMapIterator(self, func, iterable, _check_chunksize(chunksize))
        self._submit(job)
        return job

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any],
                       chunksize: int = 1) -> IMapIterator:
        """Like :meth:`imap`, but results come in the order they finish.

        >>> sorted(pool.imap_unordered(abs, [-2, -1], chunksize=1))
        [1, 2]
        """
        self._check_running()
        _check_callable(func)
        job = IMapUnorderedIterator(self, func, iterable, _check_chunksize(chunksize))
        self._submit(job)
        return job

    def close(self) -> None:
        """Accept no more work; the actors exit once the submitted work is done.

        >>> pool.close(); pool.join()
        """
        with self._lock:
            if self._state != _RUN:
                return
            self._state = _CLOSE
            if self._jobs or self._thread is not None:
                self._kick()  # imap jobs held back for their consumer may run now
            else:
                self._retire_all()

    def terminate(self) -> None:
        """Stop at once: kill the actors and fail every unfinished result.

        >>> pool.terminate()
        """
        with self._lock:
            if self._state == _TERMINATE:
                return
            self._state = _TERMINATE
            jobs = set(self._jobs) | {chunk.job for _, chunk in self._inflight.values()}
            self._jobs.clear()
            self._inflight.clear()
            workers, self._workers = self._workers, []
            self._events.put(None)  # wake the dispatcher so that it exits
        for w in workers:
            _kill(w.actor)
        error = RuntimeError("the Pool was terminated before this result was ready")
        for job in jobs:
            job._abort(error)
        self._finished.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a closed pool's work to finish and its actors to exit.

        ``ValueError`` if the pool is still running (call ``close()`` or
        ``terminate()`` first).

        >>> pool.close(); pool.join()
        """
        if self._state == _RUN:
            raise ValueError("Pool is still running")
        self._finished.wait(_check_timeout(timeout))
        with self._lock:
            stopping, self._stopping = self._stopping, []
        if stopping:
            ember.wait(stopping, num_returns=len(stopping), timeout=timeout)

    # ------------------------------------------------------------------ internals
    def _map_async(self, func: Callable[..., Any], iterable: Iterable[Any],
                   chunksize: int | None, mode: int,
                   callback: Callable[[Any], Any] | None,
                   error_callback: Callable[[BaseException], Any] | None) -> MapResult:
        self._check_running()
        _check_callable(func)
        items = list(iterable)
        if chunksize is None:
            # As multiprocessing: about four chunks per process.
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += 1 if extra else 0
            chunksize = max(chunksize, 1)
        else:
            chunksize = _check_chunksize(chunksize)
        job = MapResult(self, func, mode, items, chunksize, callback, error_callback)
        if items:
            self._submit(job)
        return job

    def _submit(self, job: _Job) -> None:
        with self._lock:
            self._check_running()
            self._jobs.append(job)
            self._kick()

    def _wake(self) -> None:
        """An imap consumer took a chunk: its job may hand out more."""
        with self._lock:
            if self._state != _TERMINATE and self._jobs:
                self._kick()

    def _kick(self) -> None:
        """Make the dispatcher look at the jobs again (called with the lock held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._dispatch_loop, daemon=True,
                                            name="ember-pool-dispatcher")
            self._thread.start()
        else:
            self._events.put(None)

    def _dispatch_loop(self) -> None:
        try:
            self._dispatch_until_idle()
        except BaseException:
            # A bug here must not leave callers waiting forever.
            logger.exception("the Pool's dispatcher thread failed; terminating the pool")
            with self._lock:
                self._thread = None
            self.terminate()

    def _dispatch_until_idle(self) -> None:
        while True:
            self._dispatch()
            with self._lock:
                if self._state == _TERMINATE:
                    self._thread = None
                    return
                if not self._inflight and not self._runnable_job():
                    # Idle (or only throttled imap jobs, which wake us when consumed):
                    # exit, so that an unused pool holds no thread.
                    self._thread = None
                    if self._state == _CLOSE and not self._jobs:
                        self._retire_all()
                    return
            event = self._events.get()
            if event is not None:
                self._complete(*event)

    def _runnable_job(self) -> _Job | None:
        return next((job for job in self._jobs if not job._throttled()), None)

    def _dispatch(self) -> None:
        """Hand chunks to free actors while there are both."""
        while True:
            with self._lock:
                if self._state == _TERMINATE:
                    return
                worker = next((w for w in self._workers if not w.busy), None)
                job = self._runnable_job()
                if worker is None or job is None:
                    return
                worker.busy = True
            # Outside the lock: imap reads the user's iterable here.
            chunk = job._next_chunk()
            if chunk is None:
                with self._lock:
                    worker.busy = False
                    if job in self._jobs:
                        self._jobs.remove(job)
                continue
            try:
                ref = worker.actor.run_batch.remote(chunk.func, chunk.mode, chunk.items)
            except Exception as e:  # noqa: BLE001 - e.g. func cannot be pickled
                with self._lock:
                    worker.busy = False
                chunk.job._chunk_done(chunk.index, False, e)
                continue
            with self._lock:
                if self._state == _TERMINATE:
                    return
                worker.tasks += 1
                self._inflight[ref] = (worker, chunk)
            events = self._events
            # The future carries the value (or error), already deserialized.
            ref.future().add_done_callback(lambda f, r=ref: events.put((r, f)))

    def _complete(self, ref: ObjectRef[Any], future: concurrent.futures.Future) -> None:
        with self._lock:
            entry = self._inflight.pop(ref, None)
        if entry is None:
            return  # terminated meanwhile
        worker, chunk = entry
        error = future.exception()
        ok = error is None
        value = future.result() if ok else error
        with self._lock:
            if self._state == _TERMINATE:
                return
            worker.busy = False
            # The pool's actors are not restarted (max_restarts=0), so an unavailable
            # one is as good as dead: kill it to be sure, and start a fresh one.
            # (An ActorError that the function itself raised arrives as a TaskError.)
            exc = ember.exceptions
            lost = (not ok and isinstance(value, exc.ActorError)
                    and not isinstance(value, exc.TaskError))
            spent = (self._maxtasksperchild is not None
                     and worker.tasks >= self._maxtasksperchild)
            if lost:
                _kill(worker.actor)
            elif spent:
                self._stop_gracefully(worker.actor)
            if lost or spent:
                self._workers[self._workers.index(worker)] = self._new_worker()
        chunk.job._chunk_done(chunk.index, ok, value)

    def _retire_all(self) -> None:
        """Let every actor exit (called with the lock held, with no work in flight)."""
        workers, self._workers = self._workers, []
        for w in workers:
            self._stop_gracefully(w.actor)
        self._finished.set()

    def _stop_gracefully(self, actor: Any) -> None:
        terminate = getattr(actor, "__ray_terminate__", None)
        if terminate is not None:
            try:
                self._stopping.append(terminate.remote())
                return
            except Exception:  # noqa: BLE001 - fall back to a kill
                pass
        _kill(actor)


def _kill(actor: Any) -> None:
    try:
        ember.kill(actor)
    except Exception:  # noqa: BLE001 - already dead, or the cluster is gone
        pass


def _check_callable(func: Any) -> None:
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")


def _check_chunksize(chunksize: Any) -> int:
    if isinstance(chunksize, bool) or not isinstance(chunksize, int):
        raise TypeError(f"chunksize must be an int, got {type(chunksize).__name__}")
    if chunksize < 1:
        raise ValueError(f"Chunksize must be 1+, not {chunksize}")
    return chunksize

"""The jobs behind ``Pool`` and the result objects they hand back.

Holds ``_Job`` (work submitted to a pool, cut into ``_Chunk``s that the pool's
dispatcher thread hands to the actors) and its kinds: ``ApplyResult`` (alias
``AsyncResult``) with ``_Apply`` and ``MapResult`` for ``apply_async`` and
``map_async``/``starmap_async``, and the ``IMapIterator``/``IMapUnorderedIterator``
iterators of ``imap``/``imap_unordered``; plus the constants and the timeout
check they share with the pool.

It is separate from ``pool.py`` so that each module does one thing: ``pool.py``
runs the actors and hands out chunks, this module turns finished chunks into
results for the caller. ``pool.py`` imports this module, never the other way
round (``Pool`` is needed here only for type checking), so there is no import
cycle. Private: import the public names from ``ember.util.multiprocessing`` or
``ember.util.multiprocessing.pool``.
"""
from __future__ import annotations

import collections
import itertools
import logging
import numbers
import threading
from multiprocessing import TimeoutError
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from .pool import Pool

__all__ = ["AsyncResult", "ApplyResult", "MapResult", "IMapIterator",
           "IMapUnorderedIterator"]

# The pool's logger: callback errors are reported under the same name as before
# this module was split out of pool.py.
logger = logging.getLogger("ember.util.multiprocessing.pool")

_RUN, _CLOSE, _TERMINATE = "RUN", "CLOSE", "TERMINATE"

# How the actor calls func on each item of a chunk.
_ONE, _STAR, _ARGS_KWDS = 0, 1, 2

# imap/imap_unordered: chunks handed out but not yet consumed, per process.
_LOOKAHEAD_PER_PROCESS = 2


class _Chunk:
    __slots__ = ("job", "index", "func", "mode", "items")

    def __init__(self, job: _Job, index: int, func: Callable[..., Any], mode: int,
                 items: list) -> None:
        self.job, self.index, self.func, self.mode, self.items = job, index, func, mode, items


class _Job:
    """Work submitted to the pool. The dispatcher thread alone calls ``_next_chunk``
    and ``_chunk_done``; ``_abort`` may come from any thread."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._cond = threading.Condition(threading.Lock())

    def _next_chunk(self) -> _Chunk | None:
        """The next chunk to run, or None when every chunk has been handed out."""
        raise NotImplementedError

    def _throttled(self) -> bool:
        """True when this job should not hand out a chunk right now."""
        return False

    def _chunk_done(self, index: int, ok: bool, value: Any) -> None:
        raise NotImplementedError

    def _abort(self, error: BaseException) -> None:
        raise NotImplementedError


class ApplyResult(_Job):
    """The result of ``apply_async``/``map_async``/``starmap_async`` (``AsyncResult``).

    >>> r = pool.apply_async(pow, (2, 10))
    >>> r.get(timeout=10)
    1024
    """

    def __init__(self, pool: Pool, callback: Callable[[Any], Any] | None,
                 error_callback: Callable[[BaseException], Any] | None) -> None:
        super().__init__(pool)
        self._callback = callback
        self._error_callback = error_callback
        self._done = False
        self._success = False
        self._value: Any = None

    def ready(self) -> bool:
        """True once the result (or its error) is available.

        >>> r = pool.apply_async(pow, (2, 10)); r.wait(); r.ready()
        True
        """
        return self._done

    def successful(self) -> bool:
        """True if the call succeeded; raises ``ValueError`` if it is not ready yet.

        >>> r = pool.apply_async(pow, (2, 10)); r.wait(); r.successful()
        True
        """
        if not self._done:
            raise ValueError(f"{self!r} not ready")
        return self._success

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is ready or ``timeout`` seconds have passed (no error).

        >>> pool.apply_async(pow, (2, 10)).wait(timeout=5)
        """
        timeout = _check_timeout(timeout)
        with self._cond:
            self._cond.wait_for(lambda: self._done, timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Return the result, re-raising the call's error; ``multiprocessing.TimeoutError``
        if it is not ready within ``timeout`` seconds.

        >>> pool.apply_async(pow, (2, 10)).get(timeout=10)
        1024
        """
        self.wait(timeout)
        if not self._done:
            raise TimeoutError(f"the result was not ready within {timeout} s")
        if self._success:
            return self._value
        raise self._value

    def _finish(self, ok: bool, value: Any) -> bool:
        with self._cond:
            if self._done:
                return False
            self._done, self._success, self._value = True, ok, value
            self._cond.notify_all()
        return True

    def _run_callback(self, ok: bool, value: Any) -> None:
        callback = self._callback if ok else self._error_callback
        if callback is None:
            return
        try:
            callback(value)
        except Exception:  # noqa: BLE001 - a broken callback must not stop the pool
            logger.exception("a Pool %s raised", "callback" if ok else "error_callback")


AsyncResult = ApplyResult


class _Apply(ApplyResult):
    def __init__(self, pool: Pool, func: Callable[..., Any], args: tuple, kwds: dict,
                 callback: Callable[[Any], Any] | None,
                 error_callback: Callable[[BaseException], Any] | None) -> None:
        super().__init__(pool, callback, error_callback)
        self._chunk: _Chunk | None = _Chunk(self, 0, func, _ARGS_KWDS, [(args, kwds)])

    def __repr__(self) -> str:
        return f"<AsyncResult apply {'ready' if self._done else 'pending'}>"

    def _next_chunk(self) -> _Chunk | None:
        chunk, self._chunk = self._chunk, None
        return chunk

    def _chunk_done(self, index: int, ok: bool, value: Any) -> None:
        if ok:
            value = value[0]
        if self._finish(ok, value):
            self._run_callback(ok, value)

    def _abort(self, error: BaseException) -> None:
        self._chunk = None
        self._finish(False, error)


class MapResult(ApplyResult):
    """The result of ``map_async``/``starmap_async``: ``get()`` returns a list.

    >>> pool.map_async(abs, [-1, -2]).get(timeout=10)
    [1, 2]
    """

    def __init__(self, pool: Pool, func: Callable[..., Any], mode: int, items: list,
                 chunksize: int, callback: Callable[[Any], Any] | None,
                 error_callback: Callable[[BaseException], Any] | None) -> None:
        super().__init__(pool, callback, error_callback)
        self._func, self._mode, self._items, self._chunksize = func, mode, items, chunksize
        self._results: list[Any] = [None] * len(items)
        self._n_chunks = -(-len(items) // chunksize)
        self._left = self._n_chunks
        self._next_index = 0
        if not items:
            self._finish(True, [])  # as multiprocessing: ready at once, no callback

    def __repr__(self) -> str:
        return (f"<AsyncResult map of {len(self._results)} items "
                f"{'ready' if self._done else 'pending'}>")

    def _next_chunk(self) -> _Chunk | None:
        if self._done or self._next_index >= self._n_chunks:
            return None
        i = self._next_index
        self._next_index += 1
        start = i * self._chunksize
        return _Chunk(self, i, self._func, self._mode,
                      self._items[start:start + self._chunksize])

    def _chunk_done(self, index: int, ok: bool, value: Any) -> None:
        if not ok:
            # As multiprocessing: the first failure makes the whole map fail at once.
            if self._finish(False, value):
                self._items = []
                self._run_callback(False, value)
            return
        start = index * self._chunksize
        self._results[start:start + len(value)] = value
        self._left -= 1
        if self._left == 0 and self._finish(True, self._results):
            self._items = []
            self._run_callback(True, self._results)

    def _abort(self, error: BaseException) -> None:
        self._next_index = self._n_chunks
        self._finish(False, error)


class IMapIterator(_Job):
    """Iterator over ``imap`` results, in input order.

    ``next(timeout)`` raises ``multiprocessing.TimeoutError`` if the next result
    is not ready in time. A chunk whose function raised re-raises its error at
    that chunk's place; iteration can go on after it.

    >>> it = pool.imap(abs, [-1, -2, -3])
    >>> it.next(timeout=10), list(it)
    (1, [2, 3])
    """

    _ordered = True

    def __init__(self, pool: Pool, func: Callable[..., Any], iterable: Iterable[Any],
                 chunksize: int) -> None:
        super().__init__(pool)
        self._func = func
        self._source: Iterator[Any] | None = iter(iterable)
        self._chunksize = chunksize
        self._lookahead = max(2, _LOOKAHEAD_PER_PROCESS * pool._processes)
        self._handed_out = 0          # chunks created (dispatcher thread)
        self._total: int | None = None  # number of chunks once the input is exhausted
        self._results: dict[int, tuple[bool, Any]] = {}  # finished, not yet consumed
        self._arrival: collections.deque[int] = collections.deque()  # finish order
        self._consumed = 0            # chunks taken by the consumer
        self._next_index = 0          # imap: next chunk in order
        self._buffer: collections.deque[Any] = collections.deque()
        self._aborted: BaseException | None = None

    def __repr__(self) -> str:
        kind = "imap" if self._ordered else "imap_unordered"
        return f"<{type(self).__name__} {kind}, {self._consumed} chunks consumed>"

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def _throttled(self) -> bool:
        # Lifted once the pool is closed, so that close(); join() runs everything.
        return (self._pool._state == _RUN
                and self._handed_out - self._consumed >= self._lookahead)

    def _next_chunk(self) -> _Chunk | None:
        source = self._source
        if source is None:
            return None
        index = self._handed_out
        try:
            items = list(itertools.islice(source, self._chunksize))
        except Exception as e:  # noqa: BLE001 - the input's error surfaces at its place
            self._source = None
            self._handed_out += 1
            self._set_total(index + 1)
            self._chunk_done(index, False, e)
            return None
        if len(items) < self._chunksize:
            self._source = None
            self._set_total(index + (1 if items else 0))
        if not items:
            return None
        self._handed_out += 1
        return _Chunk(self, index, self._func, _ONE, items)

    def _set_total(self, total: int) -> None:
        with self._cond:
            self._total = total
            self._cond.notify_all()

    def _chunk_done(self, index: int, ok: bool, value: Any) -> None:
        with self._cond:
            if self._aborted is not None:
                return
            self._results[index] = (ok, value)
            self._arrival.append(index)
            self._cond.notify_all()

    def _abort(self, error: BaseException) -> None:
        self._source = None
        with self._cond:
            self._aborted = error
            self._cond.notify_all()

    def _take(self) -> int | None:
        """Index of the chunk to consume next if it is ready (called with _cond held)."""
        if self._ordered:
            return self._next_index if self._next_index in self._results else None
        while self._arrival:
            index = self._arrival[0]
            if index in self._results:
                return index
            self._arrival.popleft()
        return None

    def next(self, timeout: float | None = None) -> Any:
        """The next result; ``StopIteration`` at the end, ``multiprocessing.TimeoutError``
        if it is not ready within ``timeout`` seconds.

        >>> pool.imap(abs, [-5]).next(timeout=10)
        5
        """
        timeout = _check_timeout(timeout)
        while not self._buffer:
            with self._cond:
                index: int | None = None

                def ready() -> bool:
                    nonlocal index
                    index = self._take()
                    return (index is not None or self._aborted is not None
                            or self._total is not None and self._consumed >= self._total)

                if not self._cond.wait_for(ready, timeout):
                    raise TimeoutError(f"the next result was not ready within {timeout} s")
                if index is None:
                    if self._aborted is not None:
                        raise self._aborted
                    raise StopIteration
                ok, value = self._results.pop(index)
                self._consumed += 1
                if self._ordered:
                    self._next_index += 1
            self._pool._wake()  # room for more chunks of this job
            if not ok:
                raise value
            self._buffer.extend(value)
        return self._buffer.popleft()


class IMapUnorderedIterator(IMapIterator):
    """Iterator over ``imap_unordered`` results, in the order chunks finish.

    >>> sorted(pool.imap_unordered(abs, [-1, -2, -3]))
    [1, 2, 3]
    """

    _ordered = False


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be None or a number of seconds, got "
                        f"{type(timeout).__name__}")
    if timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout}")
    return float(timeout)

"""``ActorPool``: spread calls over a fixed set of actors (``ray.util.ActorPool``).

>>> @ember.remote
... class Doubler:
...     def double(self, v):
...         return 2 * v
>>> pool = ActorPool([Doubler.remote(), Doubler.remote()])
>>> list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4]))
[2, 4, 6, 8]

Each actor runs one submitted call at a time: a value waits until an actor is
idle, and an actor becomes idle again when its result has been *returned* by
``get_next``/``get_next_unordered`` (or the ``map`` iterators). Only the public
``ember`` API is used.
"""
from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar, Union

import ember

if TYPE_CHECKING:
    from ember import ObjectRef

__all__ = ["ActorPool"]

V = TypeVar("V")

# What ``fn(actor, value)`` returns: one ref, or a list of refs (for methods with
# num_returns > 1), whose values are returned together as a list.
_Future = Union["ObjectRef[Any]", "list[ObjectRef[Any]]"]
_Key = Union["ObjectRef[Any]", "tuple[ObjectRef[Any], ...]"]

_TIMEOUT_MSG = "Timed out waiting for result"


class ActorPool:
    """Run calls on a fixed set of actors, each actor busy with one call at a time.

    Args:
        actors: actor handles to spread work over. The pool takes them as idle.

    >>> pool = ActorPool([Doubler.remote(), Doubler.remote()])
    >>> pool.submit(lambda a, v: a.double.remote(v), 1)
    >>> pool.get_next()
    2
    """

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors: list[Any] = list(actors)
        # Submitted, not yet returned: key -> (submission index, actor running it).
        self._future_to_actor: dict[_Key, tuple[int, Any]] = {}
        self._index_to_future: dict[int, _Future] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        # Values waiting for an idle actor, in submission order.
        self._pending_submits: deque[tuple[Callable[[Any, Any], _Future], Any]] = deque()

    def __repr__(self) -> str:
        return (f"ActorPool(idle={len(self._idle_actors)}, running={len(self._future_to_actor)}, "
                f"waiting={len(self._pending_submits)})")

    # ------------------------------------------------------------------ map
    def map(self, fn: Callable[[Any, V], _Future], values: Iterable[V]) -> Iterator[Any]:
        """Apply ``fn(actor, value)`` to every value; iterate the results in input order.

        ``fn`` must start the call and return its ``ObjectRef`` (for example
        ``lambda a, v: a.method.remote(v)``); the actor counts as busy until the
        result has been returned. Every value is submitted right away, results are
        fetched as you iterate. Results still pending from earlier ``submit`` calls
        are discarded first.

        >>> list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))
        [2, 4, 6]
        """
        self._discard_pending(ordered=True)
        for v in values:
            self.submit(fn, v)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next()

        return results()

    def map_unordered(self, fn: Callable[[Any, V], _Future],
                      values: Iterable[V]) -> Iterator[Any]:
        """Like :meth:`map`, but yield each result as soon as it is ready.

        Faster than ``map`` when some values take longer than others.

        >>> sorted(pool.map_unordered(lambda a, v: a.double.remote(v), [1, 2, 3]))
        [2, 4, 6]
        """
        self._discard_pending(ordered=False)
        for v in values:
            self.submit(fn, v)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next_unordered()

        return results()

    def _discard_pending(self, ordered: bool) -> None:
        # Ray's map/map_unordered drop results nobody fetched yet; the actors
        # become available again once their calls finish.
        while self.has_next():
            try:
                if ordered:
                    self.get_next(timeout=0, ignore_if_timedout=True)
                else:
                    self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ submit / get
    def submit(self, fn: Callable[[Any, V], _Future], value: V) -> None:
        """Schedule ``fn(actor, value)`` on an idle actor, or queue it until one is idle.

        Fetch the result with :meth:`get_next` or :meth:`get_next_unordered`.

        >>> pool.submit(lambda a, v: a.double.remote(v), 1)
        >>> pool.submit(lambda a, v: a.double.remote(v), 2)
        >>> pool.get_next(), pool.get_next()
        (2, 4)
        """
        if not callable(fn):
            raise TypeError(f"ActorPool.submit() expects fn(actor, value) returning an "
                            f"ObjectRef, got {type(fn).__name__}")
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        try:
            future = fn(actor, value)
            key = _key(future)
        except BaseException:
            self._idle_actors.append(actor)  # nothing was started on it
            raise
        if key in self._future_to_actor:
            self._idle_actors.append(actor)
            raise ValueError("fn returned an ObjectRef that the pool is already waiting for; "
                             "fn must start a new call, e.g. lambda a, v: a.method.remote(v)")
        self._future_to_actor[key] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self) -> bool:
        """True if some submitted result has not been returned yet.

        >>> pool.submit(lambda a, v: a.double.remote(v), 1)
        >>> pool.has_next()
        True
        >>> pool.get_next(), pool.has_next()
        (2, False)
        """
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Return the next result in submission order, waiting up to ``timeout`` seconds.

        Raises ``StopIteration`` when nothing is pending and ``TimeoutError`` when the
        result is not ready in time. With ``ignore_if_timedout=True`` a timed-out
        call is dropped (its actor returns to the pool) before ``TimeoutError`` is
        raised, so the next ``get_next`` moves on to the following result. An error
        raised by the call is re-raised here.

        >>> pool.submit(lambda a, v: a.double.remote(v), 1)
        >>> pool.get_next(timeout=10)
        2
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        _check_timeout(timeout)
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = timeout is not None and not _wait_all(_refs(future), timeout)
        if timed_out and not ignore_if_timedout:
            raise TimeoutError(_TIMEOUT_MSG)
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(future))
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._get_result(future, actor)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False) -> Any:
        """Return whichever pending result is ready first, waiting up to ``timeout`` seconds.

        Raises ``StopIteration`` when nothing is pending and ``TimeoutError`` when no
        result is ready in time. With ``ignore_if_timedout=True`` the oldest pending
        call is dropped (its actor returns to the pool) before ``TimeoutError`` is
        raised. After this, :meth:`get_next` can no longer be used on the results
        submitted so far.

        >>> pool.submit(lambda a, v: a.double.remote(v), 1)
        >>> pool.submit(lambda a, v: a.double.remote(v), 2)
        >>> sorted([pool.get_next_unordered(), pool.get_next_unordered()])
        [2, 4]
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        _check_timeout(timeout)
        ready = self._first_ready(timeout)
        timed_out = ready is None
        if ready is None:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMEOUT_MSG)
            # Drop the oldest call, the one most likely to be stuck.
            key = min(self._future_to_actor, key=lambda k: self._future_to_actor[k][0])
        else:
            key = ready
        index, actor = self._future_to_actor.pop(key)
        future = self._index_to_future.pop(index)
        self._next_return_index = max(self._next_return_index, index + 1)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._get_result(future, actor)

    def _first_ready(self, timeout: float | None) -> _Key | None:
        keys = list(self._future_to_actor)
        single = [k for k in keys if not isinstance(k, tuple)]
        if len(single) == len(keys):
            ready, _ = ember.wait(single, num_returns=1, timeout=timeout)
            return ready[0] if ready else None
        # Some calls returned several refs: one is ready when all of its refs are.
        done: set[Any] = set()
        pending = {r for k in keys for r in _refs(k)}
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for k in keys:
                if all(r in done for r in _refs(k)):
                    return k
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ember.wait(list(pending), num_returns=1, timeout=remaining)
            if not ready:
                return None
            done.update(ready)
            pending.difference_update(ready)

    def _get_result(self, future: _Future, actor: Any) -> Any:
        alive = True
        try:
            return ember.get(future)
        except ember.exceptions.ActorDiedError:
            alive = False  # a dead actor does not go back into the pool
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.popleft())

    # ------------------------------------------------------------------ actors
    def has_free(self) -> bool:
        """True if an actor is idle and no submitted value is waiting for one.

        >>> pool = ActorPool([Doubler.remote()])
        >>> pool.submit(lambda a, v: a.double.remote(v), 1)
        >>> pool.has_free()
        False
        >>> pool.get_next(), pool.has_free()
        (2, True)
        """
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any | None:
        """Remove an idle actor from the pool and return it; ``None`` if none is free.

        >>> a = Doubler.remote()
        >>> pool = ActorPool([a])
        >>> pool.submit(lambda a, v: a.double.remote(v), 1)
        >>> pool.pop_idle() is None
        True
        >>> pool.get_next(), pool.pop_idle() is a
        (2, True)
        """
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool as idle; it picks up a waiting value at once.

        Raises ``ValueError`` if the actor already belongs to this pool.

        >>> pool = ActorPool([Doubler.remote()])
        >>> pool.push(Doubler.remote())
        """
        busy = [a for _, a in self._future_to_actor.values()]
        if any(actor is a or actor == a for a in (*self._idle_actors, *busy)):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)


def _key(future: Any) -> _Key:
    """Validate what fn returned and make it hashable."""
    ref_type = ember.ObjectRef
    if isinstance(future, ref_type):
        return future
    if isinstance(future, (list, tuple)) and future and all(
            isinstance(r, ref_type) for r in future):
        return tuple(future)
    raise TypeError(f"fn(actor, value) must return an ObjectRef (or a list of them), got "
                    f"{type(future).__name__}: start the call with .remote(), e.g. "
                    f"lambda a, v: a.method.remote(v)")


def _refs(future: Any) -> list[Any]:
    return list(future) if isinstance(future, (list, tuple)) else [future]


def _wait_all(refs: list[Any], timeout: float) -> bool:
    unique = list(dict.fromkeys(refs))
    ready, _ = ember.wait(unique, num_returns=len(unique), timeout=timeout)
    return len(ready) == len(unique)


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or a number of seconds, got "
                        f"{type(timeout).__name__}")
    if timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout}")

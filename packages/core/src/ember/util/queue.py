"""A FIFO queue shared by the driver, tasks and actors (``ray.util.queue``).

>>> from ember.util.queue import Queue, Empty
>>> q = Queue(maxsize=10)
>>> @ember.remote
... def produce(q, n):
...     for i in range(n):
...         q.put(i)
>>> ember.get(produce.remote(q, 3))
>>> [q.get(timeout=5) for _ in range(3)]
[0, 1, 2]

The items live in an async actor holding an ``asyncio.Queue``; a ``Queue`` object
is a thin client around that actor's handle, so it pickles and can be passed to
tasks and actors, which then share the same queue. Blocking ``put``/``get`` wait
inside the actor, so waiting callers do not poll.
"""
from __future__ import annotations

import asyncio
import numbers
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

import ember

__all__ = ["Queue", "Empty", "Full"]


class Empty(_stdlib_queue.Empty):
    """Raised by ``get``/``get_nowait`` when no item is available (a ``queue.Empty``).

    >>> try:
    ...     q.get_nowait()
    ... except Empty:
    ...     pass
    """


class Full(_stdlib_queue.Full):
    """Raised by ``put``/``put_nowait`` when the queue has no room (a ``queue.Full``).

    >>> try:
    ...     q.put_nowait(1)
    ... except Full:
    ...     pass
    """


class Queue:
    """A first-in, first-out queue usable from the driver, tasks and actors.

    Args:
        maxsize: most items the queue holds; ``0`` (or less) means unbounded.
        actor_options: options for the actor that holds the items, passed to
            ``.options(...)`` (for example ``{"num_cpus": 0}`` or a ``name``).

    Both blocking (``put``/``get`` with ``block`` and ``timeout``) and non-blocking
    (``put_nowait``/``get_nowait`` and their batch forms) calls are offered, plus
    ``put_async``/``get_async`` for asyncio code. With several producers or
    consumers waiting on a full or empty queue, the order they are served in is
    not guaranteed.

    >>> q = Queue()
    >>> for i in range(3):
    ...     q.put(i)
    >>> [q.get() for _ in range(3)]
    [0, 1, 2]
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int (0 for unbounded), got "
                            f"{type(maxsize).__name__}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"actor_options must be a dict of actor options or None, got "
                            f"{type(actor_options).__name__}")
        self.maxsize = maxsize
        self.actor: Any = _actor_class().options(**(actor_options or {})).remote(maxsize)

    def __repr__(self) -> str:
        state = "" if self.actor is not None else ", shut down"
        return f"Queue(maxsize={self.maxsize}{state})"

    def __len__(self) -> int:
        return self.size()

    def _handle(self) -> Any:
        if self.actor is None:
            raise RuntimeError("this Queue was shut down; create a new Queue")
        return self.actor

    # ------------------------------------------------------------------ state
    def size(self) -> int:
        """The number of items in the queue right now.

        >>> q.put(1); q.size()
        1
        """
        return ember.get(self._handle().qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue right now (same as :meth:`size`).

        >>> q.qsize()
        0
        """
        return self.size()

    def empty(self) -> bool:
        """True if the queue holds no items.

        >>> Queue().empty()
        True
        """
        return ember.get(self._handle().empty.remote())

    def full(self) -> bool:
        """True if the queue holds ``maxsize`` items (never for an unbounded queue).

        >>> q = Queue(maxsize=1); q.put(1); q.full()
        True
        """
        return ember.get(self._handle().full.remote())

    # ------------------------------------------------------------------ put
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item`` to the end of the queue.

        If the queue is full and ``block`` is true, wait up to ``timeout`` seconds
        (forever if ``None``) for room; raise :class:`Full` if there is still none.
        With ``block=False`` raise :class:`Full` at once (``timeout`` is ignored).

        >>> q.put("job", timeout=5)
        """
        actor = self._handle()
        if not block:
            ok = ember.get(actor.put_nowait.remote(item))
        else:
            ok = ember.get(actor.put.remote(item, _check_timeout(timeout)))
        if not ok:
            raise Full(_full_message(self.maxsize))

    async def put_async(self, item: Any, block: bool = True,
                        timeout: float | None = None) -> None:
        """Add ``item`` to the queue from asyncio code; same rules as :meth:`put`.

        >>> await q.put_async("job", timeout=5)
        """
        actor = self._handle()
        if not block:
            ok = await actor.put_nowait.remote(item)
        else:
            ok = await actor.put.remote(item, _check_timeout(timeout))
        if not ok:
            raise Full(_full_message(self.maxsize))

    def put_nowait(self, item: Any) -> None:
        """Add ``item`` if there is room, else raise :class:`Full` (``put(item, block=False)``).

        >>> q.put_nowait("job")
        """
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all ``items`` in order, or none of them if they do not all fit (:class:`Full`).

        One round trip to the queue's actor however many items there are.

        >>> q.put_nowait_batch([1, 2, 3])
        """
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError(f"items must be an iterable of items to enqueue (a list, a "
                            f"tuple, ...), got {type(items).__name__}")
        items = list(items)
        if not items:
            return
        free = ember.get(self._handle().put_nowait_batch.remote(items))
        if free is not None:
            raise Full(f"Cannot add {len(items)} items to the queue: it has room for "
                       f"{free} (maxsize {self.maxsize}); nothing was added.")

    # ------------------------------------------------------------------ get
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the item at the front of the queue.

        If the queue is empty and ``block`` is true, wait up to ``timeout`` seconds
        (forever if ``None``) for an item; raise :class:`Empty` if none arrives.
        With ``block=False`` raise :class:`Empty` at once (``timeout`` is ignored).

        >>> q.put(1); q.get(timeout=5)
        1
        """
        actor = self._handle()
        if not block:
            ok, item = ember.get(actor.get_nowait.remote())
        else:
            ok, item = ember.get(actor.get.remote(_check_timeout(timeout)))
        if not ok:
            raise Empty(_EMPTY_MESSAGE)
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the front item from asyncio code; same rules as :meth:`get`.

        >>> item = await q.get_async(timeout=5)
        """
        actor = self._handle()
        if not block:
            ok, item = await actor.get_nowait.remote()
        else:
            ok, item = await actor.get.remote(_check_timeout(timeout))
        if not ok:
            raise Empty(_EMPTY_MESSAGE)
        return item

    def get_nowait(self) -> Any:
        """Remove and return the front item, or raise :class:`Empty` (``get(block=False)``).

        >>> q.put(1); q.get_nowait()
        1
        """
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return the first ``num_items`` items in order.

        Raises :class:`Empty` (and removes nothing) if the queue holds fewer items.
        One round trip to the queue's actor however many items there are.

        >>> q.put_nowait_batch([1, 2, 3]); q.get_nowait_batch(2)
        [1, 2]
        """
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError(f"num_items must be an int, got {type(num_items).__name__}")
        if num_items < 0:
            raise ValueError(f"num_items must be >= 0, got {num_items}")
        ok, value = ember.get(self._handle().get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(f"Cannot get {num_items} items from the queue: it holds {value}; "
                        f"nothing was removed.")
        return value

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Stop the queue's actor and release its resources; the items are dropped.

        With ``force=False`` the actor is asked to exit once the calls it is running
        finish, and killed if it has not exited after ``grace_period_s`` seconds;
        ``force=True`` kills it at once (pending calls fail). Calling it again does
        nothing. Other copies of this queue (in tasks or actors) stop working too.

        >>> q.shutdown()
        """
        if isinstance(grace_period_s, bool) or not isinstance(grace_period_s, numbers.Real):
            raise TypeError(f"grace_period_s must be a number of seconds, got "
                            f"{type(grace_period_s).__name__}")
        if grace_period_s < 0:
            raise ValueError(f"grace_period_s must be >= 0 seconds, got {grace_period_s}")
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if not force:
            terminate = getattr(actor, "__ray_terminate__", None)
            if terminate is not None:
                done, _ = ember.wait([terminate.remote()], timeout=grace_period_s)
                if done:
                    return
        ember.kill(actor, no_restart=True)


_EMPTY_MESSAGE = "The queue is empty."


def _full_message(maxsize: int) -> str:
    return f"The queue is full (maxsize {maxsize})."


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"'timeout' must be None or a number of seconds, got "
                        f"{type(timeout).__name__}")
    if timeout < 0:
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout}")
    return float(timeout)


class _QueueActor:
    """Holds the items. Every method is ``async`` so that all of them run on the
    actor's event loop (asyncio.Queue is not thread-safe) and blocking put/get
    wait there without holding up other calls."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None) -> bool:
        if not self.queue.full():
            self.queue.put_nowait(item)
            return True
        if timeout == 0:
            return False
        # asyncio.wait (not wait_for): the outcome is known exactly. A put that was
        # cancelled by the timeout leaves no item behind (asyncio.Queue.put only adds
        # the item after its wait), and one that finished just in time counts.
        task = asyncio.ensure_future(self.queue.put(item))
        return await _finish(task, timeout) is not _TIMED_OUT

    async def get(self, timeout: float | None) -> tuple[bool, Any]:
        if not self.queue.empty():
            return True, self.queue.get_nowait()
        if timeout == 0:
            return False, None
        task = asyncio.ensure_future(self.queue.get())
        item = await _finish(task, timeout)
        return (False, None) if item is _TIMED_OUT else (True, item)

    async def put_nowait(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def put_nowait_batch(self, items: list[Any]) -> int | None:
        """None when all were added, else the room left (nothing added)."""
        if self.maxsize > 0:
            free = self.maxsize - self.queue.qsize()
            if len(items) > free:
                return free
        for item in items:
            self.queue.put_nowait(item)
        return None

    async def get_nowait(self) -> tuple[bool, Any]:
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    async def get_nowait_batch(self, num_items: int) -> tuple[bool, Any]:
        """(True, items), or (False, current size) when there are too few."""
        if num_items > self.queue.qsize():
            return False, self.queue.qsize()
        return True, [self.queue.get_nowait() for _ in range(num_items)]


_TIMED_OUT = object()


async def _finish(task: asyncio.Future[Any], timeout: float | None) -> Any:
    """The task's result, or _TIMED_OUT if it did not finish within ``timeout``."""
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()  # the call was cancelled: do not put/get behind its back
        raise
    if task in done:
        return task.result()
    task.cancel()
    try:
        return await task  # it may have completed before the cancel landed
    except asyncio.CancelledError:
        if task.cancelled():
            return _TIMED_OUT
        raise  # the caller itself is being cancelled


_actor_cls: Any = None


def _actor_class() -> Any:
    # Made remote on first use so that importing this module stays cheap.
    global _actor_cls
    if _actor_cls is None:
        _actor_cls = ember.remote(_QueueActor)
    return _actor_cls

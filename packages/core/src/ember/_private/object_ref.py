"""``ObjectRef``: a future-like handle to a value in the cluster.

Creating and dropping refs is on the hot path, so the bookkeeping is one call
into the process's CoreWorker each way. Pickling a ref (inside a task argument,
a return value or a ``put``) records it as contained in the value being
serialized, which is how the owner learns to keep it alive.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Generator, Generic, TypeVar

from . import serialization, worker_state

T = TypeVar("T")


class ObjectRef(Generic[T]):
    """A reference to a (possibly not yet computed) remote value.

    >>> ref = ember.put(41)
    >>> ember.get(ref)
    41
    """

    __slots__ = ("_id", "_owner", "_core", "__weakref__")

    def __init__(self, object_id: bytes, owner: str = "", _register: bool = True) -> None:
        self._id = object_id
        self._owner = owner
        self._core = worker_state.core if _register else None
        if self._core is not None:
            self._core.ref_created(object_id, owner)

    def __del__(self) -> None:
        core = self._core
        if core is not None and core is worker_state.core:
            try:
                core.ref_deleted(self._id)
            except Exception:  # noqa: BLE001 - never raise from a finalizer
                pass

    def __reduce__(self):
        serialization.note_contained_ref(self)
        return (_rebuild, (self._id, self._owner))

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return self._id[:16]

    def owner_address(self) -> str:
        return self._owner

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def future(self) -> concurrent.futures.Future:
        """A ``concurrent.futures.Future`` resolved with the value (or its error)."""
        core = worker_state.require_core()
        return core.future_for(self)

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self.future()).__await__()


def _rebuild(object_id: bytes, owner: str) -> ObjectRef:
    return ObjectRef(object_id, owner)


class ObjectRefGenerator:
    """Iterates the refs a generator task yields, as they are produced.

    >>> @ember.remote(num_returns="streaming")
    ... def count(n):
    ...     yield from range(n)
    >>> [ember.get(r) for r in count.remote(3)]
    [0, 1, 2]
    """

    def __init__(self, task_id: bytes, core: Any) -> None:
        self._task_id = task_id
        self._core = core
        self._index = 0

    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> ObjectRef:
        ref = self._core.next_generator_item(self._task_id, self._index, None)
        if ref is None:
            raise StopIteration
        self._index += 1
        return ref

    def next_ready(self, timeout: float | None = None) -> ObjectRef:
        """Like ``next()`` but gives up after ``timeout`` seconds with GetTimeoutError."""
        ref = self._core.next_generator_item(self._task_id, self._index, timeout)
        if ref is None:
            raise StopIteration
        self._index += 1
        return ref

    def ready(self) -> bool:
        """True when ``next()`` would not block: the next item exists or the stream ended."""
        return self._core.submitter.generator_ready(self._task_id, self._index)

    def __aiter__(self) -> "ObjectRefGenerator":
        return self

    async def __anext__(self) -> ObjectRef:
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(
            None, self._core.next_generator_item, self._task_id, self._index, None)
        if ref is None:
            raise StopAsyncIteration
        self._index += 1
        return ref

    def __del__(self) -> None:
        core = self._core
        if core is not None and core is worker_state.core:
            try:
                core.release_generator(self._task_id)
            except Exception:  # noqa: BLE001
                pass

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id.hex()})"

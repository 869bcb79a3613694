"""Lineage: which tasks an owner must run again to rebuild a lost object (pure).

An owner records every task it submits (its *lineage*: what to run again, and
which of its owned inputs it read). When every copy of an object is gone (the
node holding it died), the owner asks this table for a plan: the task that made
the object, preceded by the tasks that make any of its inputs that are lost or
already freed, recursively, producers first. As in Ray:

- rebuilding counts against the task's ``max_retries`` (the budget normal
  retries use; a negative budget is unlimited): an exhausted task fails the plan
  with ``max_attempts``;
- ``ember.put`` objects have no task to re-run (``put``); neither do objects of
  actor calls (``not_reconstructable``, with the reason recorded);
- a task's lineage is kept while any of its returns is referenced, or while the
  kept lineage of a task that read one of them still needs it (*lineage
  pinning*: an input whose value was freed can be rebuilt for a consumer);
- lineage takes bounded memory: past ``max_bytes`` the oldest entries are
  evicted; an object whose lineage went fails with ``evicted``.

The table knows nothing of processes or values: the caller says, through a
``status`` callback, whether an object is available, pending, lost or freed,
and performs the plan (object_recovery.py). Tested without processes in
tests/core/test_lineage_policy.py.

>>> table = LineageTable(max_bytes=1 << 20)
>>> a, b = b"A" * 16, b"B" * 16
>>> table.add(a, (a + b"\\1\\0\\0\\0",), deps=(), payload="run A", retries_left=3, size=100)
>>> table.add(b, (b + b"\\1\\0\\0\\0",), deps=(a + b"\\1\\0\\0\\0",), payload="run B",
...           retries_left=3, size=100)
>>> status = lambda oid: ObjectStatus.LOST      # both values are gone
>>> [step.payload for step in table.recover(b + b"\\1\\0\\0\\0", status).resubmit]
['run A', 'run B']
"""
from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ids

# Ray's default bound on lineage memory per owner (max_lineage_bytes).
DEFAULT_MAX_LINEAGE_BYTES = 1 << 30


class ObjectStatus(enum.Enum):
    AVAILABLE = "available"   # a copy is reachable, or the value is inline
    PENDING = "pending"       # being computed (or rebuilt) now
    LOST = "lost"             # still referenced, but every copy is gone
    FREED = "freed"           # no longer referenced: its value was dropped


class Failure(enum.Enum):
    PUT = "put"                                   # made by put: nothing to re-run
    MAX_ATTEMPTS = "max_attempts"                 # the task's retries are used up
    EVICTED = "evicted"                           # its lineage was evicted for memory
    NOT_RECONSTRUCTABLE = "not_reconstructable"   # e.g. an actor call
    UNKNOWN = "unknown"                           # no lineage at all (released)


@dataclass(frozen=True)
class Resubmit:
    """Run task ``task_id`` again from ``payload``, with ``retries_left`` after this run."""
    task_id: bytes
    return_ids: tuple[bytes, ...]
    payload: Any
    retries_left: int


@dataclass(frozen=True)
class Unrecoverable:
    """Why a plan failed: ``object_id`` (the one asked for, or one of its inputs)
    cannot be rebuilt for ``failure``; ``detail`` names the task or reason."""
    object_id: bytes
    failure: Failure
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    resubmit: tuple[Resubmit, ...] = ()
    error: Unrecoverable | None = None


@dataclass(slots=True)
class _Task:
    return_ids: tuple[bytes, ...]
    deps: tuple[bytes, ...]          # owned inputs read by the task (object ids)
    payload: Any                     # None once evicted, or for non-reconstructable tasks
    retries_left: int
    size: int
    name: str
    reason: str = ""                 # set: this task's objects cannot be rebuilt
    in_scope: set[bytes] = field(default_factory=set)
    dependents: int = 0              # kept tasks whose deps include one of our returns
    evicted: bool = False
    pinning: bool = False            # our deps hold a dependents count on their producers


class LineageTable:
    """Per-owner lineage, bounded by ``max_bytes`` (see the module docstring)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_LINEAGE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.total_bytes = 0
        self._tasks: dict[bytes, _Task] = {}
        # Entries holding a payload, oldest first: the eviction order.
        self._by_age: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    # ------------------------------------------------------------ recording
    def add(self, task_id: bytes, return_ids: tuple[bytes, ...], deps: tuple[bytes, ...],
            payload: Any, retries_left: int, size: int, name: str = "",
            reason: str = "") -> None:
        """Record a submitted task. ``reason`` set: its objects are never rebuilt
        (no payload is kept); ``deps`` are the owned object ids it reads."""
        if task_id in self._tasks:
            return
        task = _Task(tuple(return_ids), tuple(dict.fromkeys(deps)), None if reason else payload,
                     retries_left, 0 if reason else max(0, size), name, reason,
                     in_scope=set(return_ids))
        self._tasks[task_id] = task
        if not reason:
            task.pinning = True
            for producer in self._producers(task.deps):
                producer.dependents += 1
            self._by_age[task_id] = None
            self.total_bytes += task.size
            self._evict()

    def update(self, task_id: bytes, retries_left: int, size: int | None = None) -> None:
        """The task finished a run: keep its remaining budget (and its final size)."""
        task = self._tasks.get(task_id)
        if task is None:
            return
        task.retries_left = retries_left
        if size is not None and task.payload is not None:
            self.total_bytes += max(0, size) - task.size
            task.size = max(0, size)
            self._evict()

    def release(self, object_id: bytes) -> None:
        """``object_id`` is no longer referenced by anyone."""
        task_id = ids.task_id_of(object_id)
        task = self._tasks.get(task_id)
        if task is None:
            return
        task.in_scope.discard(object_id)
        self._maybe_drop(task_id)

    # ------------------------------------------------------------ planning
    def recover(self, object_id: bytes, status: Callable[[bytes], ObjectStatus]) -> Plan:
        """Plan the rebuild of lost ``object_id``; on success the budgets are spent.

        ``status(oid)`` tells the state of an owned input; inputs that are LOST or
        FREED are rebuilt first, AVAILABLE and PENDING ones are used as they are.
        """
        order: list[bytes] = []
        planned: set[bytes] = set()
        # Depth-first without recursion (chains can be long): (object, expanded?).
        stack: list[tuple[bytes, bool]] = [(object_id, False)]
        while stack:
            oid, expanded = stack.pop()
            task_id = ids.task_id_of(oid)
            if expanded:
                order.append(task_id)
                continue
            if task_id in planned:
                continue
            error = self._why_not(oid)
            if error is not None:
                if oid != object_id:
                    error = Unrecoverable(error.object_id, error.failure,
                                          f"{error.detail} (an input needed to rebuild "
                                          f"{object_id.hex()})")
                return Plan(error=error)
            planned.add(task_id)
            stack.append((oid, True))
            task = self._tasks[task_id]
            for dep in reversed(task.deps):
                if ids.task_id_of(dep) not in planned and status(dep) in (
                        ObjectStatus.LOST, ObjectStatus.FREED):
                    stack.append((dep, False))
        steps = []
        for task_id in order:
            task = self._tasks[task_id]
            if task.retries_left > 0:
                task.retries_left -= 1
            steps.append(Resubmit(task_id, task.return_ids, task.payload, task.retries_left))
        return Plan(resubmit=tuple(steps))

    def _why_not(self, object_id: bytes) -> Unrecoverable | None:
        if ids.index_of(object_id) >= ids.PUT_INDEX_BASE:
            return Unrecoverable(object_id, Failure.PUT, "it was created by put")
        task = self._tasks.get(ids.task_id_of(object_id))
        if task is None:
            return Unrecoverable(object_id, Failure.UNKNOWN,
                                 "its owner keeps no lineage for it (a streaming generator's "
                                 "item, or an object no longer referenced)")
        name = task.name or ids.task_id_of(object_id).hex()
        if task.reason:
            return Unrecoverable(object_id, Failure.NOT_RECONSTRUCTABLE,
                                 f"it was returned by {name}: {task.reason}")
        if task.evicted:
            return Unrecoverable(object_id, Failure.EVICTED,
                                 f"the lineage of {name} was evicted")
        if task.retries_left == 0:
            return Unrecoverable(object_id, Failure.MAX_ATTEMPTS,
                                 f"{name} has no retries left (max_retries)")
        return None

    # ------------------------------------------------------------ queries
    def __contains__(self, task_id: bytes) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def retries_left(self, task_id: bytes) -> int | None:
        task = self._tasks.get(task_id)
        return None if task is None else task.retries_left

    def is_evicted(self, task_id: bytes) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.evicted

    # ------------------------------------------------------------ internals
    def _producers(self, deps: tuple[bytes, ...]) -> list[_Task]:
        found = []
        for dep in deps:
            producer = self._tasks.get(ids.task_id_of(dep))
            if producer is not None:
                found.append(producer)
        return found

    def _unpin(self, task: _Task) -> list[bytes]:
        """Drop ``task``'s hold on its inputs' lineage; returns the producers to re-check."""
        if not task.pinning:
            return []
        task.pinning = False
        touched = []
        for dep in task.deps:
            producer_id = ids.task_id_of(dep)
            producer = self._tasks.get(producer_id)
            if producer is not None:
                producer.dependents -= 1
                touched.append(producer_id)
        return touched

    def _forget_payload(self, task_id: bytes, task: _Task) -> None:
        if task.payload is not None:
            task.payload = None
            self.total_bytes -= task.size
            task.size = 0
        self._by_age.pop(task_id, None)

    def _maybe_drop(self, task_id: bytes) -> None:
        todo = [task_id]
        while todo:
            tid = todo.pop()
            task = self._tasks.get(tid)
            if task is None or task.in_scope or task.dependents > 0:
                continue
            del self._tasks[tid]
            self._forget_payload(tid, task)
            todo.extend(self._unpin(task))

    def _evict(self) -> None:
        while self.total_bytes > self.max_bytes and self._by_age:
            task_id, _ = self._by_age.popitem(last=False)
            task = self._tasks[task_id]
            task.evicted = True
            self._forget_payload(task_id, task)
            # An evicted task is never run again, so its inputs need no lineage for it.
            for producer_id in self._unpin(task):
                self._maybe_drop(producer_id)
            self._maybe_drop(task_id)

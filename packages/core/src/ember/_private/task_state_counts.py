"""Counts of one process's tasks by state, from its task events (pure).

Feeds Ray's ``ray_tasks{State=...}`` metric as ``ember_tasks``. As in Ray each
side counts what it sees: an owner counts the tasks it submitted while they
wait (PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT) or are out on a worker
(SUBMITTED_TO_WORKER), and how many ended (FINISHED, FAILED: totals since the
process started); the worker running a task counts it as RUNNING. A running
task thus shows as SUBMITTED_TO_WORKER at its owner and RUNNING where it runs.
An actor's constructor counts only where it runs (its owner never hears how it
ended: the control service places actors); actors have their own states.

>>> c = TaskStateCounts()
>>> c.apply([(b"t", 0, 1, 0.0, None), (b"t", 0, 3, 0.0, None)])   # submitted, pushed
>>> c.counts()["SUBMITTED_TO_WORKER"]
1.0
>>> c.apply([(b"t", 0, 5, 0.0, None)])                              # its result came back
>>> (c.counts()["SUBMITTED_TO_WORKER"], c.counts()["FINISHED"])
(0.0, 1.0)
"""
from __future__ import annotations

from typing import Iterable

from .task_events import (ACTOR_CREATION_TASK, FAILED, FINISHED, PENDING_ARGS_AVAIL,
                          PENDING_NODE_ASSIGNMENT, RUNNING, STATE_NAMES, SUBMITTED_TO_WORKER)

_OWNER_STATES = (PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER)
_TERMINAL = (FINISHED, FAILED)
# Ended states that only change in step with live ones: never dropped.
CUMULATIVE = frozenset(STATE_NAMES[s] for s in _TERMINAL)


class TaskStateCounts:
    def __init__(self) -> None:
        self._owned: dict[tuple[bytes, int], int] = {}    # attempt -> owner-side state
        self._running: set[tuple[bytes, int]] = set()
        self._ended = {FINISHED: 0, FAILED: 0}
        self._creations: set[bytes] = set()       # actor constructors this process owns

    def apply(self, events: Iterable[tuple]) -> None:
        """Take task events ``(task_id, attempt, state, time, payload)`` in order."""
        for event in events:
            key, state = (event[0], event[1]), event[2]
            if state == RUNNING:
                self._running.add(key)
            elif state in _OWNER_STATES:
                if state == PENDING_ARGS_AVAIL and _is_creation(event[4]):
                    self._creations.add(event[0])
                if event[0] in self._creations:
                    continue
                # Never move back (events of one attempt arrive in order, but a
                # late PENDING after SUBMITTED must not undo it).
                if self._owned.get(key, 0) < state:
                    self._owned[key] = state
            elif state in _TERMINAL:
                if key in self._running:
                    self._running.discard(key)       # the executing side's end
                elif self._owned.pop(key, None) is not None:
                    self._ended[state] += 1         # the owner learnt the outcome

    def counts(self) -> dict[str, float]:
        """Tasks by Ray state name (every state present, zeros included)."""
        out = {STATE_NAMES[s]: 0.0 for s in STATE_NAMES}
        for state in self._owned.values():
            out[STATE_NAMES[state]] += 1
        out[STATE_NAMES[RUNNING]] = float(len(self._running))
        for state, n in self._ended.items():
            out[STATE_NAMES[state]] = float(n)
        return out


def _is_creation(payload: object) -> bool:
    # task_events.submitted's payload: (name, job_id, actor_id, kind, ...).
    return isinstance(payload, tuple) and len(payload) > 3 and payload[3] == ACTOR_CREATION_TASK

"""Task events, control-service side: one bounded record per task attempt.

Events arrive in batches from every process (task_events.py), out of order
between processes: a worker may report RUNNING before the owner's
SUBMITTED_TO_WORKER gets here. So a record only moves forward (the state is
the furthest one seen; each state keeps the first time it was reached), and
what each event adds (name and job from the owner, node/worker/pid from the
executor, the error from whoever saw it) fills in whatever is still empty.

At most ``max_tasks`` attempts are kept (``EMBER_TASK_EVENTS_MAX``, 100000):
past that the oldest finished attempt goes first, and only when none is
finished the oldest one. Every attempt dropped, here or by a process whose
buffer was full, is counted and reported by queries.

Pure: no I/O, no threads (state_service.py holds the lock); tested in
tests/core/test_task_events.py.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import state_filters
from .task_events import (ACTOR_CREATION_TASK, ACTOR_TASK, FAILED, FINISHED, NORMAL_TASK,
                          PENDING_ARGS_AVAIL, RUNNING, STATE_NAMES)

DEFAULT_MAX_TASKS = 100_000



@dataclass
class TaskRecord:
    task_id: bytes
    attempt: int
    state: int = 0
    name: str = ""
    job_id: int = 0
    actor_id: bytes = b""
    type: str = NORMAL_TASK
    parent_task_id: bytes = b""
    required_resources: dict = field(default_factory=dict)
    placement_group_id: bytes = b""
    node_id: str = ""
    worker_id: str = ""
    worker_pid: int = 0
    error_type: str = ""
    error_message: str = ""
    times: dict[int, float] = field(default_factory=dict)   # state -> first reached
    has_info: bool = False

    def copy_info(self, other: "TaskRecord") -> None:
        """A retry is the same task: it inherits what the first attempt said."""
        self.name, self.job_id, self.actor_id = other.name, other.job_id, other.actor_id
        self.type, self.parent_task_id = other.type, other.parent_task_id
        self.required_resources = other.required_resources
        self.placement_group_id = other.placement_group_id
        self.has_info = other.has_info

    def as_dict(self) -> dict[str, Any]:
        """Ray's TaskState fields (ids in hex, times in ms)."""
        name = self.name
        func = _func_name(self)
        times = self.times
        start = times.get(RUNNING)
        end = times.get(FINISHED, times.get(FAILED)) if self.state >= FINISHED else None
        return {
            "task_id": self.task_id.hex(),
            "attempt_number": self.attempt,
            "name": name,
            "state": STATE_NAMES.get(self.state, "NIL"),
            "job_id": f"{self.job_id:08x}",
            "actor_id": self.actor_id.hex() if self.actor_id else None,
            "type": self.type,
            "func_or_class_name": func,
            "parent_task_id": self.parent_task_id.hex() if self.parent_task_id else "",
            "node_id": self.node_id or None,
            "worker_id": self.worker_id or None,
            "worker_pid": self.worker_pid or None,
            "error_type": self.error_type or None,
            "error_message": self.error_message or None,
            "language": "PYTHON",
            "required_resources": dict(self.required_resources),
            "placement_group_id": (self.placement_group_id.hex()
                                   if self.placement_group_id else None),
            "events": [{"state": STATE_NAMES[s], "created_ms": _ms(t)}
                       for s, t in sorted(times.items(), key=lambda kv: (kv[1], kv[0]))],
            "creation_time_ms": _ms(times.get(PENDING_ARGS_AVAIL, min(times.values(),
                                                                       default=None))),
            "start_time_ms": _ms(start),
            "end_time_ms": _ms(end),
        }


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


class TaskEventStore:
    """Bounded store of task attempts, fed event batches.

    >>> store = TaskEventStore(max_tasks=1)
    >>> store.add([(b"a" * 16, 0, FINISHED, 1.0, None), (b"b" * 16, 0, RUNNING, 2.0, None)])
    >>> [r["task_id"][:2] for r in store.query()[0]], store.num_dropped
    (['62'], 1)
    """

    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be >= 1, got {max_tasks}: set "
                             "EMBER_TASK_EVENTS_MAX to a positive number of task attempts")
        self.max_tasks = max_tasks
        self._records: dict[tuple[bytes, int], TaskRecord] = {}   # insertion ordered
        self._finished: collections.OrderedDict = collections.OrderedDict()
        self._latest: dict[bytes, int] = {}        # task id -> highest attempt held
        # Attempts already evicted: late events for them must not bring them back
        # as records with half their fields.
        self._evicted: collections.OrderedDict = collections.OrderedDict()
        self._evicted_cap = min(max_tasks, 10_000)
        self.num_evicted = 0
        self.num_dropped_at_source = 0

    @property
    def num_dropped(self) -> int:
        return self.num_evicted + self.num_dropped_at_source

    def __len__(self) -> int:
        return len(self._records)

    # ------------------------------------------------------------ events
    def add(self, events: Iterable[tuple], node_id: str = "", worker_id: str = "",
            pid: int = 0, dropped: int = 0) -> None:
        """Merge one process's batch of ``(task_id, attempt, state, time, info)``."""
        self.num_dropped_at_source += dropped
        for task_id, attempt, state, ts, info in events:
            key = (task_id, attempt)
            record = self._records.get(key)
            if record is None:
                if key in self._evicted:
                    continue
                record = self._new_record(task_id, attempt)
            self._apply(record, state, ts, info, node_id, worker_id, pid)
        self._evict()

    def _new_record(self, task_id: bytes, attempt: int) -> TaskRecord:
        record = TaskRecord(task_id, attempt)
        latest = self._latest.get(task_id)
        if latest is not None:
            previous = self._records.get((task_id, latest))
            if previous is not None:
                record.copy_info(previous)
        if latest is None or attempt > latest:
            self._latest[task_id] = attempt
        self._records[(task_id, attempt)] = record
        return record

    def _apply(self, record: TaskRecord, state: int, ts: float, info: Any, node_id: str,
               worker_id: str, pid: int) -> None:
        first = record.times.get(state)
        if first is None or ts < first:
            record.times[state] = ts
        if state == PENDING_ARGS_AVAIL and isinstance(info, tuple) and len(info) == 7 \
                and not record.has_info:
            # (name, job_id, actor_id, type, parent_task_id, resources, pg id): task_events.py
            name, job_id, actor_id, kind, parent, resources, pg = info
            record.has_info = True
            record.name, record.job_id, record.type = str(name), int(job_id), str(kind)
            record.actor_id = bytes(actor_id) or record.actor_id
            record.parent_task_id = bytes(parent)
            record.required_resources = dict(resources)
            record.placement_group_id = bytes(pg)
        elif state == RUNNING:
            record.node_id, record.worker_id, record.worker_pid = node_id, worker_id, pid
            if isinstance(info, bytes) and info and not record.actor_id:
                record.actor_id = info       # an actor constructor names its actor
        elif state == FAILED and isinstance(info, tuple) and len(info) == 2 \
                and not record.error_type:
            record.error_type, record.error_message = str(info[0]), str(info[1])
        if state > record.state:
            record.state = state
            if state >= FINISHED:
                self._finished[(record.task_id, record.attempt)] = None

    def _evict(self) -> None:
        records = self._records
        while len(records) > self.max_tasks:
            if self._finished:
                key, _ = self._finished.popitem(last=False)
            else:
                key = next(iter(records))
            record = records.pop(key)
            if self._latest.get(record.task_id) == record.attempt:
                del self._latest[record.task_id]
            self.num_evicted += 1
            self._evicted[key] = None
            if len(self._evicted) > self._evicted_cap:
                self._evicted.popitem(last=False)

    # ------------------------------------------------------------ queries
    def query(self, filters: Sequence[tuple] = (), limit: int = 0,
              newest_first: bool = False) -> tuple[list[dict], int]:
        """Attempts matching ``filters`` (oldest first, or newest first), at most
        ``limit`` (0: all); returns (rows, number matching before the limit)."""
        records = list(self._records.values())
        if filters:
            # Only the filtered columns are computed for every record; whole
            # rows only for the ones returned.
            getters = {key: _COLUMNS[key] for key, _, _ in filters}
            records = [r for r in records if state_filters.matches(
                {key: get(r) for key, get in getters.items()}, filters)]
        total = len(records)
        if newest_first:
            records.reverse()
        if limit:
            records = records[:limit]
        return [r.as_dict() for r in records], total


    def summary(self) -> dict[str, Any]:
        """Counts per function (Ray's TaskSummaries), over each task's latest attempt."""
        groups: dict[str, dict] = {}
        totals = {NORMAL_TASK: 0, ACTOR_TASK: 0, ACTOR_CREATION_TASK: 0}
        for record in self._records.values():
            if self._latest.get(record.task_id, record.attempt) != record.attempt:
                continue
            name = _COLUMNS["func_or_class_name"](record)
            group = groups.get(name)
            if group is None:
                group = groups[name] = {"func_or_class_name": name, "type": record.type,
                                        "state_counts": {}}
            state = STATE_NAMES.get(record.state, "NIL")
            group["state_counts"][state] = group["state_counts"].get(state, 0) + 1
            totals[record.type] = totals.get(record.type, 0) + 1
        return {"summary": groups, "total_tasks": totals[NORMAL_TASK],
                "total_actor_tasks": totals[ACTOR_TASK],
                "total_actor_scheduled": totals[ACTOR_CREATION_TASK],
                "summary_by": "func_name"}


def _func_name(record: TaskRecord) -> str:
    name = record.name
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def _hex_or_none(b: bytes) -> str | None:
    return b.hex() if b else None


_COLUMNS = {
    "task_id": lambda r: r.task_id.hex(),
    "attempt_number": lambda r: r.attempt,
    "name": lambda r: r.name,
    "state": lambda r: STATE_NAMES.get(r.state, "NIL"),
    "job_id": lambda r: f"{r.job_id:08x}",
    "actor_id": lambda r: _hex_or_none(r.actor_id),
    "type": lambda r: r.type,
    "func_or_class_name": _func_name,
    "parent_task_id": lambda r: r.parent_task_id.hex(),
    "node_id": lambda r: r.node_id or None,
    "worker_id": lambda r: r.worker_id or None,
    "worker_pid": lambda r: r.worker_pid or None,
    "error_type": lambda r: r.error_type or None,
    "placement_group_id": lambda r: _hex_or_none(r.placement_group_id),
    "language": lambda r: "PYTHON",
}
# What list_tasks can filter on (Ray's filterable TaskState columns).
FILTER_COLUMNS = tuple(_COLUMNS)

"""The control service's state tables for the state API (``ember.util.state``).

Served as its own gRPC service (StateService) on the control service's
server, next to ControlService:

- task events: batches from every process go into the bounded
  ``TaskEventStore`` (task_event_store.py); ``GetTaskEvents`` filters there, so
  a query for 100 of 100000 tasks sends back 100;
- jobs: one per driver, from the WatchDriver stream each driver holds open
  (started when it opens, finished when it ends);
- worker deaths: the last ``MAX_DEATHS`` ReportWorkerDeath calls, so
  ``list_workers`` can show dead workers and why they died.

Nothing here is persisted: like Ray's task events, it is a window on the
recent past of the running cluster.
"""
from __future__ import annotations

import collections
import io
import json
import logging
import os
import pickle
import threading
import time
from typing import Any

import grpc

from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg
from .task_event_store import DEFAULT_MAX_TASKS, TaskEventStore

logger = logging.getLogger("ember")

MAX_DEATHS = 1000
MAX_JOBS = 10_000


class _PrimitivesOnly(pickle.Unpickler):
    """Task event batches hold tuples, dicts, bytes, str and numbers only: loading
    them must never import or call anything."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"task events may hold only primitive values, not "
                                     f"{module}.{name}")


def load_events(data: bytes) -> list[tuple]:
    """Decode an AddTaskEvents batch; ValueError if it is not a list of 5-tuples."""
    try:
        events = _PrimitivesOnly(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - any malformed payload is the sender's bug
        raise ValueError(f"undecodable task event batch: {e}") from None
    if not isinstance(events, list) or not all(
            isinstance(e, tuple) and len(e) == 5 for e in events):
        raise ValueError("a task event batch must be a list of "
                         "(task_id, attempt, state, time, info) tuples")
    return events


def max_tasks_from_env() -> int:
    raw = os.environ.get("EMBER_TASK_EVENTS_MAX", str(DEFAULT_MAX_TASKS))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"EMBER_TASK_EVENTS_MAX={raw!r} is not an integer: set it to the "
                         "number of task attempts the control service keeps") from None
    if value < 1:
        raise ValueError(f"EMBER_TASK_EVENTS_MAX={value} must be >= 1")
    return value


class StateService(pbg.StateServiceServicer):
    def __init__(self, max_tasks: int | None = None) -> None:
        self._lock = threading.Lock()
        self.tasks = TaskEventStore(max_tasks if max_tasks is not None else
                                    max_tasks_from_env())
        self._jobs: collections.OrderedDict[int, pb.JobInfo] = collections.OrderedDict()
        self._deaths: collections.deque = collections.deque(maxlen=MAX_DEATHS)

    # ------------------------------------------------------------ hooks (gcs.py)
    def driver_started(self, driver: pb.DriverInfo) -> None:
        with self._lock:
            job = self._jobs.get(driver.job_id)
            if job is not None and not job.end_time:
                return   # a second stream of the same driver (it reconnected)
            self._jobs[driver.job_id] = pb.JobInfo(driver=driver, start_time=time.time())
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)

    def driver_ended(self, driver: pb.DriverInfo) -> None:
        with self._lock:
            job = self._jobs.get(driver.job_id)
            if job is not None and not job.end_time:
                job.end_time = time.time()

    def worker_died(self, death: pb.WorkerDeath) -> None:
        with self._lock:
            self._deaths.append(pb.WorkerDeathInfo(death=death, time=time.time()))

    # ------------------------------------------------------------ RPCs
    def AddTaskEvents(self, request: pb.TaskEventBatch, context: Any) -> pb.Empty:
        try:
            events = load_events(request.events)
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        with self._lock:
            try:
                self.tasks.add(events, request.node_id, request.worker_id, request.pid,
                               request.dropped)
            except (TypeError, ValueError, AttributeError) as e:
                logger.warning("dropped a malformed task event batch from pid %d: %s",
                               request.pid, e)
        return pb.Empty()

    def GetTaskEvents(self, request: pb.TaskEventQuery, context: Any) -> pb.TaskEventReply:
        filters = [(f.key, f.predicate, f.value) for f in request.filters]
        with self._lock:
            dropped = self.tasks.num_dropped
            if request.summarize:
                summary = self.tasks.summary()
                return pb.TaskEventReply(summary=json.dumps(summary).encode(),
                                         num_dropped=dropped, total=len(self.tasks))
            rows, total = self.tasks.query(filters, request.limit, request.newest_first)
        return pb.TaskEventReply(tasks=json.dumps(rows).encode(), total=total,
                                 num_dropped=dropped)

    def ListJobs(self, request: pb.Empty, context: Any) -> pb.JobList:
        with self._lock:
            return pb.JobList(jobs=list(self._jobs.values()))

    def ListWorkerDeaths(self, request: pb.Empty, context: Any) -> pb.WorkerDeathList:
        with self._lock:
            return pb.WorkerDeathList(deaths=list(self._deaths))

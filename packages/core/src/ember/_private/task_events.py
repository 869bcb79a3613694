"""Task events, process side: record cheaply, send in batches (Ray's task event buffer).

Every driver and worker records what happens to the tasks it owns (submitted,
waiting for a worker, pushed to one, finished or failed) and to the tasks it
runs (running, finished or failed). Recording is one ``deque.append`` of a
tuple: no lock, no RPC, no protobuf. A background thread sends what piled up
once a second (``EMBER_TASK_EVENTS_INTERVAL_S``) to the control service in one
``AddTaskEvents`` call, as a pickled list of tuples of primitives, where
task_event_store.py merges them into one record per task attempt.

As in Ray (``task_events_send_batch_size``), one periodic send carries at most
``EMBER_TASK_EVENTS_SEND_BATCH`` events (10000), oldest first; the rest wait for
the next. Sending and merging cost ~8 us of CPU per actor call across driver,
worker and control service, a quarter of the whole call, so a process making
15k calls a second must not send all of their 45k events. An explicit
``flush()`` (the state API's, a worker's before it exits) sends everything.
Listeners (the task-state metric) see every event as it is taken from the
buffer, sent yet or not.

Memory is bounded: past ``EMBER_TASK_EVENTS_BUFFER`` events waiting to be taken,
or taken and waiting to be sent, the newest (waiting to be taken) or oldest
(waiting to be sent) are dropped and counted, and the count travels with the
next batch (the state API reports it). ``EMBER_TASK_EVENTS=0`` turns recording
off (a no-op recorder).

An event is ``(task_id, attempt, state, unix_time, payload)``; the payload is
converted to primitives on the sender thread, off the hot path.
"""
from __future__ import annotations

import collections
import logging
import os
import pickle
import threading
import time
from typing import Any, Callable

logger = logging.getLogger("ember")

# Task states, in the order a task goes through them (Ray's names; the store
# never moves a record back to an earlier state).
PENDING_ARGS_AVAIL = 1
PENDING_NODE_ASSIGNMENT = 2
SUBMITTED_TO_WORKER = 3
RUNNING = 4
FINISHED = 5
FAILED = 6
STATE_NAMES = {PENDING_ARGS_AVAIL: "PENDING_ARGS_AVAIL",
               PENDING_NODE_ASSIGNMENT: "PENDING_NODE_ASSIGNMENT",
               SUBMITTED_TO_WORKER: "SUBMITTED_TO_WORKER", RUNNING: "RUNNING",
               FINISHED: "FINISHED", FAILED: "FAILED"}

NORMAL_TASK = "NORMAL_TASK"
ACTOR_CREATION_TASK = "ACTOR_CREATION_TASK"
ACTOR_TASK = "ACTOR_TASK"

# The scheduling key task_submitter uses for actor constructors.
_CREATE_KEY = ("actor-create",)

DEFAULT_BUFFER = 100_000
DEFAULT_INTERVAL_S = 1.0
DEFAULT_SEND_BATCH = 10_000     # Ray's task_events_send_batch_size


class TaskEventBuffer:
    """Buffers this process's task events and sends them in batches.

    >>> buf = TaskEventBuffer(max_events=10)
    >>> buf.record(b"t" * 16, 0, RUNNING)
    >>> [e[2] for e in buf.drain()]
    [4]
    """

    enabled = True

    def __init__(self, max_events: int = DEFAULT_BUFFER,
                 interval_s: float = DEFAULT_INTERVAL_S,
                 send_batch: int = DEFAULT_SEND_BATCH) -> None:
        self._events: collections.deque = collections.deque()
        self._unsent: collections.deque = collections.deque()   # taken, seen by listeners
        self._max = max_events
        self._send_batch = send_batch
        self._interval = interval_s
        self.dropped = 0            # since the last batch went out
        self._send: Callable[[bytes, int, float], None] | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        # Called with each drained batch on the sender thread (metrics_registry.py
        # counts tasks by state from them), off the hot path.
        self.listeners: list[Callable[[list[tuple]], None]] = []

    # ------------------------------------------------------------ hot path
    def record(self, task_id: bytes, attempt: int, state: int, payload: Any = None) -> None:
        """Note that a task attempt reached ``state`` now (cheap: one append)."""
        if len(self._events) >= self._max:
            self.dropped += 1
            return
        self._events.append((task_id, attempt, state, time.time(), payload))

    def submitted(self, spec: Any, key: tuple, parent: Any) -> None:
        """A task (or actor call, or actor constructor) was created by this owner."""
        if spec.actor_id:
            kind, resources = ACTOR_TASK, ()
        elif key == _CREATE_KEY:
            kind, resources = ACTOR_CREATION_TASK, ()
        else:
            kind, resources = NORMAL_TASK, key[0]
        parent_spec = parent.spec if parent is not None else None
        # Workers have no job of their own: a nested task belongs to its parent's.
        job_id = spec.job_id or (parent_spec.job_id if parent_spec is not None else 0)
        self.record(spec.task_id, spec.attempt_number, PENDING_ARGS_AVAIL,
                    (spec.name, job_id, spec.actor_id, kind,
                     parent_spec.task_id if parent_spec is not None else b"", resources,
                     spec.placement_group_id))

    def retrying(self, spec: Any, error: Any = None) -> None:
        """The current attempt failed and the owner runs the task again: the spec
        carries the new attempt number from here on."""
        self.record(spec.task_id, spec.attempt_number, FAILED, error)
        spec.attempt_number += 1
        self.record(spec.task_id, spec.attempt_number, PENDING_NODE_ASSIGNMENT)

    def finished(self, task_id: bytes, attempt: int, returns: Any) -> None:
        """A result came back (owner) or is going out (executor)."""
        for ret in returns:
            if ret.is_error:
                self.record(task_id, attempt, FAILED, ret.data)
                return
        self.record(task_id, attempt, FINISHED)

    # ------------------------------------------------------------ sending
    def start(self, send: Callable[[bytes, int, float], None]) -> None:
        """Send batches with ``send(pickled_events, dropped, timeout)`` from a daemon thread."""
        self._send = send
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="ember-task-events")
        self._thread.start()

    def drain(self) -> list[tuple]:
        """Take every buffered event (thread-safe against concurrent ``record``)."""
        out = []
        pop = self._events.popleft
        try:
            while True:
                out.append(pop())
        except IndexError:
            return out

    def flush(self, timeout: float = 10.0, everything: bool = True) -> None:
        """Send what is buffered now (the state API calls this so the caller's
        own recent tasks show at once; a worker about to exit, so they are not lost).
        ``everything=False`` (the periodic send) sends at most one batch."""
        send = self._send
        if send is None:
            return
        with self._flush_lock:
            events = self.drain()
            for listener in self.listeners:
                try:
                    listener(events)
                except Exception:  # noqa: BLE001 - a listener must not stop the events
                    logger.debug("task event listener failed", exc_info=True)
            unsent = self._unsent
            unsent.extend(events)
            for _ in range(len(unsent) - self._max):
                unsent.popleft()
                self.dropped += 1
            while True:
                batch = [unsent.popleft() for _ in range(min(len(unsent), self._send_batch))]
                dropped, self.dropped = self.dropped, 0
                if not batch and not dropped:
                    return
                try:
                    send(encode(batch), dropped, timeout)
                except Exception as e:  # noqa: BLE001 - observability must never break work
                    self.dropped += dropped + len(batch)
                    logger.debug("could not send %d task events: %s", len(batch), e)
                    return
                if not everything or not unsent:
                    return

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush(everything=False)

    def stop(self, flush: bool = True) -> None:
        self._stopped.set()
        if flush:
            self.flush(timeout=2.0)


class NoTaskEvents:
    """What processes record into when ``EMBER_TASK_EVENTS=0``."""

    enabled = False
    dropped = 0

    def record(self, *args: Any) -> None:
        pass

    submitted = retrying = finished = record

    def start(self, send: Any) -> None:
        pass

    def flush(self, timeout: float = 10.0, everything: bool = True) -> None:
        pass

    def stop(self, flush: bool = True) -> None:
        pass


def from_env() -> TaskEventBuffer | NoTaskEvents:
    """The recorder this process uses, as the environment configures it."""
    if os.environ.get("EMBER_TASK_EVENTS", "1").strip().lower() in ("0", "false", "no", "off"):
        return NoTaskEvents()
    try:
        max_events = int(os.environ.get("EMBER_TASK_EVENTS_BUFFER", DEFAULT_BUFFER))
        interval = float(os.environ.get("EMBER_TASK_EVENTS_INTERVAL_S", DEFAULT_INTERVAL_S))
        send_batch = int(os.environ.get("EMBER_TASK_EVENTS_SEND_BATCH", DEFAULT_SEND_BATCH))
    except ValueError as e:
        raise ValueError(f"bad EMBER_TASK_EVENTS_BUFFER / EMBER_TASK_EVENTS_INTERVAL_S / "
                         f"EMBER_TASK_EVENTS_SEND_BATCH: {e}; use integer numbers of events "
                         "and seconds as a number") from None
    return TaskEventBuffer(max(1, max_events), max(0.01, interval), max(1, send_batch))


def start_sending(core: Any) -> None:
    """Send ``core``'s task events to the control service's StateService."""
    if not core.task_events.enabled:
        return
    from . import rpc
    from .protos import ember_pb2 as pb
    from .protos import ember_pb2_grpc as pbg
    stub = rpc.Stub(core.gcs.channel, pbg.StateServiceStub, core.token)
    pid = os.getpid()

    def send(events: bytes, dropped: int, timeout: float) -> None:
        stub.AddTaskEvents(pb.TaskEventBatch(
            events=events, worker_id=core.worker_id, node_id=core.node_id, pid=pid,
            dropped=dropped), timeout=timeout)

    core.task_events.start(send)


# ------------------------------------------------------------ wire format
def encode(events: list[tuple]) -> bytes:
    """Events as the control service takes them: every payload is primitives already
    (a created task's ``(name, job_id, actor_id, type, parent_task_id, resources,
    placement_group_id)``, a constructor's actor id) except a failure's error,
    which becomes ``(error_type, error_message)`` here."""
    return pickle.dumps([e if e[2] != FAILED or e[4] is None or isinstance(e[4], tuple)
                         else (e[0], e[1], e[2], e[3], error_info(e[4])) for e in events],
                        protocol=5)


# Ray's error types, by the exception that ended the task.
_ERROR_TYPES = {
    "TaskCancelledError": "TASK_CANCELLED",
    "WorkerCrashedError": "WORKER_DIED",
    "ActorDiedError": "ACTOR_DIED",
    "ActorUnavailableError": "ACTOR_UNAVAILABLE",
    "TaskUnschedulableError": "TASK_UNSCHEDULABLE_ERROR",
    "ObjectLostError": "OBJECT_LOST",
    "OwnerDiedError": "OWNER_DIED",
    "OutOfMemoryError": "OUT_OF_MEMORY",
    "RuntimeEnvSetupError": "RUNTIME_ENV_SETUP_FAILED",
}


def error_info(error: Any) -> tuple[str, str]:
    """(error_type, error_message) of a failure: serialized exception bytes, an
    exception, or already such a pair."""
    if isinstance(error, tuple):
        return error
    if isinstance(error, (bytes, bytearray, memoryview)):
        from . import serialization
        try:
            error = serialization.deserialize(bytes(error))
        except Exception as e:  # noqa: BLE001 - the cause may not unpickle here
            return "TASK_EXECUTION_EXCEPTION", f"(the error could not be loaded: {e})"
    from ..exceptions import TaskError
    cls = type(error).__name__
    if isinstance(error, TaskError):
        cause = getattr(error, "cause", None)
        inner = type(cause).__name__ if cause is not None else ""
        if inner in _ERROR_TYPES:
            return _ERROR_TYPES[inner], str(cause)
        return "TASK_EXECUTION_EXCEPTION", getattr(error, "traceback_str", "") or str(error)
    return _ERROR_TYPES.get(cls, "TASK_EXECUTION_EXCEPTION"), f"{cls}: {error}"

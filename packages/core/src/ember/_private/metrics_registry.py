"""This process's metrics and the thread that reports them to its node manager.

``ember.util.metrics`` objects record here: one dict update under a lock, no
RPC. Every ``EMBER_METRICS_REPORT_INTERVAL_S`` (default 5 s) a daemon thread
sends the series that changed since its last report, plus this process's task
counts by state, to the node manager in one ``ReportMetrics`` call; the node
sums them over its processes and serves them to Prometheus (metrics_store.py,
metrics_export.py). Pushing beats scraping each process: a worker needs no
server of its own, and a process that records nothing sends only its task
counts.

Values are cumulative (a counter's total, a histogram's buckets), so a lost or
repeated report loses nothing: the next one carries the current totals.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("ember")

COUNTER, GAUGE, HISTOGRAM = 1, 2, 3
KIND_NAMES = {COUNTER: "Counter", GAUGE: "Gauge", HISTOGRAM: "Histogram"}
DEFAULT_INTERVAL_S = 5.0


def report_interval() -> float:
    raw = os.environ.get("EMBER_METRICS_REPORT_INTERVAL_S", "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"EMBER_METRICS_REPORT_INTERVAL_S={raw!r} is not a number of seconds "
                         "> 0: set it to e.g. 5")
    return value


@dataclass
class _Series:
    value: float = 0.0
    updated: float = 0.0
    buckets: list[float] = field(default_factory=list)
    sum: float = 0.0


@dataclass
class Family:
    """Every series of one metric name in this process."""

    name: str
    kind: int
    description: str
    tag_keys: tuple[str, ...]
    boundaries: tuple[float, ...] = ()
    series: dict[tuple[str, ...], _Series] = field(default_factory=dict)


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.families: dict[str, Family] = {}
        self._dirty: set[tuple[str, tuple[str, ...]]] = set()

    def declare(self, name: str, kind: int, description: str, tag_keys: tuple[str, ...],
                boundaries: tuple[float, ...] = ()) -> Family:
        """The family for ``name``; a second declaration must agree with the first."""
        with self.lock:
            family = self.families.get(name)
            if family is None:
                family = self.families[name] = Family(name, kind, description, tag_keys,
                                                      boundaries)
                return family
        if family.kind != kind:
            raise ValueError(f"metric {name!r} is already a {KIND_NAMES[family.kind]} in this "
                             f"process; a {KIND_NAMES[kind]} needs another name")
        if family.tag_keys != tag_keys or family.boundaries != boundaries:
            raise ValueError(
                f"metric {name!r} was already created with tag_keys={family.tag_keys}"
                + (f", boundaries={list(family.boundaries)}" if family.boundaries else "")
                + ": create it again with the same ones, or pick another name")
        return family

    def record(self, family: Family, tag_values: tuple[str, ...], value: float) -> None:
        with self.lock:
            series = family.series.get(tag_values)
            if series is None:
                series = family.series[tag_values] = _Series()
                if family.kind == HISTOGRAM:
                    series.buckets = [0.0] * (len(family.boundaries) + 1)
            if family.kind == COUNTER:
                series.value += value
            elif family.kind == GAUGE:
                series.value = value
                series.updated = time.time()
            else:
                index = _bucket(family.boundaries, value)
                series.buckets[index] += 1
                series.sum += value
            self._dirty.add((family.name, tag_values))

    def take_changes(self) -> list[Any]:
        """The changed series as protobuf points (and forget they changed)."""
        from .protos import ember_pb2 as pb
        with self.lock:
            dirty, self._dirty = self._dirty, set()
            points = []
            for name, tag_values in dirty:
                family = self.families[name]
                s = family.series[tag_values]
                points.append(pb.MetricPoint(
                    name=name, kind=family.kind, description=family.description,
                    tag_keys=family.tag_keys, tag_values=tag_values, value=s.value,
                    updated=s.updated, boundaries=family.boundaries, bucket_counts=s.buckets,
                    sum=s.sum))
        return points

    def give_back(self, points: list[Any]) -> None:
        """A report failed: send these series again next time."""
        with self.lock:
            self._dirty.update((p.name, tuple(p.tag_values)) for p in points)

    def mark_all_dirty(self) -> None:
        """A new node manager knows nothing yet: send everything."""
        with self.lock:
            self._dirty = {(f.name, key) for f in self.families.values() for key in f.series}


def _bucket(boundaries: tuple[float, ...], value: float) -> int:
    # Prometheus buckets are "<= upper bound"; the last one is +Inf.
    for i, bound in enumerate(boundaries):
        if value <= bound:
            return i
    return len(boundaries)


registry = Registry()


# ------------------------------------------------------------ reporting
class _Reporter:
    def __init__(self, core: Any) -> None:
        from . import rpc
        from .protos import ember_pb2_grpc as pbg
        from .task_state_counts import TaskStateCounts
        self.core = core
        self.interval = report_interval()
        self.stub = rpc.Stub(rpc.channel(core.node_manager_address), pbg.MetricsServiceStub,
                             core.token)
        self.tasks = TaskStateCounts()
        self.tasks_lock = threading.Lock()
        self._sent_tasks: dict[str, float] | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="ember-metrics")

    def on_task_events(self, events: list[tuple]) -> None:
        with self.tasks_lock:
            self.tasks.apply(events)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self.send()

    def send(self, final: bool = False, timeout: float = 5.0) -> None:
        from .protos import ember_pb2 as pb
        points = registry.take_changes()
        with self.tasks_lock:
            tasks = self.tasks.counts()
        if not points and tasks == self._sent_tasks and not final:
            return
        report = pb.MetricsReport(process_id=self.core.worker_id, pid=os.getpid(),
                                  points=points, task_states=tasks, final=final)
        try:
            self.stub.ReportMetrics(report, timeout=timeout)
            self._sent_tasks = tasks
        except Exception as e:  # noqa: BLE001 - observability must never break work
            registry.give_back(points)
            logger.debug("could not report metrics: %s", e)


_reporter: _Reporter | None = None
_reporter_lock = threading.Lock()


def start_reporting(core: Any) -> None:
    """Report this process's metrics to ``core``'s node manager from now on.

    Called once the process is connected (driver: ``init``; worker: at start).
    """
    global _reporter
    with _reporter_lock:
        if _reporter is not None:
            return
        reporter = _reporter = _Reporter(core)
    listeners = getattr(core.task_events, "listeners", None)
    if listeners is not None:
        listeners.append(reporter.on_task_events)
    registry.mark_all_dirty()
    reporter.thread.start()


def process_leaving() -> None:
    """Send a last report (so counts of this process's live tasks go) and stop."""
    global _reporter
    with _reporter_lock:
        reporter, _reporter = _reporter, None
    if reporter is None:
        return
    reporter.stopped.set()
    listeners = getattr(reporter.core.task_events, "listeners", None)
    if listeners is not None and reporter.on_task_events in listeners:
        listeners.remove(reporter.on_task_events)
    reporter.send(final=True, timeout=2.0)


def flush(timeout: float = 5.0) -> None:
    """Send what changed now instead of at the next interval (tests, exiting workers)."""
    reporter = _reporter
    if reporter is not None:
        reporter.send(timeout=timeout)

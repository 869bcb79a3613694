"""A node's metrics: the latest report of each of its processes, summed (pure).

Each process reports cumulative values (metrics_registry.py). The node keeps
the latest value of every series per process and exports, per series:

- counters and histograms: the sum over processes, including processes that
  have exited (their last totals are folded into a retired total, so a
  counter never goes backwards when a worker dies);
- gauges: the value set most recently by any process on the node (Ray's
  "last value" gauge);
- task counts by state: the sum over live processes for current states; the
  ended states (FINISHED, FAILED) keep the totals of processes that are gone.

A process that stops reporting for ``stale_after`` seconds (a driver killed
with SIGKILL) counts as gone, like one whose exit the node saw.

>>> from types import SimpleNamespace as R
>>> store = MetricsStore()
>>> p = R(name="hits", kind=1, description="", tag_keys=["k"], tag_values=["a"], value=2.0,
...       updated=0.0, boundaries=[], bucket_counts=[], sum=0.0)
>>> store.report(R(process_id="w1", points=[p], task_states={}, final=False), now=0.0)
>>> store.report(R(process_id="w2", points=[p], task_states={}, final=False), now=0.0)
>>> [(f.name, f.samples) for f in store.families()]
[('hits', [Sample(tag_values=('a',), value=4.0, buckets=(), sum=0.0)])]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .metrics_registry import COUNTER, GAUGE, HISTOGRAM
from .task_state_counts import CUMULATIVE

DEFAULT_STALE_AFTER_S = 120.0


@dataclass(frozen=True)
class Sample:
    tag_values: tuple[str, ...]
    value: float = 0.0
    buckets: tuple[float, ...] = ()     # per bucket, not cumulative; last is +Inf
    sum: float = 0.0


@dataclass
class FamilyView:
    name: str
    kind: int
    description: str
    tag_keys: tuple[str, ...]
    boundaries: tuple[float, ...]
    samples: list[Sample] = field(default_factory=list)


@dataclass
class _Value:
    value: float = 0.0
    updated: float = 0.0
    buckets: tuple[float, ...] = ()
    sum: float = 0.0


@dataclass
class _Process:
    series: dict[tuple[str, tuple[str, ...]], _Value] = field(default_factory=dict)
    task_states: dict[str, float] = field(default_factory=dict)
    last_seen: float = 0.0


class MetricsStore:
    def __init__(self, stale_after: float = DEFAULT_STALE_AFTER_S) -> None:
        self.stale_after = stale_after
        self._meta: dict[str, tuple[int, str, tuple[str, ...], tuple[float, ...]]] = {}
        self._procs: dict[str, _Process] = {}
        self._retired: dict[tuple[str, tuple[str, ...]], _Value] = {}
        self._retired_tasks: dict[str, float] = {}
        self.conflicts: set[str] = set()     # names reported with disagreeing definitions

    # ------------------------------------------------------------ events
    def report(self, report: Any, now: float) -> None:
        """Take one process's ``MetricsReport`` (the latest values of what changed)."""
        proc = self._procs.get(report.process_id)
        if proc is None:
            proc = self._procs[report.process_id] = _Process()
        proc.last_seen = now
        for p in report.points:
            meta = (p.kind, p.description, tuple(p.tag_keys), tuple(p.boundaries))
            known = self._meta.setdefault(p.name, meta)
            if (known[0], known[2], known[3]) != (meta[0], meta[2], meta[3]):
                self.conflicts.add(p.name)
                continue
            proc.series[(p.name, tuple(p.tag_values))] = _Value(
                p.value, p.updated, tuple(p.bucket_counts), p.sum)
        if report.task_states:
            proc.task_states = dict(report.task_states)
        if report.final:
            self.process_gone(report.process_id)

    def process_gone(self, process_id: str) -> None:
        """The process exited: keep its totals, drop its current counts."""
        proc = self._procs.pop(process_id, None)
        if proc is None:
            return
        for key, v in proc.series.items():
            kind = self._meta[key[0]][0]
            old = self._retired.get(key)
            if kind == GAUGE:
                if old is None or v.updated >= old.updated:
                    self._retired[key] = v
            elif old is None:
                self._retired[key] = v
            else:
                self._retired[key] = _Value(old.value + v.value, 0.0,
                                            _add(old.buckets, v.buckets), old.sum + v.sum)
        for state in CUMULATIVE:
            self._retired_tasks[state] = (self._retired_tasks.get(state, 0.0)
                                          + proc.task_states.get(state, 0.0))

    def expire(self, now: float) -> list[str]:
        """Treat processes silent for ``stale_after`` seconds as gone; return their ids."""
        gone = [pid for pid, p in self._procs.items() if now - p.last_seen > self.stale_after]
        for pid in gone:
            self.process_gone(pid)
        return gone

    # ------------------------------------------------------------ views
    def families(self) -> list[FamilyView]:
        """Every user metric, summed over this node's processes, sorted by name."""
        merged: dict[tuple[str, tuple[str, ...]], _Value] = dict(self._retired)
        for proc in self._procs.values():
            for key, v in proc.series.items():
                kind = self._meta[key[0]][0]
                old = merged.get(key)
                if old is None:
                    merged[key] = v
                elif kind == GAUGE:
                    if v.updated >= old.updated:
                        merged[key] = v
                else:
                    merged[key] = _Value(old.value + v.value, 0.0, _add(old.buckets, v.buckets),
                                         old.sum + v.sum)
        views: dict[str, FamilyView] = {}
        for (name, tag_values), v in sorted(merged.items()):
            kind, description, tag_keys, boundaries = self._meta[name]
            view = views.get(name)
            if view is None:
                view = views[name] = FamilyView(name, kind, description, tag_keys, boundaries)
            view.samples.append(Sample(tag_values, v.value if kind != HISTOGRAM else 0.0,
                                       v.buckets, v.sum))
        return [views[n] for n in sorted(views)]

    def task_states(self) -> dict[str, float]:
        """This node's tasks by state (Ray's state names)."""
        out = dict(self._retired_tasks)
        for proc in self._procs.values():
            for state, n in proc.task_states.items():
                out[state] = out.get(state, 0.0) + n
        return out

    def num_processes(self) -> int:
        return len(self._procs)


def _add(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    if not a:
        return b
    if not b:
        return a
    return tuple(x + y for x, y in zip(a, b))


__all__ = ["COUNTER", "GAUGE", "HISTOGRAM", "FamilyView", "MetricsStore", "Sample"]

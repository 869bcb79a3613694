"""metrics_store: summing processes' reports on a node (pure)."""
from __future__ import annotations

from types import SimpleNamespace

from ember._private.metrics_registry import COUNTER, GAUGE, HISTOGRAM
from ember._private.metrics_store import MetricsStore, Sample


def point(name, kind, value=0.0, tags=("a",), updated=0.0, buckets=(), total=0.0,
          keys=("k",), boundaries=()):
    return SimpleNamespace(name=name, kind=kind, description="d", tag_keys=list(keys),
                           tag_values=list(tags), value=value, updated=updated,
                           boundaries=list(boundaries), bucket_counts=list(buckets), sum=total)


def report(pid, points=(), tasks=None, final=False):
    return SimpleNamespace(process_id=pid, points=list(points), task_states=tasks or {},
                           final=final)


def samples(store, name):
    return {f.name: f.samples for f in store.families()}.get(name)


def test_counters_sum_over_processes_and_survive_their_exit():
    s = MetricsStore()
    s.report(report("w1", [point("c", COUNTER, 2)]), now=0)
    s.report(report("w2", [point("c", COUNTER, 3)]), now=0)
    s.report(report("w1", [point("c", COUNTER, 5)]), now=1)     # cumulative: replaces
    assert samples(s, "c") == [Sample(("a",), 8.0)]
    s.process_gone("w1")
    assert samples(s, "c") == [Sample(("a",), 8.0)]             # never goes backwards
    s.report(report("w3", [point("c", COUNTER, 1)]), now=2)
    assert samples(s, "c") == [Sample(("a",), 9.0)]


def test_gauge_is_the_last_value_set_on_the_node():
    s = MetricsStore()
    s.report(report("w1", [point("g", GAUGE, 1.0, updated=10)]), now=0)
    s.report(report("w2", [point("g", GAUGE, 7.0, updated=5)]), now=0)   # set earlier
    assert samples(s, "g") == [Sample(("a",), 1.0)]
    s.report(report("w2", [point("g", GAUGE, 3.0, updated=11)]), now=1)
    assert samples(s, "g") == [Sample(("a",), 3.0)]
    s.process_gone("w2")
    assert samples(s, "g") == [Sample(("a",), 3.0)]


def test_histograms_sum_buckets():
    s = MetricsStore()
    h = dict(keys=(), tags=(), boundaries=(1.0,))
    s.report(report("w1", [point("h", HISTOGRAM, buckets=(1, 0), total=0.5, **h)]), now=0)
    s.report(report("w2", [point("h", HISTOGRAM, buckets=(1, 2), total=7.0, **h)]), now=0)
    assert samples(s, "h") == [Sample((), 0.0, (2.0, 2.0), 7.5)]
    [fam] = s.families()
    assert (fam.kind, fam.boundaries) == (HISTOGRAM, (1.0,))


def test_conflicting_definitions_keep_the_first():
    s = MetricsStore()
    s.report(report("w1", [point("x", COUNTER, 1)]), now=0)
    s.report(report("w2", [point("x", GAUGE, 5)]), now=0)
    assert s.conflicts == {"x"}
    assert samples(s, "x") == [Sample(("a",), 1.0)]


def test_task_states_current_counts_go_with_the_process_totals_stay():
    s = MetricsStore()
    s.report(report("w1", tasks={"RUNNING": 2, "FINISHED": 5, "FAILED": 1}), now=0)
    s.report(report("d", tasks={"SUBMITTED_TO_WORKER": 2, "FINISHED": 3}), now=0)
    assert s.task_states() == {"RUNNING": 2, "FINISHED": 8, "FAILED": 1,
                               "SUBMITTED_TO_WORKER": 2}
    s.report(report("d", tasks={"SUBMITTED_TO_WORKER": 0, "FINISHED": 4}, final=True), now=1)
    s.process_gone("w1")
    assert s.task_states() == {"FINISHED": 9, "FAILED": 1}
    assert s.num_processes() == 0


def test_silent_processes_expire():
    s = MetricsStore(stale_after=10)
    s.report(report("w1", tasks={"RUNNING": 1}), now=0)
    s.report(report("w2", tasks={"RUNNING": 1}), now=8)
    assert s.expire(now=12) == ["w1"]
    assert s.task_states().get("RUNNING") == 1

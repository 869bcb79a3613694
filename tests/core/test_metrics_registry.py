"""metrics_registry: a process's series and what each report sends (no cluster)."""
from __future__ import annotations

from ember._private.metrics_registry import COUNTER, GAUGE, HISTOGRAM, Registry


def test_only_changed_series_are_sent_and_failed_ones_again():
    r = Registry()
    c = r.declare("c", COUNTER, "", ("k",))
    r.record(c, ("a",), 1.0)
    r.record(c, ("a",), 2.0)
    [p] = r.take_changes()
    assert (p.name, list(p.tag_values), p.value) == ("c", ["a"], 3.0)
    assert r.take_changes() == []
    r.give_back([p])
    assert [q.value for q in r.take_changes()] == [3.0]
    r.mark_all_dirty()
    assert len(r.take_changes()) == 1


def test_gauge_and_histogram_values():
    r = Registry()
    g = r.declare("g", GAUGE, "", ())
    h = r.declare("h", HISTOGRAM, "", (), (1.0, 5.0))
    r.record(g, (), 4.0)
    r.record(g, (), 2.0)
    for v in (0.5, 1.0, 3.0, 99.0):
        r.record(h, (), v)
    points = {p.name: p for p in r.take_changes()}
    assert points["g"].value == 2.0 and points["g"].updated > 0
    assert list(points["h"].bucket_counts) == [2.0, 1.0, 1.0]     # "<=" bounds, then +Inf
    assert points["h"].sum == 103.5

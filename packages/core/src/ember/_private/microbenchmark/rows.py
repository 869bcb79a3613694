"""The metrics `ember microbenchmark` measures: names, units, targets (pure data).

Rows of phase ``rows`` are `ray microbenchmark`'s (ray/_private/ray_perf.py,
Ray 2.60), under Ray's exact names; the others are the extras issue #6 asks
for. ``probe.py`` holds the code that measures each key; this module is what
the parent side needs to pick rows and judge results.

>>> by_key("tasks-sync").name
'single client tasks sync'
>>> by_key("import-first-result").better
'lower'
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    key: str          # short name for --rows
    name: str         # as `ray microbenchmark` prints it (extras: our own)
    unit: str         # of the value (per second for Ray's rows)
    phase: str        # which probe phase measures it: rows, startup, transfer
    target: float     # Ember/Ray ratio to reach: >= target if better="higher", else <=
    better: str = "higher"
    needs: str = ""   # optional module the row needs in the probe (numpy)


def _r(key: str, name: str, target: float = 1.0, needs: str = "") -> Row:
    return Row(key, name, "per second", "rows", target, needs=needs)


ROWS: list[Row] = [
    _r("get-calls", "single client get calls (Plasma Store)"),
    _r("put-calls", "single client put calls (Plasma Store)"),
    _r("multi-put-calls", "multi client put calls (Plasma Store)"),
    _r("put-gigabytes", "single client put gigabytes", needs="numpy"),
    _r("tasks-get-batch", "single client tasks and get batch"),
    _r("multi-put-gigabytes", "multi client put gigabytes", needs="numpy"),
    _r("get-10k-refs", "single client get object containing 10k refs"),
    _r("wait-1k-refs", "single client wait 1k refs"),
    _r("tasks-sync", "single client tasks sync", 3.0),
    _r("tasks-async", "single client tasks async", 3.0),
    _r("multi-tasks-async", "multi client tasks async"),
    _r("actor-sync", "1:1 actor calls sync", 3.0),
    _r("actor-async", "1:1 actor calls async", 3.0),
    _r("actor-concurrent", "1:1 actor calls concurrent"),
    _r("actor-1n", "1:n actor calls async"),
    _r("actor-nn", "n:n actor calls async"),
    _r("actor-nn-arg", "n:n actor calls with arg async"),
    _r("async-actor-sync", "1:1 async-actor calls sync"),
    _r("async-actor-async", "1:1 async-actor calls async"),
    _r("async-actor-args", "1:1 async-actor calls with args async"),
    _r("async-actor-1n", "1:n async-actor calls async"),
    _r("async-actor-nn", "n:n async-actor calls async"),
    _r("pg-create-removal", "placement group create/removal"),
    # Extras (issue #6): not in `ray microbenchmark`.
    Row("actor-creation", "actor creation rate", "actors/s", "rows", 1.0),
    Row("import-first-result", "import to first task result", "s", "startup", 1 / 15,
        better="lower"),
    Row("idle-processes", "idle cluster processes", "processes", "startup", 0.0,
        better="info"),
    Row("idle-memory", "idle cluster memory (PSS)", "MB", "startup", 1 / 3, better="lower"),
    Row("transfer-1gb", "1 GB object between two nodes", "GB/s", "transfer", 1.0,
        needs="numpy"),
]

_BY_KEY = {r.key: r for r in ROWS}
_BY_NAME = {r.name: r for r in ROWS}
# Ray's own rows, in Ray's order: what `ember microbenchmark` runs by default.
MICRO_KEYS = [r.key for r in ROWS if r.phase == "rows" and r.key != "actor-creation"]
EXTRA_KEYS = [r.key for r in ROWS if r.key not in MICRO_KEYS]


def by_key(key: str) -> Row:
    return _BY_KEY[key]


def select(spec: str | None, default: list[str]) -> list[str]:
    """Keys for a ``--rows`` value: comma-separated keys or full row names, or
    "all", "micro" (Ray's rows), "extras"; None gives ``default``.

    >>> select("tasks-sync,1:1 actor calls sync", [])
    ['tasks-sync', 'actor-sync']
    """
    if not spec:
        return list(default)
    keys: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "all":
            keys += [r.key for r in ROWS]
        elif item == "micro":
            keys += MICRO_KEYS
        elif item == "extras":
            keys += EXTRA_KEYS
        elif item in _BY_KEY:
            keys.append(item)
        elif item in _BY_NAME:
            keys.append(_BY_NAME[item].key)
        else:
            raise ValueError(f"unknown row {item!r}: pick from all, micro, extras, "
                             + ", ".join(_BY_KEY) + " (or a full row name)")
    return list(dict.fromkeys(keys))  # first occurrence of each, in order

"""Task throughput: the task rows of `ray microbenchmark`, Ember only.

    python tools/bench/tasks.py [--duration 2.0] [--repeat 4] [--warmup 1.0]
                                [--quick] [--rows sync,async] [--json out.json]

A thin front end of tools/bench/compare_ray.py (ember/_private/microbenchmark/):
"sync" is "single client tasks sync", "async" is "single client tasks async";
any other row key of compare_ray.py is accepted too. Set EMBER_TASK_EVENTS=0
in the environment to measure with task events off (the before/after of
recording them).
"""
from __future__ import annotations

import os
import sys

from compare_ray import main as compare_main

_SHORT = {"sync": "tasks-sync", "async": "tasks-async"}


if __name__ == "__main__":
    argv = sys.argv[1:]
    rows = "sync,async"
    for i, a in enumerate(argv):
        if a == "--rows" and i + 1 < len(argv):
            rows = argv.pop(i + 1)
            argv.pop(i)
            break
        if a.startswith("--rows="):
            rows = argv.pop(i).split("=", 1)[1]
            break
    keys = [_SHORT.get(r.strip(), r.strip()) for r in rows.split(",") if r.strip()]
    events = os.environ.get("EMBER_TASK_EVENTS", "1")
    print(f"task events {'off' if events == '0' else 'on'}")
    sys.exit(compare_main(["--rows", ",".join(keys), *argv]))

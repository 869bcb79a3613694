"""Actor-call throughput, Ember vs Ray: the actor rows of `ray microbenchmark`.

    python tools/bench/actors.py [--ray-python PATH] [--python PATH] [--no-ember]
                                 [--rows KEY,...] [--duration 2.0] [--repeat 4]
                                 [--warmup 1.0] [--quick] [--json out.json]

A thin front end of tools/bench/compare_ray.py (ember/_private/microbenchmark/)
limited to the actor rows; see there for how rows are measured. Omit
--ray-python to measure Ember only; --no-ember measures Ray only.
"""
from __future__ import annotations

import sys

from compare_ray import main as compare_main

ACTOR_ROWS = ["actor-sync", "actor-async", "actor-concurrent", "actor-1n", "actor-nn",
              "actor-nn-arg", "async-actor-sync", "async-actor-async", "async-actor-args",
              "async-actor-1n", "async-actor-nn"]


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--rows" or a.startswith("--rows=") for a in argv):
        argv = ["--rows", ",".join(ACTOR_ROWS), *argv]
    sys.exit(compare_main(argv))

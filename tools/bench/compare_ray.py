"""Ember vs Ray, side by side: `ray microbenchmark`'s rows plus the issue #6 extras.

    python tools/bench/compare_ray.py --ray-python /tmp/ray-venv/bin/python
                                      [--quick] [--json out.json] [--rows KEYS]
                                      [--python PATH] [--no-ember]
                                      [--duration 2] [--repeat 4] [--warmup 1]

Runs the same probe (ember/_private/microbenchmark/probe.py) under Ember and
then under Ray (from a venv made by ../shared/tools/ray-venv.sh), each in fresh
interpreters, one after the other in this run, and prints a table: metric,
Ember, Ray, Ember/Ray, target, met? (--json writes it with every run's
figures). Rows: Ray's microbenchmark rows under Ray's names, then actor
creation rate, import to first task result, idle cluster processes and
memory (PSS of the driver and every cluster process after init and 5 s idle),
and a 1 GiB object pulled from one node to another of a two-node
cluster_utils.Cluster. `--quick` (warm-up 0.2 s, one 0.5 s run, smaller
batches for the longest rows, one start-up and one transfer) is meant to
finish both frameworks in under 3 minutes. `ember microbenchmark` is the same
for Ember alone (or with --ray-python).
"""
from __future__ import annotations

import argparse
import sys

from ember._private.microbenchmark import compare, runner
from ember._private.microbenchmark.rows import ROWS, select


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-python", help="python of a venv made by "
                        "../shared/tools/ray-venv.sh (e.g. /tmp/ray-venv/bin/python)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for Ember")
    parser.add_argument("--no-ember", action="store_true", help="measure Ray only")
    parser.add_argument("--rows", help="comma-separated keys or full names, or all / micro / "
                        "extras (default all): " + ", ".join(r.key for r in ROWS))
    parser.add_argument("--quick", action="store_true",
                        help="warm-up 0.2 s, one 0.5 s run, smaller batches: under 3 minutes")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 2)")
    parser.add_argument("--repeat", type=int, help="timed runs per row (default 4)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per row (default 1)")
    parser.add_argument("--row-timeout", type=float,
                        help="seconds without progress before a row counts as hung (120)")
    parser.add_argument("--json", help="also write the table and every figure here")
    args = parser.parse_args(argv)
    if args.no_ember and not args.ray_python:
        parser.error("--no-ember needs --ray-python")
    try:
        keys = select(args.rows, [r.key for r in ROWS])
    except ValueError as e:
        parser.error(str(e))
    settings = runner.Settings.make(quick=args.quick, duration=args.duration,
                                    repeat=args.repeat, warmup=args.warmup,
                                    row_timeout=args.row_timeout)
    compare.run(keys, settings, python=args.python, ray_python=args.ray_python,
                no_ember=args.no_ember, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

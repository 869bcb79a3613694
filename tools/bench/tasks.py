"""Task throughput: the task rows of `ray microbenchmark`, Ember only.

    python tools/bench/tasks.py [--duration 2.0] [--repeat 4] [--warmup 1.0]
                                [--quick] [--rows sync,async] [--json out.json]

Rows (ray/_private/ray_perf.py's loops on a no-op task):
  sync   "single client tasks sync":  get(small_value.remote()) one at a time
  async  "single client tasks async": get([small_value.remote() for _ in 1000])

Each run starts a fresh interpreter with ``ember.init(num_cpus=<cpu count>)``;
tasks/s is mean +- population std over --repeat runs of --duration seconds
after --warmup seconds. Set EMBER_TASK_EVENTS=0 in the environment to measure
with task events off (the before/after of recording them).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_PROBE = r"""
import json, statistics, sys, time
import ember
CFG = json.loads(sys.argv[1])
ember.init(num_cpus=CFG["num_cpus"])

@ember.remote
def small_value():
    return b"ok"

def timeit(fn, multiplier):
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < CFG["warmup"]:
        fn()
        count += 1
    step = count // 10 + 1
    stats = []
    for _ in range(CFG["repeat"]):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < CFG["duration"]:
            for _ in range(step):
                fn()
            count += step
        stats.append(multiplier * count / (time.perf_counter() - start))
    return stats

ember.get([small_value.remote() for _ in range(100)])
out = {}
for row in CFG["rows"]:
    if row == "sync":
        stats = timeit(lambda: ember.get(small_value.remote()), 1)
    else:
        stats = timeit(lambda: ember.get([small_value.remote() for _ in range(1000)]), 1000)
    out[row] = {"mean": statistics.fmean(stats), "std": statistics.pstdev(stats), "runs": stats}
print("@@BENCH", json.dumps(out), flush=True)
ember.shutdown()
"""

NAMES = {"sync": "single client tasks sync", "async": "single client tasks async"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rows", default="sync,async")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="--duration 0.5 --repeat 1 "
                        "--warmup 0.5")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat, args.warmup = 0.5, 1, 0.5
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in NAMES]
    if unknown:
        parser.error(f"unknown row(s) {unknown}: pick from {sorted(NAMES)}")
    cfg = {"rows": rows, "num_cpus": os.cpu_count() or 1, "duration": args.duration,
           "repeat": args.repeat, "warmup": args.warmup}
    proc = subprocess.run([args.python, "-c", _PROBE, json.dumps(cfg)], capture_output=True,
                          text=True, timeout=600)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@BENCH ")), None)
    if line is None:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        return 1
    results = json.loads(line[len("@@BENCH "):])
    events = os.environ.get("EMBER_TASK_EVENTS", "1")
    print(f"task events {'off' if events == '0' else 'on'}")
    for row, r in results.items():
        print(f"{NAMES[row]:<30} {r['mean']:>10.0f} +- {r['std']:.0f} tasks/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

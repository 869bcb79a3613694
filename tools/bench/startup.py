"""Start-up and footprint of an embedded cluster: the figures issue #2 reports.

    python tools/bench/startup.py [--python PATH] [--repeat 5] [--json out.json]

Runs each measurement in a fresh interpreter (so imports are cold for the
process, as for a user): time from `import ember` to the first task result,
then the idle cluster's process count and resident memory (driver included).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_PROBE = r"""
import time
t0 = time.perf_counter()
import ember
ember.init(num_cpus=2)
@ember.remote
def f():
    return 1
assert ember.get(f.remote()) == 1
first = time.perf_counter() - t0
time.sleep(2.0)  # let prestarted workers settle: this is the idle cluster
from ember.testing import cluster_processes
import os
pids = [os.getpid()] + cluster_processes()
def rss(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
print("RESULT", first, len(pids), sum(rss(p) for p in pids))
ember.shutdown()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    firsts, procs, rss = [], [], []
    for _ in range(args.repeat):
        out = subprocess.run([args.python, "-c", _PROBE], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("RESULT"))
        _, first, nproc, mem = line.split()
        firsts.append(float(first))
        procs.append(int(nproc))
        rss.append(int(mem))
    result = {
        "import_to_first_result_s_median": statistics.median(firsts),
        "import_to_first_result_s_all": firsts,
        "idle_processes": max(procs),
        "idle_rss_mb": statistics.median(rss) / 1e6,
    }
    print(f"{'metric':<32}{'Ember':>12}{'Ray 2.60 (anchor)':>20}")
    print(f"{'import -> first result (s)':<32}{result['import_to_first_result_s_median']:>12.3f}"
          f"{'8.3':>20}")
    print(f"{'idle cluster processes':<32}{result['idle_processes']:>12d}{'9':>20}")
    print(f"{'idle cluster RSS (MB)':<32}{result['idle_rss_mb']:>12.0f}{'955':>20}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

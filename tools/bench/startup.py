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
import MODULE as fw
fw.init(num_cpus=2, INIT_EXTRA)
@fw.remote
def f():
    return 1
assert fw.get(f.remote()) == 1
first = time.perf_counter() - t0
time.sleep(3.0)  # let prestarted workers settle: this is the idle cluster
import os
def children(pid):
    out = []
    for path in __import__("glob").glob(f"/proc/{pid}/task/*/children"):
        with open(path) as fh:
            for c in fh.read().split():
                out += [int(c)] + children(int(c))
    return out
pids = [os.getpid()] + children(os.getpid())
def rss(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
print("RESULT", first, len(pids), sum(rss(p) for p in pids))
fw.shutdown()
"""


def probe(python: str, framework: str) -> tuple[float, int, int]:
    code = _PROBE.replace("MODULE", framework).replace(
        "INIT_EXTRA", "include_dashboard=False" if framework == "ray" else "")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True,
                         timeout=180, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    _, first, nproc, mem = line.split()
    return float(first), int(nproc), int(mem)


def summarize(runs: list[tuple[float, int, int]]) -> dict:
    return {"import_to_first_result_s_median": statistics.median(r[0] for r in runs),
            "import_to_first_result_s_all": [r[0] for r in runs],
            "idle_processes": max(r[1] for r in runs),
            "idle_rss_mb": statistics.median(r[2] for r in runs) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ray-python", help="python of a venv made by ../shared/tools/ray-venv.sh")
    parser.add_argument("--json")
    args = parser.parse_args()
    # Time the frameworks, not the compiler (see runner.precompile).
    from ember._private.microbenchmark.runner import precompile
    precompile(args.python, "ember")
    if args.ray_python:
        precompile(args.ray_python, "ray")
    ember = summarize([probe(args.python, "ember") for _ in range(args.repeat)])
    ray = (summarize([probe(args.ray_python, "ray") for _ in range(args.repeat)])
           if args.ray_python else None)
    result = {"ember": ember, "ray": ray}
    rows = [("import -> first result (s)", "import_to_first_result_s_median", "{:.3f}"),
            ("idle cluster processes", "idle_processes", "{:d}"),
            ("idle cluster RSS (MB)", "idle_rss_mb", "{:.0f}")]
    print(f"{'metric':<30}{'Ember':>10}{'Ray':>10}{'Ember/Ray':>11}")
    for label, key, fmt in rows:
        e = ember[key]
        r = ray[key] if ray else None
        ratio = f"{e / r:.3f}" if r else "-"
        print(f"{label:<30}{fmt.format(e):>10}{(fmt.format(r) if r is not None else '-'):>10}"
              f"{ratio:>11}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

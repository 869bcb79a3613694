"""Actor-call throughput, Ember vs Ray: the actor rows of `ray microbenchmark`.

    python tools/bench/actors.py [--ray-python PATH] [--python PATH] [--no-ember]
                                 [--rows KEY,...] [--duration 2.0] [--repeat 4]
                                 [--warmup 1.0] [--quick] [--json out.json]

Each framework runs the SAME probe code (below) in a fresh interpreter,
`import MODULE as fw`, one after the other in this run, with
`fw.init(num_cpus=<this machine's cpu count>)` (Ray also gets
`include_dashboard=False`). Omit --ray-python to measure Ember only;
--no-ember measures Ray only.

Rows follow ray/_private/ray_perf.py (Ray 2.60), same actor classes and call
loops; timing follows ray_microbenchmark_helpers.timeit: warm up for --warmup
seconds, then --repeat runs of --duration seconds each, calls/s reported as
mean +- population std over the runs. Differences from `ray microbenchmark`:
no 10 s "noisy neighbour" sleep before each row; one blocking call makes sure
each row's actors are up before the warm-up starts; actors are killed at the
end of their row; and "1:n actor calls async" is driven from the driver
(round-robin over n = max(2, cpu count) actors, 1000 calls a batch) where Ray
drives it from a Client actor over cpu_count // 2 actors, 5000 calls each.

A row that raises, hangs (past warm-up + runs + --row-timeout) or kills its
interpreter is reported as an error; the remaining rows go on in a new one.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# (key for --rows, row name as `ray microbenchmark` prints it)
ROWS = [
    ("actor-sync", "1:1 actor calls sync"),
    ("actor-async", "1:1 actor calls async"),
    ("actor-concurrent", "1:1 actor calls concurrent"),
    ("actor-1n", "1:n actor calls async"),
    ("async-actor-sync", "1:1 async-actor calls sync"),
    ("async-actor-async", "1:1 async-actor calls async"),
    ("async-actor-args", "1:1 async-actor calls with args async"),
]
_NAMES = dict(ROWS)
_MARK = "@@BENCH"

_PROBE = r"""
import json, os, statistics, sys, time
CFG = json.loads(sys.argv[1])
MARK = CFG["mark"]

def say(*parts):
    print(MARK, *parts, flush=True)

import MODULE as fw
fw.init(num_cpus=CFG["num_cpus"], **CFG["init_extra"])


@fw.remote(num_cpus=0)
class Actor:
    def small_value(self):
        return b"ok"


@fw.remote
class AsyncActor:
    async def small_value(self):
        return b"ok"

    async def small_value_with_arg(self, x):
        return b"ok"


say("READY", json.dumps({"version": getattr(fw, "__version__", "?")}))


def timeit(fn, multiplier):
    # ray_microbenchmark_helpers.timeit, with the durations as parameters.
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
        end = time.perf_counter()
        stats.append(multiplier * count / (end - start))
    return stats


def batch_of(method, n=1000):
    return lambda: fw.get([method.remote() for _ in range(n)])


def setup(key):
    # -> (actors, fn, calls per fn()); the loops are ray_perf.py's.
    if key == "actor-sync":
        a = Actor.remote()
        return [a], (lambda: fw.get(a.small_value.remote())), 1
    if key == "actor-async":
        a = Actor.remote()
        return [a], batch_of(a.small_value), 1000
    if key == "actor-concurrent":
        a = Actor.options(max_concurrency=16).remote()
        return [a], batch_of(a.small_value), 1000
    if key == "actor-1n":
        n = max(2, CFG["num_cpus"])
        actors = [Actor.remote() for _ in range(n)]
        fn = lambda: fw.get([actors[i % n].small_value.remote() for i in range(1000)])
        return actors, fn, 1000
    if key == "async-actor-sync":
        a = AsyncActor.remote()
        return [a], (lambda: fw.get(a.small_value.remote())), 1
    if key == "async-actor-async":
        a = AsyncActor.remote()
        return [a], batch_of(a.small_value), 1000
    if key == "async-actor-args":
        a = AsyncActor.remote()
        fn = lambda: fw.get([a.small_value_with_arg.remote(i) for i in range(1000)])
        return [a], fn, 1000
    raise KeyError(key)


for key in CFG["rows"]:
    say("START", key)
    try:
        actors, fn, mult = setup(key)
        # Every actor up and answering before the warm-up starts.
        assert fw.get([a.small_value.remote() for a in actors]) == [b"ok"] * len(actors)
        stats = timeit(fn, mult)
        say("ROW", key, json.dumps({"mean": statistics.fmean(stats),
                                    "std": statistics.pstdev(stats), "runs": stats}))
        for a in actors:
            if hasattr(fw, "kill"):
                fw.kill(a)
        del actors, fn, a
    except Exception as e:
        say("ERROR", key, json.dumps(f"{type(e).__name__}: {e}"[:500]))
say("DONE")
fw.shutdown()
"""


def _reader(stream, q: queue.Queue) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def _tail(path: str, n: int = 15) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:]).strip()


def _stop(proc: subprocess.Popen, grace: float) -> None:
    # The probe runs in its own session: after `grace` seconds to shut down,
    # take its whole process group (the cluster it started) down with it, also
    # when the probe itself already died and left its cluster behind.
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_probe(python: str, module: str, keys: list[str], args) -> tuple[dict, dict]:
    """Runs `keys` in fresh interpreters; -> ({key: result or {"error"}}, info)."""
    results: dict = {}
    info: dict = {}
    row_budget = args.warmup + args.repeat * args.duration + args.row_timeout
    pending = list(keys)
    while pending:
        cfg = {"mark": _MARK, "num_cpus": args.num_cpus, "rows": pending,
               "warmup": args.warmup, "duration": args.duration, "repeat": args.repeat,
               "init_extra": {"include_dashboard": False} if module == "ray" else {}}
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        with tempfile.NamedTemporaryFile("w+", suffix=".stderr") as err:
            proc = subprocess.Popen(
                [python, "-c", _PROBE.replace("MODULE", module), json.dumps(cfg)],
                stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                start_new_session=True)
            q: queue.Queue = queue.Queue()
            threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
            current, failure = None, None
            budget = args.init_timeout
            deadline = time.monotonic() + budget
            while True:
                try:
                    line = q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    failure = f"timed out after {budget:.0f} s"
                    break
                if line is None:
                    proc.wait()
                    failure = f"interpreter exited (rc {proc.returncode})"
                    break
                if not line.startswith(_MARK + " "):
                    continue
                kind, _, rest = line[len(_MARK) + 1:].strip().partition(" ")
                if kind == "READY":
                    info.update(json.loads(rest))
                    budget = row_budget
                    deadline = time.monotonic() + budget
                elif kind == "START":
                    current, deadline = rest, time.monotonic() + budget
                elif kind in ("ROW", "ERROR"):
                    key, _, payload = rest.partition(" ")
                    value = json.loads(payload)
                    results[key] = value if kind == "ROW" else {"error": value}
                    pending.remove(key)
                    _progress(module, key, results[key])
                    current = None
                elif kind == "DONE":
                    break
            _stop(proc, grace=0.0 if failure else 30.0)
            if failure:
                tail = _tail(err.name)
                if current is None and not info:  # never got through init
                    last = tail.splitlines()[-1] if tail else ""
                    for key in pending:
                        results[key] = {"error": f"init: {failure}: {last}"[:300]}
                    print(f"[{module}] init failed: {failure}\n{tail}", file=sys.stderr)
                    break
                victim = current or pending[0]
                results[victim] = {"error": failure}
                pending.remove(victim)
                _progress(module, victim, results[victim])
                if tail:
                    print(f"[{module}] stderr tail:\n{tail}", file=sys.stderr)
    return results, info


def _progress(module: str, key: str, r: dict) -> None:
    text = r["error"] if "error" in r else f"{r['mean']:,.0f} +- {r['std']:,.0f} calls/s"
    print(f"[{module}] {_NAMES[key]}: {text}", file=sys.stderr, flush=True)


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return f"error: {r['error']}".replace("|", "/")
    return f"{r['mean']:,.0f} ± {r['std']:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for Ember")
    parser.add_argument("--ray-python", help="python of a venv made by ../shared/tools/ray-venv.sh")
    parser.add_argument("--no-ember", action="store_true", help="measure Ray only")
    parser.add_argument("--rows", help="comma-separated subset of: "
                        + ", ".join(k for k, _ in ROWS) + " (or full row names)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per timed run")
    parser.add_argument("--repeat", type=int, default=4, help="timed runs per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per row")
    parser.add_argument("--quick", action="store_true",
                        help="--duration 0.5 --repeat 1 --warmup 0.5")
    parser.add_argument("--row-timeout", type=float, default=60.0,
                        help="slack beyond warm-up + runs before a row counts as hung")
    parser.add_argument("--init-timeout", type=float, default=120.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat, args.warmup = 0.5, 1, 0.5
    args.num_cpus = os.cpu_count() or 1
    if args.rows:
        by_name = {name: key for key, name in ROWS}
        keys = []
        for item in (s.strip() for s in args.rows.split(",")):
            if item in _NAMES:
                keys.append(item)
            elif item in by_name:
                keys.append(by_name[item])
            else:
                parser.error(f"unknown row {item!r}; pick from {', '.join(_NAMES)}")
    else:
        keys = [k for k, _ in ROWS]
    if args.no_ember and not args.ray_python:
        parser.error("--no-ember needs --ray-python")

    runs = {}
    if not args.no_ember:
        runs["ember"] = (args.python, "ember")
    if args.ray_python:
        runs["ray"] = (args.ray_python, "ray")
    result: dict = {"settings": {"num_cpus": args.num_cpus, "duration_s": args.duration,
                                 "repeat": args.repeat, "warmup_s": args.warmup,
                                 "rows": keys}}
    for fw, (python, module) in runs.items():
        rows, info = run_probe(python, module, keys, args)
        result[fw] = {"python": python, **info,
                      "rows": {_NAMES[k]: rows.get(k) for k in keys}}

    ray_version = result.get("ray", {}).get("version", "2.60")
    ray_label = "Ray " + ".".join(ray_version.split(".")[:2])
    print(f"\nActor calls per second, mean ± std over {args.repeat} run(s) of "
          f"{args.duration:g} s, num_cpus={args.num_cpus}\n")
    print(f"| metric | Ember | {ray_label} | Ember/Ray |")
    print("|---|---:|---:|---:|")
    for key in keys:
        name = _NAMES[key]
        e = result.get("ember", {}).get("rows", {}).get(name)
        r = result.get("ray", {}).get("rows", {}).get(name)
        ok = e and r and "mean" in e and "mean" in r and r["mean"] > 0
        ratio = f"{e['mean'] / r['mean']:.2f}" if ok else "-"
        print(f"| {name} | {_cell(e)} | {_cell(r)} | {ratio} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

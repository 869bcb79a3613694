"""Object-store throughput of large objects, on one node and across nodes on this machine.

    python tools/bench/transfer.py [--ray-python PATH] [--python PATH] [--no-ember]
                                   [--size-mib 1024] [--repeat 3] [--json out.json]

Each framework runs the SAME probe code (below) in fresh interpreters,
`import MODULE as fw`, one phase per interpreter. The object is a NumPy int64
array of --size-mib MiB (`np.arange`, so every page is written). Rows:

- put: `fw.put(arr)` in a driver of a one-node cluster (`fw.init(num_cpus=2,
  object_store_memory=...)`): serialize and copy into shared memory.
- get: `fw.get(ref)` of that object in the same driver. Zero-copy in both
  frameworks (a read-only view of the shared-memory copy), so this measures
  mapping, not copying; the "zero-copy" line says whether the result was a
  read-only view.
- task -> task across nodes: a two-node `cluster_utils.Cluster` on this machine
  (one CPU each, custom resources `A` and `B` to pin work). A task on A makes
  the array; once it is done (`wait(fetch_local=False)`), a task on B takes it
  as argument and returns its size. Timed from submitting the task on B to its
  result, minus the same with a tiny object made on A (scheduling and call
  overhead), measured just before in the same repeat.
- driver get from remote node: a task on B makes the array; once it is done the
  driver (attached to A, the head) gets it: the time of that `get`, which pulls
  the only copy from B's store to A's.

Across "nodes" the bytes travel over loopback TCP between the nodes' object
servers (Ember: node manager ReadObject streams; Ray: object managers), as on two
machines. GB/s = bytes / 1e9 / median seconds. --ray-python runs the same rows on
Ray (e.g. /tmp/ray-venv/bin/python); Ray's plasma store and Ember's shared
memory both live in /dev/shm, so give it room: each node gets
--store-mib of object store (default: 3 x the object size).

A phase that raises, hangs (past --timeout) or kills its interpreter is shown
as an error in the table; the other phases still run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_MARK = "@@TRANSFER"

_PROBE = r"""
import json, sys, time
CFG = json.loads(sys.argv[1])
MARK = CFG["mark"]
import numpy as np
import MODULE as fw

def say(key, value):
    print(MARK, key, json.dumps(value), flush=True)

SIZE, REPEAT, STORE = CFG["size"], CFG["repeat"], CFG["store"]
say("version", getattr(fw, "__version__", "?"))

def make(nbytes):
    return np.arange(max(1, nbytes // 8), dtype=np.int64)

if CFG["phase"] == "single":
    fw.init(num_cpus=2, object_store_memory=STORE, **CFG["init_extra"])
    small = make(8 << 20)
    fw.get(fw.put(small))                     # warm up the store client
    arr = make(SIZE)
    puts, gets, zero_copy = [], [], []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        ref = fw.put(arr)
        t1 = time.perf_counter()
        out = fw.get(ref)
        t2 = time.perf_counter()
        assert out.nbytes == arr.nbytes and out[-1] == arr[-1]
        zero_copy.append(not out.flags.writeable and not np.shares_memory(out, arr))
        puts.append(t1 - t0)
        gets.append(t2 - t1)
        del out, ref
        time.sleep(0.5)                       # let the store free it
    say("put_s", puts)
    say("get_s", gets)
    say("zero_copy", all(zero_copy))
    fw.shutdown()

else:
    import importlib
    Cluster = importlib.import_module(CFG["module"] + ".cluster_utils").Cluster
    node = dict(num_cpus=1, object_store_memory=STORE, **CFG["node_extra"])
    cluster = Cluster(initialize_head=True, head_node_args=dict(node, resources={"A": 1}))
    cluster.add_node(**node, resources={"B": 1})
    cluster.wait_for_nodes()
    cluster.connect()

    @fw.remote
    def produce(nbytes):
        return make(nbytes)

    @fw.remote
    def consume(arr):
        return int(arr.nbytes), int(arr[-1])

    on_a = {"resources": {"A": 1}}
    on_b = {"resources": {"B": 1}}

    def made(where, nbytes):
        ref = produce.options(**where).remote(nbytes)
        ready, _ = fw.wait([ref], timeout=300, fetch_local=False)
        assert ready, "the producer did not finish"
        return ref

    def task_to_task(nbytes):
        src = made(on_a, nbytes)
        t0 = time.perf_counter()
        n, last = fw.get(consume.options(**on_b).remote(src), timeout=600)
        t = time.perf_counter() - t0
        assert n == max(8, nbytes // 8 * 8) and last == max(1, nbytes // 8) - 1, (n, last)
        del src
        return t

    def driver_get(nbytes):
        src = made(on_b, nbytes)
        t0 = time.perf_counter()
        out = fw.get(src, timeout=600)
        t = time.perf_counter() - t0
        assert out.nbytes == max(8, nbytes // 8 * 8) and out[-1] == max(1, nbytes // 8) - 1
        del out, src
        return t

    # Warm up: workers on both nodes, and one shared-memory transfer each way.
    task_to_task(8)
    task_to_task(8 << 20)
    driver_get(8 << 20)
    big, tiny, gets = [], [], []
    for _ in range(REPEAT):
        tiny.append(task_to_task(8))
        big.append(task_to_task(SIZE))
        time.sleep(0.5)
        gets.append(driver_get(SIZE))
        time.sleep(0.5)
    say("task_big_s", big)
    say("task_tiny_s", tiny)
    say("driver_get_s", gets)
    fw.shutdown()
    cluster.shutdown()
"""

ROWS = [
    # (label, key in the summary)
    ("single-node put", "put"),
    ("single-node get (zero-copy)", "get"),
    ("cross-node task -> task (minus tiny-object time)", "task"),
    ("cross-node driver get of a remote-only object", "driver_get"),
]


def probe(python: str, framework: str, phase: str, size: int, store: int, repeat: int,
          timeout: float) -> dict:
    cfg = {"mark": _MARK, "phase": phase, "size": size, "store": store, "repeat": repeat,
           "module": framework,
           "init_extra": {"include_dashboard": False} if framework == "ray" else {},
           "node_extra": {"include_dashboard": False} if framework == "ray" else {}}
    code = _PROBE.replace("MODULE", framework)
    try:
        proc = subprocess.run([python, "-c", code, json.dumps(cfg)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return {"error": f"timed out after {timeout:.0f}s", "output": out[-2000:]}
    found: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK + " "):
            _, key, value = line.split(" ", 2)
            found[key] = json.loads(value)
    if proc.returncode != 0:
        found["error"] = f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        found["output"] = proc.stderr[-4000:]
    return found


def summarize(single: dict, cluster: dict, size: int) -> dict:
    """Median seconds and GB/s per row (None where the phase failed)."""
    out: dict = {"version": single.get("version") or cluster.get("version"),
                 "zero_copy_get": single.get("zero_copy"),
                 "errors": {k: v["error"] for k, v in (("single", single), ("cluster", cluster))
                            if "error" in v},
                 "runs": {"single": single, "cluster": cluster}}

    def row(key: str, seconds: list[float] | None) -> None:
        if not seconds:
            out[key] = None
            return
        med = statistics.median(seconds)
        out[key] = {"median_s": med, "all_s": seconds,
                    "gb_per_s": size / 1e9 / med if med > 0 else float("inf")}

    row("put", single.get("put_s"))
    row("get", single.get("get_s"))
    big, tiny = cluster.get("task_big_s"), cluster.get("task_tiny_s")
    row("task", [b - t for b, t in zip(big, tiny)] if big and tiny else None)
    out["tiny_task_ms"] = statistics.median(tiny) * 1e3 if tiny else None
    row("driver_get", cluster.get("driver_get_s"))
    return out


def run_framework(python: str, framework: str, args: argparse.Namespace) -> dict:
    size = args.size_mib << 20
    store = (args.store_mib << 20) if args.store_mib else 3 * size
    single = probe(python, framework, "single", size, store, args.repeat, args.timeout)
    cluster = probe(python, framework, "cluster", size, store, args.repeat, args.timeout)
    return summarize(single, cluster, size)


def _fmt_rate(r: dict | None) -> str:
    if r is None:
        return "error"
    return f"{r['gb_per_s']:.2f}" if r["gb_per_s"] < 1000 else f"{r['gb_per_s']:.3g}"


def _fmt_s(r: dict | None) -> str:
    return "-" if r is None else f"{r['median_s']:.4f}"


def render(results: dict, size_mib: int, repeat: int) -> str:
    names = [n for n in ("ember", "ray") if results.get(n) is not None]
    title = {"ember": "Ember", "ray": "Ray"}
    head = ["row"]
    for n in names:
        head += [f"{title[n]} GB/s", f"{title[n]} s"]
    if len(names) == 2:
        head.append("Ember/Ray")
    lines = [f"Object of {size_mib} MiB, median of {repeat} run(s); GB/s = 1e9 bytes/s.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for label, key in ROWS:
        cells = [label]
        for n in names:
            cells += [_fmt_rate(results[n].get(key)), _fmt_s(results[n].get(key))]
        if len(names) == 2:
            e, r = results["ember"].get(key), results["ray"].get(key)
            cells.append(f"{e['gb_per_s'] / r['gb_per_s']:.2f}" if e and r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for n in names:
        res = results[n]
        tiny = res.get("tiny_task_ms")
        lines.append(f"{title[n]} {res.get('version')}: get zero-copy (read-only view): "
                     f"{res.get('zero_copy_get')}; tiny-object task -> task across nodes: "
                     + (f"{tiny:.1f} ms" if tiny is not None else "-"))
        for phase, err in res.get("errors", {}).items():
            lines.append(f"{title[n]} {phase} phase failed: {err}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="python with Ember installed")
    parser.add_argument("--ray-python", help="python of a venv with Ray (measures Ray too)")
    parser.add_argument("--no-ember", action="store_true", help="measure Ray only")
    parser.add_argument("--size-mib", type=int, default=1024, help="object size (default 1024)")
    parser.add_argument("--store-mib", type=int, default=0,
                        help="object store per node (default: 3 x the object size)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds allowed to each phase's interpreter")
    parser.add_argument("--json", help="also write every run's figures here")
    args = parser.parse_args()
    if args.no_ember and not args.ray_python:
        parser.error("--no-ember needs --ray-python")
    results = {"ember": None if args.no_ember else run_framework(args.python, "ember", args),
               "ray": run_framework(args.ray_python, "ray", args) if args.ray_python else None}
    print(render(results, args.size_mib, args.repeat))
    for name, res in results.items():
        for phase, run in (res or {}).get("runs", {}).items():
            if "error" in run:
                print(f"\n--- {name} {phase} output ---\n{run.get('output', '')}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size_mib": args.size_mib, "repeat": args.repeat, **results}, f,
                      indent=2)


if __name__ == "__main__":
    main()

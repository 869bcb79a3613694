"""ember-data vs Ray Data, side by side in one run (issue #10).

    python tools/bench/data.py --ray-python /tmp/ray-venv/bin/python [--quick]
        [--workloads 1,2,3,4,5,6,7] [--scale 1.0] [--data-dir /tmp/ember-bench-data]
        [--json out.json] [--no-ember]

Every workload runs the SAME probe code (below) in a fresh interpreter per framework,
`import MODULE as fw`, Ember first, then Ray, with `fw.init(num_cpus=<cpus>)` (Ray also
gets `include_dashboard=False`). The input data is generated once by this script (Parquet,
32 files per dataset, random numbers) and cached in --data-dir; before each probe its input
files are read once, untimed, so that every contender finds them in the page cache (workload
5's 10 GB excepted). While a probe runs, this
script samples memory every 0.1 s: the proportional set size (PSS, so shared pages count
once) of the probe's whole process tree, plus the framework's shared-memory files that no
process maps. Workload 5 also samples, every 0.1 s from a thread in the driver, the object
store's bytes in use as the framework counts them (Ember: NodeManager.GetStatus
store_used_bytes, Ray: the raylet's store_stats.object_store_bytes_used, i.e. what
`ember memory --stats-only` / `ray memory --stats-only` print) and reports the peak and
its ratio to object_store_memory (which must stay <= 1).

Workloads (default sizes; --scale multiplies every size, --quick is --scale 0.02):
  1  read_parquet 2 GB (32 files) -> map_batches(NumPy arithmetic) -> iter_batches(4096)
  2  random_shuffle of 1 GB; sort by a float column of 1 GB (two rows)
  3  groupby(key).mean over 20M rows, 1000 keys
  4  map_batches with a callable class on an actor pool of 2 (a ~1 ms UDF) over 2M rows
  5  read -> map -> write_parquet of 10 GB with object_store_memory = 1 GB
  6  iter_torch_batches(4096) over the workload-1 data: batches/s
  7  time to first batch of a 2 GB Parquet dataset
  and "1-floor": workload 1 with pure pyarrow in one process (the per-row floor),
  and "5-quarter": workload 5 over the first quarter of the same files (files of the same
  size, a quarter of the data), for the row "5 peak memory growth, 4x the data" (peak of
  workload 5 / peak of 5-quarter: 1.0 means memory does not grow with the data).

"better" is Ember/Ray for throughputs and Ray/Ember for times and memory, so > 1 always
means Ember did better.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import threading
import time

MARK = "@@DATABENCH"
GB = 1 << 30
ROW_BYTES = 8 * 3 + 4  # id int64, a float64, b float64, key int32

_PROBE = r"""
import json, os, sys, threading, time
CFG = json.loads(sys.argv[1])
MARK = CFG["mark"]
W = CFG["workload"]
import numpy as np

def say(kind, payload):
    print(MARK, kind, json.dumps(payload), flush=True)

if W == "1-floor":
    import pyarrow.parquet as pq
    start = time.perf_counter()
    rows = 0
    for path in CFG["files"]:
        table = pq.read_table(path)
        for batch in table.to_batches(max_chunksize=4096):
            a = batch.column("a").to_numpy()
            b = batch.column("b").to_numpy()
            out = {"x": a * 2.0 + b, "id": batch.column("id").to_numpy()}
            rows += len(out["x"])
    say("RESULT", {"rows": rows, "seconds": time.perf_counter() - start})
    sys.exit(0)

import MODULE as fw
import MODULE.data as fwd
extra = dict(CFG["init_extra"])
if CFG.get("object_store_memory"):
    extra["object_store_memory"] = CFG["object_store_memory"]
fw.init(num_cpus=CFG["num_cpus"], **extra)
ctx = fwd.DataContext.get_current()
ctx.enable_progress_bars = False
say("READY", {"version": getattr(fw, "__version__", "?")})

def arith(b):
    return {"x": b["a"] * 2.0 + b["b"], "id": b["id"]}

def store_sampler():
    # (bytes in use, capacity) of the object store as the framework itself counts them.
    if MODULE_NAME == "ray":
        # One raylet RPC per sample (what `ray memory --stats-only` prints): the GCS address
        # is named because other Ray clusters may be running on this machine.
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address
        state = get_state_from_address(fw.get_runtime_context().gcs_address)
        def sample():
            st = get_memory_info_reply(state).store_stats
            return st.object_store_bytes_used, st.object_store_bytes_avail
    else:
        # NodeManager.GetStatus of each node (what `ember memory --stats-only` prints).
        from ember._private.state_client import StateClient
        client = StateClient(None, timeout=5)
        def sample():
            statuses = client.node_statuses().values()
            return (sum(s.store_used_bytes for s in statuses),
                    sum(s.store_capacity_bytes for s in statuses))
    return sample

store_peak = [0, 0, 0]  # peak bytes in use, samples taken, the store's capacity
def watch_store(stop):
    sample = store_sampler()
    while True:
        try:
            used, capacity = sample()
        except Exception as e:  # a missed sample is not fatal; a run of them shows below
            print("store sample failed:", repr(e), file=sys.stderr)
        else:
            store_peak[0] = max(store_peak[0], int(used))
            store_peak[1] += 1
            store_peak[2] = int(capacity)
        if stop.wait(0.1):
            return

start = time.perf_counter()
if W in ("1", "6", "7"):
    ds = fwd.read_parquet(CFG["files"])
    if W == "1":
        rows = 0
        for batch in ds.map_batches(arith, batch_format="numpy").iter_batches(
                batch_size=4096, batch_format="numpy"):
            rows += len(batch["x"])
        say("RESULT", {"rows": rows, "seconds": time.perf_counter() - start})
    elif W == "6":
        import torch
        batches = rows = 0
        for batch in ds.iter_torch_batches(batch_size=4096):
            rows += int(batch["a"].shape[0])
            batches += 1
        say("RESULT", {"rows": rows, "batches": batches, "seconds": time.perf_counter() - start})
    else:
        it = iter(ds.iter_batches(batch_size=4096, batch_format="numpy"))
        first = next(it)
        say("RESULT", {"seconds": time.perf_counter() - start, "rows": len(first["a"])})
elif W == "2":
    ds = fwd.read_parquet(CFG["files"]).materialize()
    rows = ds.count()
    # One sample, outside the timed part: the materialized input must show up in the store
    # (the check that the sampler workload 5 uses sees objects at all).
    in_store = store_sampler()()[0]
    t0 = time.perf_counter()
    n = ds.random_shuffle(seed=1).materialize().count()
    t1 = time.perf_counter()
    m = ds.sort("a").materialize().count()
    t2 = time.perf_counter()
    assert n == m == rows, (n, m, rows)
    say("RESULT", {"rows": rows, "shuffle_seconds": t1 - t0, "sort_seconds": t2 - t1,
                   "input_in_store": in_store})
elif W == "3":
    ds = fwd.read_parquet(CFG["files"], columns=["key", "a"]).materialize()
    rows = ds.count()
    t0 = time.perf_counter()
    out = ds.groupby("key").mean("a").take_all()
    seconds = time.perf_counter() - t0
    assert len(out) == CFG["keys"], len(out)
    say("RESULT", {"rows": rows, "seconds": seconds})
elif W == "4":
    class Udf:
        def __init__(self):
            self.scale = 2.0
        def __call__(self, b):
            time.sleep(0.001)
            return {"x": b["a"] * self.scale}
    ds = fwd.read_parquet(CFG["files"], columns=["a"]).materialize()
    rows = ds.count()
    t0 = time.perf_counter()
    got = 0
    for batch in ds.map_batches(Udf, concurrency=2, batch_format="numpy").iter_batches(
            batch_size=None, batch_format="numpy"):
        got += len(batch["x"])
    assert got == rows, (got, rows)
    say("RESULT", {"rows": rows, "seconds": time.perf_counter() - t0})
elif W == "5":
    stop = threading.Event()
    watcher = threading.Thread(target=watch_store, args=(stop,), daemon=True)
    watcher.start()
    fwd.read_parquet(CFG["files"]).map_batches(arith, batch_format="numpy").write_parquet(
        CFG["out_dir"])
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    say("RESULT", {"rows": CFG["rows"], "seconds": seconds, "store_peak": store_peak[0],
                   "store_samples": store_peak[1], "store_capacity": store_peak[2]})
fw.shutdown()
"""


# -- data generation ---------------------------------------------------------------------------
def make_parquet(root: str, name: str, total_bytes: int, files: int = 32,
                 keys: int = 1000) -> tuple[list[str], int]:
    """``files`` Parquet files of random rows adding up to ~``total_bytes`` (cached)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows_per_file = max(1, total_bytes // ROW_BYTES // files)
    folder = os.path.join(root, f"{name}-{rows_per_file}x{files}-k{keys}")
    done = os.path.join(folder, "_DONE")
    paths = [os.path.join(folder, f"part-{i:03d}.parquet") for i in range(files)]
    if not os.path.exists(done):
        os.makedirs(folder, exist_ok=True)
        rng = np.random.default_rng(0)
        for i, path in enumerate(paths):
            start = i * rows_per_file
            table = pa.table({
                "id": np.arange(start, start + rows_per_file, dtype=np.int64),
                "a": rng.random(rows_per_file),
                "b": rng.random(rows_per_file),
                "key": rng.integers(0, keys, rows_per_file, dtype=np.int32),
            })
            pq.write_table(table, path, row_group_size=256 * 1024)
        open(done, "w").close()
    return paths, rows_per_file * files


# -- memory sampling ---------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for path in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                with open(path) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _mapped_files(pids: list[int]) -> set[str]:
    out: set[str] = set()
    for pid in pids:
        try:
            for name in os.listdir(f"/proc/{pid}/map_files"):
                try:
                    out.add(os.readlink(f"/proc/{pid}/map_files/{name}"))
                except OSError:
                    pass
        except OSError:
            pass
    return out


class MemorySampler(threading.Thread):
    """Peak of (PSS of the process tree + unmapped /dev/shm files of the run)."""

    def __init__(self, pid: int, shm_glob: str) -> None:
        super().__init__(daemon=True)
        self.pid, self.shm_glob = pid, shm_glob
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        tick = 0
        mapped: set[str] = set()
        while not self.stop.wait(0.1):
            pids = _tree(self.pid)
            total = sum(_pss(p) for p in pids)
            if tick % 10 == 0:  # reading every mapping is slow: refresh once a second
                mapped = _mapped_files(pids)
            tick += 1
            for path in glob.glob(self.shm_glob):
                if path not in mapped:
                    try:
                        total += os.path.getsize(path)
                    except OSError:
                        pass
            self.peak = max(self.peak, total)


# -- running probes ----------------------------------------------------------------------------
def warm_page_cache(files: list[str]) -> None:
    """Read the input files once, untimed, so every contender finds them in the page
    cache: otherwise whichever runs first after the data was written (or evicted) also
    pays for the disk (workload 1: 15.4M rows/s cold against 20.7-23.7M warm)."""
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def run_probe(python: str, module: str, cfg: dict, timeout: float) -> dict:
    code = _PROBE.replace("MODULE_NAME", repr(module)).replace("MODULE", module)
    # No dashboard for either: it is not part of the data path.
    cfg = dict(cfg, mark=MARK, init_extra={"include_dashboard": False})
    env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_DEDUP_LOGS="0")
    if module == "ray":
        env.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    proc = subprocess.Popen([python, "-c", code, json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    sampler = MemorySampler(proc.pid, "/dev/shm/ember_*" if module == "ember" else "/dev/shm/x")
    sampler.start()
    result: dict = {}
    tail: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            if line.startswith(MARK):
                _, kind, payload = line.rstrip("\n").split(" ", 2)
                if kind == "RESULT":
                    result = json.loads(payload)
            else:
                tail = (tail + [line.rstrip()])[-20:]
        proc.wait()
    finally:
        timer.cancel()
        sampler.stop.set()
        sampler.join()
    if not result:
        why = "timed out" if time.monotonic() >= deadline else f"exit {proc.returncode}"
        return {"error": f"{why}: " + " | ".join(tail[-5:])}
    result["peak_memory"] = sampler.peak
    return result


def _rows(workload: str, r: dict) -> list[tuple[str, str, float | None, bool]]:
    """(metric, unit, value, higher_is_better) rows of one probe result."""
    if "error" in r:
        return [(f"{workload}", "error", None, True)]
    if workload == "2":
        return [("2a random_shuffle", "rows/s", r["rows"] / r["shuffle_seconds"], True),
                ("2b sort", "rows/s", r["rows"] / r["sort_seconds"], True),
                ("2 materialized input in object store", "MB", r["input_in_store"] / 1e6,
                 False)]
    if workload == "6":
        return [("6 iter_torch_batches", "batches/s", r["batches"] / r["seconds"], True)]
    if workload == "7":
        return [("7 time to first batch", "s", r["seconds"], False)]
    if workload == "5-quarter":
        return [("5-quarter read-map-write (a quarter of workload 5's files)", "rows/s",
                 r["rows"] / r["seconds"], True)]
    if workload == "5":
        return [("5 read-map-write", "rows/s", r["rows"] / r["seconds"], True),
                ("5 peak memory", "GB", r["peak_memory"] / 1e9, False),
                ("5 peak object store", "MB", r["store_peak"] / 1e6, False),
                # Must stay <= 1: the store never holds more than object_store_memory.
                ("5 peak store / object_store_memory", "ratio",
                 r["store_peak"] / r["object_store_memory"], False)]
    names = {"1": "1 read-map-iterate", "1-floor": "1 pure pyarrow floor",
             "3": "3 groupby mean", "4": "4 actor-pool map_batches"}
    return [(names[workload], "rows/s", r["rows"] / r["seconds"], True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ray-python", help="python of a venv with ray[data] 2.60")
    ap.add_argument("--python", default=sys.executable, help="python with ember-data")
    ap.add_argument("--no-ember", action="store_true")
    ap.add_argument("--workloads", default="1,1-floor,2,3,4,5,5-quarter,6,7")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="--scale 0.02")
    ap.add_argument("--data-dir", default="/tmp/ember-bench-data")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()
    scale = 0.02 if args.quick else args.scale
    frameworks = ([] if args.no_ember else [("ember", args.python)]) + (
        [("ray", args.ray_python)] if args.ray_python else [])

    sizes = {"w1": int(2 * GB * scale), "w2": int(1 * GB * scale),
             "w3": int(20_000_000 * scale) * ROW_BYTES, "w4": int(2_000_000 * scale) * ROW_BYTES,
             "w5": int(10 * GB * scale)}
    store = max(64 << 20, int(1 * GB * min(1.0, scale * 5)))
    w1_files, w1_rows = make_parquet(args.data_dir, "w1", sizes["w1"])
    table = []
    peaks: dict[str, dict[str, int | None]] = {}   # framework -> 5 / 5-quarter peak
    for workload in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        cfg: dict = {"workload": workload, "num_cpus": args.num_cpus}
        if workload in ("1", "1-floor", "6", "7"):
            cfg["files"] = w1_files
        elif workload == "2":
            cfg["files"], _ = make_parquet(args.data_dir, "w2", sizes["w2"])
        elif workload == "3":
            cfg["files"], _ = make_parquet(args.data_dir, "w3", sizes["w3"])
            cfg["keys"] = 1000
        elif workload == "4":
            cfg["files"], _ = make_parquet(args.data_dir, "w4", sizes["w4"])
        elif workload in ("5", "5-quarter"):
            files, rows = make_parquet(args.data_dir, "w5", sizes["w5"])
            cfg["files"] = files if workload == "5" else files[:max(1, len(files) // 4)]
            cfg["rows"] = rows // len(files) * len(cfg["files"])
            cfg["object_store_memory"] = store
            cfg["workload"] = "5"       # the same probe
        results: dict[str, list] = {}
        runs = [("floor", args.python)] if workload == "1-floor" else frameworks
        w5 = workload in ("5", "5-quarter")
        for name, python in runs:
            if w5:
                cfg["out_dir"] = os.path.join(args.data_dir, f"out-{name}")
                subprocess.run(["rm", "-rf", cfg["out_dir"]], check=False)
            print(f"# workload {workload} on {name} ...", file=sys.stderr, flush=True)
            if not w5:     # 10 GB: more than the page cache keeps anyway
                warm_page_cache(cfg["files"])
            r = run_probe(python, "ember" if name == "floor" else name, cfg, args.timeout)
            if w5 and "error" not in r:
                r["object_store_memory"] = store
                print(f"#   {name}: object store peak {r['store_peak'] / 2**20:.0f} MiB over "
                      f"{r['store_samples']} samples, capacity {r['store_capacity'] / 2**20:.0f}"
                      f" MiB, configured {store / 2**20:.0f} MiB", file=sys.stderr, flush=True)
                if not r["store_samples"]:
                    r = {"error": "no object store sample succeeded (see the probe's stderr)"}
            if "error" in r:
                print(f"#   {name}: {r['error']}", file=sys.stderr, flush=True)
            results[name] = _rows(workload, r) + [("peak", "GB", r.get("peak_memory", 0) / 1e9,
                                                   False)]
            if w5:
                subprocess.run(["rm", "-rf", cfg["out_dir"]], check=False)
                peaks.setdefault(name, {})[workload] = r.get("peak_memory")
        if workload == "1-floor":
            metric, unit, value, _ = results["floor"][0]
            table.append({"metric": metric, "unit": unit, "ember": None, "ray": None,
                          "floor": value, "better": None})
            continue
        ember_rows = results.get("ember") or [(m, u, None, h) for m, u, _, h in results["ray"]]
        ray_rows = results.get("ray") or [(m, u, None, h) for m, u, _, h in ember_rows]
        for (metric, unit, e, higher), (_, _, r, _) in zip(ember_rows, ray_rows):
            if metric == "peak":
                metric = f"{workload} peak memory (tree PSS)"
            better = None
            if e and r:
                better = e / r if higher else r / e
            table.append({"metric": metric, "unit": unit, "ember": e, "ray": r,
                          "better": better})
        if workload == "5-quarter":
            growth: dict[str, float | None] = {}
            for name, pk in peaks.items():
                full, quarter = pk.get("5"), pk.get("5-quarter")
                growth[name] = full / quarter if full and quarter else None
            ge, gr = growth.get("ember"), growth.get("ray")
            table.append({"metric": "5 peak memory growth, 4x the data", "unit": "ratio",
                          "ember": ge, "ray": gr, "better": gr / ge if ge and gr else None})
    _print(table, scale, store)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scale": scale, "object_store_memory": store, "rows": table}, f,
                      indent=1)


def _print(table: list[dict], scale: float, store: int) -> None:
    from tabulate import tabulate

    def fmt(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:,.0f}" if v >= 100 else f"{v:,.3g}"

    print(f"scale {scale} (workload 5 object store {store / GB:.2f} GiB)")
    print(tabulate([[r["metric"], r["unit"], fmt(r["ember"]), fmt(r["ray"]),
                     fmt(r.get("floor")) if r.get("floor") else "",
                     f"{r['better']:.2f}x" if r["better"] else "-"] for r in table],
                   headers=["workload", "unit", "Ember", "Ray Data", "pyarrow floor",
                            "better"], tablefmt="github"))


if __name__ == "__main__":
    main()

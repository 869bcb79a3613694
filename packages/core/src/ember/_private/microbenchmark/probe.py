"""The measuring side of `ember microbenchmark`: one script, any framework.

    python probe.py '<json config>'

Runs in a fresh interpreter of Ember's or Ray's venv and imports only the
standard library, NumPy (for the rows that need it) and the framework named by
``config["module"]`` (``import ember as fw`` or ``import ray as fw``), so the
very same code measures both. It reports on stdout, one line per event, each
starting with ``config["mark"]``::

    READY {"version": ...}     the framework is up (rows phase)
    START key                  a row begins
    ROW key {"runs": [...]}    a row's figures (per second unless the row says)
    ERROR key "message"        a row failed (it is reported, never faked)
    ALIVE                      the current row made progress (every 2 s at most)
    DONE

Phases (``config["phase"]``):

- ``rows``: `ray microbenchmark`'s rows (ray/_private/ray_perf.py, Ray 2.60:
  same remote functions, actor classes, loops and multipliers) plus the actor
  creation rate, in one framework instance started with ``fw.init(num_cpus=N,
  resources={"custom": 100}, include_dashboard=False)`` (Ray starts a second
  instance for its placement-group row only to add that resource). Timing is
  ray_microbenchmark_helpers.timeit with the durations as parameters: warm up
  (at least one call), then ``repeat`` runs of ``duration`` seconds, calls in
  steps of a tenth of the warm-up count; no 10 s "noisy neighbour" sleep.
  ``small`` (--quick) shrinks the per-call loop sizes of the rows where one
  call takes seconds (10000, 5000 or 1000 calls a batch become 500, 10 put
  tasks 2, 10k refs 2k, batches of 10 new actors 3) for both frameworks
  alike. Actors a row creates are killed when it ends. When the rows include
  the start-up metrics, they are measured in this interpreter, before any
  row (one cluster start fewer).
- ``startup``: time from ``import fw`` to the first task result, then, after
  ``idle_s`` seconds idle, the process count and the summed proportional set
  size (PSS) of the driver and every process it started.
- ``transfer``: a two-node ``cluster_utils.Cluster`` on this machine; a task on
  the second node makes a ``size``-byte NumPy array; the driver (on the head)
  gets it, pulling the only copy across: GB/s of that ``get``.
"""
import importlib
import json
import os
import sys
import threading
import time

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    # Run as a script: our siblings must not shadow anything the framework imports.
    sys.path.pop(0)

CFG: dict = {}
_say_lock = threading.Lock()
_progress = [0]


def say(*parts) -> None:
    with _say_lock:
        print(CFG["mark"], *parts, flush=True)


def _heartbeat() -> None:
    # A row may run long (40000 tasks a call); the parent resets its hang
    # timer on ALIVE, sent only while calls keep completing.
    last = _progress[0]
    while True:
        time.sleep(2.0)
        if _progress[0] != last:
            last = _progress[0]
            say("ALIVE")


def timeit(fn, multiplier=1.0):
    """ray_microbenchmark_helpers.timeit: -> per-second figures of each run."""
    warmup, duration, repeat = CFG["warmup"], CFG["duration"], CFG["repeat"]
    start = time.perf_counter()
    count = 0
    while True:
        fn()
        count += 1
        _progress[0] += 1
        if time.perf_counter() - start >= warmup:
            break
    step = count // 10 + 1
    stats = []
    for _ in range(repeat):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < duration:
            for _ in range(step):
                fn()
            count += step
            _progress[0] += 1
        stats.append(multiplier * count / (time.perf_counter() - start))
    return stats


# ---------------------------------------------------------------- rows phase
def define(fw):
    """The remote functions and actor classes of ray_perf.py, for ``fw``."""
    @fw.remote
    def small_value():
        return b"ok"

    @fw.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def small_value_arg(self, x):
            return b"ok"

        def small_value_batch(self, n):
            fw.get([small_value.remote() for _ in range(n)])

    @fw.remote
    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def small_value_with_arg(self, x):
            return b"ok"

    @fw.remote(num_cpus=0)
    class Client:
        def __init__(self, servers):
            if not isinstance(servers, list):
                servers = [servers]
            self.servers = servers

        def small_value_batch(self, n):
            results = []
            for s in self.servers:
                results.extend([s.small_value.remote() for _ in range(n)])
            fw.get(results)

        def small_value_batch_arg(self, n):
            x = fw.put(0)
            results = []
            for s in self.servers:
                results.extend([s.small_value_arg.remote(x) for _ in range(n)])
            fw.get(results)

    @fw.remote
    def create_object_containing_ref(n):
        return [fw.put(1) for _ in range(n)]

    @fw.remote
    def do_put_small():
        for _ in range(100):
            fw.put(0)

    @fw.remote
    def do_put():
        import numpy as np
        for _ in range(10):
            fw.put(np.zeros(10 * 1024 * 1024, dtype=np.int64))

    @fw.remote
    def work(actors, n):
        k = len(actors)
        fw.get([actors[i % k].small_value.remote() for i in range(n)])

    return {"small_value": small_value, "Actor": Actor, "AsyncActor": AsyncActor, "Client": Client,
                "create_object_containing_ref": create_object_containing_ref,
                "do_put_small": do_put_small, "do_put": do_put, "work": work}


def setup(fw, d, key):
    """-> (fn, multiplier, actors to kill afterwards); loops as ray_perf.py's."""
    small = CFG.get("small", False)
    # --quick: fewer calls a batch in the rows where one call takes seconds.
    big_n = 500 if small else 10000      # multi client tasks async
    mid_n = 500 if small else 5000       # 1:n and n:n rows
    arg_n = 500 if small else 1000       # n:n with arg
    put_tasks = 2 if small else 10       # multi client put gigabytes
    num_refs = 2000 if small else 10000  # get object containing 10k refs
    n_cpu = max(1, (os.cpu_count() or 2) // 2)
    sv = d["small_value"]
    Actor, AsyncActor, Client = d["Actor"], d["AsyncActor"], d["Client"]

    def batch(method, n=1000):
        return lambda: fw.get([method.remote() for _ in range(n)])

    if key == "get-calls":
        value = fw.put(0)
        return (lambda: fw.get(value)), 1, []
    if key == "put-calls":
        return (lambda: fw.put(0)), 1, []
    if key == "multi-put-calls":
        f = d["do_put_small"]
        return (lambda: fw.get([f.remote() for _ in range(10)])), 1000, []
    if key == "put-gigabytes":
        import numpy as np
        arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)
        return (lambda: fw.put(arr)), 8 * 0.1, []
    if key == "tasks-get-batch":
        return batch(sv), 1, []
    if key == "multi-put-gigabytes":
        f = d["do_put"]
        return (lambda: fw.get([f.remote() for _ in range(put_tasks)])), put_tasks * 8 * 0.1, []
    if key == "get-10k-refs":
        obj = d["create_object_containing_ref"].remote(num_refs)
        fw.get(obj)
        return (lambda: fw.get(obj)), 1, []
    if key == "wait-1k-refs":
        def wait_multiple_refs():
            not_ready = [sv.remote() for _ in range(1000)]
            fetch_local = True
            for _ in range(1000):
                _ready, not_ready = fw.wait(not_ready, fetch_local=fetch_local)
                fetch_local = False
        return wait_multiple_refs, 1, []
    if key == "tasks-sync":
        return (lambda: fw.get(sv.remote())), 1, []
    if key == "tasks-async":
        return batch(sv), 1000, []
    if key == "multi-tasks-async":
        actors = [Actor.remote() for _ in range(4)]
        return (lambda: fw.get([a.small_value_batch.remote(big_n) for a in actors])), \
            big_n * 4, actors
    if key == "actor-sync":
        a = Actor.remote()
        return (lambda: fw.get(a.small_value.remote())), 1, [a]
    if key == "actor-async":
        a = Actor.remote()
        return batch(a.small_value), 1000, [a]
    if key == "actor-concurrent":
        a = Actor.options(max_concurrency=16).remote()
        return batch(a.small_value), 1000, [a]
    if key in ("actor-1n", "async-actor-1n"):
        cls = Actor if key == "actor-1n" else AsyncActor
        servers = [cls.remote() for _ in range(n_cpu)]
        client = Client.remote(servers)
        return (lambda: fw.get(client.small_value_batch.remote(mid_n))), \
            mid_n * len(servers), servers + [client]
    if key in ("actor-nn", "async-actor-nn"):
        cls = Actor if key == "actor-nn" else AsyncActor
        servers = [cls.remote() for _ in range(n_cpu)]
        w = d["work"]
        return (lambda: fw.get([w.remote(servers, mid_n) for _ in range(4)])), \
            4 * mid_n, servers
    if key == "actor-nn-arg":
        n = arg_n
        servers = [Actor.remote() for _ in range(n_cpu)]
        clients = [Client.remote(s) for s in servers]
        return (lambda: fw.get([c.small_value_batch_arg.remote(n) for c in clients])), \
            n * len(clients), servers + clients
    if key == "async-actor-sync":
        a = AsyncActor.remote()
        return (lambda: fw.get(a.small_value.remote())), 1, [a]
    if key == "async-actor-async":
        a = AsyncActor.remote()
        return batch(a.small_value), 1000, [a]
    if key == "async-actor-args":
        a = AsyncActor.remote()
        return (lambda: fw.get([a.small_value_with_arg.remote(i) for i in range(1000)])), \
            1000, [a]
    if key == "pg-create-removal":
        from importlib import import_module
        pgmod = import_module(CFG["module"] + ".util.placement_group")

        def create_removal(num_pgs=100):
            pgs = [pgmod.placement_group(bundles=[{"custom": 0.001}]) for _ in range(num_pgs)]
            [pg.wait(timeout_seconds=30) for pg in pgs]
            for pg in pgs:
                pgmod.remove_placement_group(pg)
        return create_removal, 100, []
    raise KeyError(f"no such row {key!r}")


def _up(fw, actors) -> None:
    # Every actor answers before the warm-up starts (creation is not timed).
    fw.get([a.small_value_batch.remote(0) if not hasattr(a, "small_value")
            else a.small_value.remote() for a in actors])


def actor_creation(fw, d):
    """Actors per second: create a batch, wait until each answers one call."""
    Actor = d["Actor"]
    small = CFG.get("small")

    def one_batch(k):
        t0 = time.perf_counter()
        actors = [Actor.remote() for _ in range(k)]
        fw.get([a.small_value.remote() for a in actors])
        dt = time.perf_counter() - t0
        for a in actors:
            fw.kill(a)
        _progress[0] += 1
        time.sleep(1.0)         # let the killed processes go before the next batch
        return k / dt

    one_batch(1 if small else 2)                 # warm-up
    return [one_batch(3 if small else 10) for _ in range(CFG["repeat"])]


STARTUP_KEYS = ("import-first-result", "idle-processes", "idle-memory")


def start(t0: float, **init_args):
    """Import the framework, start a cluster, run one task; -> (fw, seconds since t0)."""
    fw = importlib.import_module(CFG["module"])
    fw.init(num_cpus=CFG["num_cpus"], include_dashboard=False, **init_args)

    @fw.remote
    def f():
        return 1

    assert fw.get(f.remote()) == 1
    return fw, time.perf_counter() - t0


def report_startup(first: float) -> None:
    """After ``idle_s`` seconds idle: the import-to-result time and the footprint."""
    time.sleep(CFG["idle_s"])
    fp = footprint()
    say("ROW", "import-first-result", json.dumps({"runs": [first]}))
    say("ROW", "idle-processes", json.dumps({"runs": [fp["processes"]], "names": fp["names"]}))
    say("ROW", "idle-memory", json.dumps({"runs": [fp["pss"] / 1e6], "rss_mb": fp["rss"] / 1e6}))


def run_rows(t0: float) -> None:
    fw, first = start(t0, resources={"custom": 100})
    say("READY", json.dumps({"version": getattr(fw, "__version__", "?")}))
    if any(k in STARTUP_KEYS for k in CFG["rows"]):
        # Measured here, before any row, to spare a cluster start (--quick).
        report_startup(first)
    d = define(fw)
    threading.Thread(target=_heartbeat, daemon=True).start()
    for key in CFG["rows"]:
        if key in STARTUP_KEYS:
            continue
        say("START", key)
        actors = []
        try:
            if key == "actor-creation":
                stats = actor_creation(fw, d)
            else:
                fn, mult, actors = setup(fw, d, key)
                _up(fw, actors)
                stats = timeit(fn, mult)
            say("ROW", key, json.dumps({"runs": stats}))
        except Exception as e:  # noqa: BLE001 - reported as the row's error
            say("ERROR", key, json.dumps(f"{type(e).__name__}: {e}"[:500]))
        for a in actors:
            try:
                fw.kill(a)
            except Exception:  # noqa: BLE001
                pass
        del actors
    say("DONE")
    fw.shutdown()


# ---------------------------------------------------------------- startup phase
def _descendants(pid: int) -> list:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for c in kids:
            out += [c] + _descendants(c)
    return out


def _status(pid: int, field: str) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return line.split(None, 1)[1].strip()
    except OSError:
        pass
    return ""


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _proc_name(pid: int) -> str:
    """A readable name: a forked process's own name (``ember-gcs``: it keeps its
    parent's command line), the module of `python -m x.y`, the script, else the command."""
    name = _status(pid, "Name") or ""
    if name.startswith("ember-"):
        return name
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    if argv and os.path.basename(argv[0]).startswith("python"):
        if "-m" in argv[:-1]:
            return argv[argv.index("-m") + 1].rsplit(".", 1)[-1]
        if len(argv) > 1 and not argv[1].startswith("-"):
            return os.path.basename(argv[1])
    if argv and " " not in argv[0] and len(argv) == 1:
        return os.path.basename(argv[0])[:40]
    return _status(pid, "Name") or "?"


def footprint() -> dict:
    """Driver + every live process it started: count, PSS and RSS (bytes), names."""
    pids = [os.getpid()] + _descendants(os.getpid())
    pids = [p for p in pids if _status(p, "State")[:1] not in ("", "Z")]
    rss = sum(int(_status(p, "VmRSS").split()[0] or 0) * 1024 for p in pids
              if _status(p, "VmRSS"))
    names = sorted(_proc_name(p) for p in pids)
    return {"processes": len(pids), "pss": sum(_pss_bytes(p) for p in pids), "rss": rss,
            "names": names}


def run_startup(t0: float) -> None:
    fw, first = start(t0)
    say("READY", json.dumps({"version": getattr(fw, "__version__", "?")}))
    report_startup(first)
    say("DONE")
    fw.shutdown()


# ---------------------------------------------------------------- transfer phase
def run_transfer() -> None:
    import numpy as np
    fw = importlib.import_module(CFG["module"])
    Cluster = importlib.import_module(CFG["module"] + ".cluster_utils").Cluster
    size = CFG["size"]
    node = {"num_cpus": 1, "object_store_memory": CFG["store"]}
    if CFG["module"] == "ray":
        node["include_dashboard"] = False
    cluster = Cluster(initialize_head=True, head_node_args=dict(node, resources={"A": 1}))
    try:
        cluster.add_node(**node, resources={"B": 1})
        cluster.wait_for_nodes()
        cluster.connect()
        say("READY", json.dumps({"version": getattr(fw, "__version__", "?")}))

        @fw.remote(resources={"B": 1})
        def produce(nbytes):
            return np.arange(max(1, nbytes // 8), dtype=np.int64)

        def one(nbytes):
            ref = produce.remote(nbytes)
            ready, _ = fw.wait([ref], timeout=300, fetch_local=False)
            assert ready, "the producer did not finish in 300 s"
            t0 = time.perf_counter()
            out = fw.get(ref, timeout=600)
            dt = time.perf_counter() - t0
            assert out.nbytes == max(8, nbytes // 8 * 8) and out[-1] == max(1, nbytes // 8) - 1
            del out, ref
            _progress[0] += 1
            time.sleep(0.5)       # let the stores free it
            return dt

        threading.Thread(target=_heartbeat, daemon=True).start()
        say("START", "transfer-1gb")
        one(8 << 20)              # warm-up: workers on both nodes, one transfer
        secs = [one(size) for _ in range(CFG["repeat"])]
        say("ROW", "transfer-1gb", json.dumps({"runs": [size / 1e9 / s for s in secs],
                                               "seconds": secs}))
        say("DONE")
        fw.shutdown()
    finally:
        cluster.shutdown()


def main() -> None:
    t0 = time.perf_counter()
    CFG.update(json.loads(sys.argv[1]))
    phase = CFG["phase"]
    if phase == "startup":
        run_startup(t0)
    elif phase == "transfer":
        run_transfer()
    else:
        run_rows(t0)


if __name__ == "__main__":
    main()

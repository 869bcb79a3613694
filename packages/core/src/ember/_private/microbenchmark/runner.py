"""The parent side of `ember microbenchmark`: runs probe.py in fresh interpreters.

Each framework (Ember, or Ray from another venv) runs the same probe script,
one phase at a time, one framework after the other. A row that raises is
reported with its error; one that hangs (no progress for ``row_timeout``
seconds beyond its planned time) or kills its interpreter is reported as
such, and the remaining rows go on in a new interpreter. Nothing here imports
a framework, so it runs on either side.

>>> s = Settings.make(quick=True, num_cpus=2)
>>> results = run_framework(sys.executable, "ember", ["tasks-sync"], s)  # doctest: +SKIP
>>> results["results"]["tasks-sync"]["mean"]  # doctest: +SKIP
1234.5
"""
from __future__ import annotations

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .rows import by_key

PROBE = str(Path(__file__).with_name("probe.py"))
MARK = "@@EMBER-BENCH"
GiB = 1 << 30


@dataclass
class Settings:
    num_cpus: int
    warmup: float = 1.0          # seconds per row before the timed runs
    duration: float = 2.0        # seconds per timed run
    repeat: int = 4              # timed runs per row
    small: bool = False          # shrink the longest rows' batches (--quick)
    idle_s: float = 5.0          # idle time before the footprint is read
    startup_repeat: int = 3      # fresh interpreters for import -> first result
    transfer_size: int = GiB
    transfer_repeat: int = 3
    row_timeout: float = 120.0   # no progress this long beyond the plan: hung
    init_timeout: float = 180.0

    @classmethod
    def make(cls, quick: bool = False, num_cpus: int | None = None, **overrides) -> Settings:
        """Full settings (Ray's: 1 s warm-up, 4 runs of 2 s), or --quick ones."""
        s = cls(num_cpus=num_cpus or os.cpu_count() or 1)
        if quick:
            s.warmup, s.duration, s.repeat, s.small = 0.2, 0.5, 1, True
            s.startup_repeat, s.transfer_repeat = 1, 1
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s


Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_framework(python: str, module: str, keys: list[str], settings: Settings,
                  log: Log = _stderr) -> dict:
    """Measure ``keys`` with ``module`` ("ember" or "ray") under ``python``.

    -> {"python", "version", "results": {key: {"mean", "std", "runs", ...} or
    {"error": why}}}.
    """
    if os.sep in python:
        python = os.path.abspath(python)    # the probe runs in a directory of its own
    precompile(python, module, log)
    out: dict = {"python": python, "module": module, "results": {}}
    phases: dict[str, list[str]] = {}
    for key in keys:
        phases.setdefault(by_key(key).phase, []).append(key)
    startup = phases.pop("startup", [])
    startup_runs = settings.startup_repeat
    if startup and "rows" in phases:
        # The first start-up is measured by the rows interpreter (one cluster
        # start fewer); the others in interpreters of their own.
        phases["rows"] = startup + phases["rows"]
        startup_runs -= 1
    runs: dict[str, list] = {}
    extra: dict[str, dict] = {}
    for phase, phase_keys in phases.items():
        res, info = _run(python, module, phase, phase_keys, settings, log,
                         retry_rest=phase == "rows")
        out.update(info)
        for key, r in res.items():
            if key not in keys:
                continue        # measured along with one that was asked for
            if key in startup and "error" not in r:
                runs.setdefault(key, []).extend(r["runs"])
                extra[key] = {k: v for k, v in r.items() if k != "runs"}
            else:
                out["results"][key] = r if "error" in r else {**r, **_summary(r["runs"])}
    for _ in range(max(0, startup_runs) if startup else 0):
        res, info = _run(python, module, "startup", startup, settings, log,
                         retry_rest=False, verbose=False)
        out.update(info)
        for key, r in res.items():
            if key not in keys:
                continue
            if "error" in r:
                out["results"].setdefault(key, r)
            else:
                runs.setdefault(key, []).extend(r["runs"])
                extra[key] = {k: v for k, v in r.items() if k != "runs"}
    for key in startup:
        if key in runs:
            out["results"][key] = {**extra[key], **_summary(runs[key])}
            if startup_runs > 0:
                _progress(log, module, key, out["results"][key])
    return out


_PRECOMPILE = """
import compileall, importlib, sys
pkg = importlib.import_module(sys.argv[1])
paths = getattr(pkg, "__path__", None)
if paths is None:
    ok = compileall.compile_file(pkg.__file__, quiet=1)
else:
    ok = all(compileall.compile_dir(p, quiet=1) for p in paths)
sys.exit(0 if ok else 1)
"""


def precompile(python: str, module: str, log: Log = _stderr) -> None:
    """Byte-compile ``module``'s package files, as ``pip install`` does.

    An editable or source checkout run under PYTHONDONTWRITEBYTECODE=1 would
    otherwise compile every module in every process it starts, on every start,
    and start-up rows would measure the compiler rather than the framework.
    Files that are already compiled are left alone, so running this for an
    installed package costs only a look at each file.
    """
    try:
        proc = subprocess.run([python, "-c", _PRECOMPILE, module], capture_output=True,
                              text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"[{module}] could not byte-compile the package first: {e}")
        return
    if proc.returncode != 0:
        log(f"[{module}] byte-compiling the package first failed for some files; "
            f"those compile on import: {proc.stderr.strip()[-300:]}")


def _summary(runs: list) -> dict:
    return {"runs": runs, "mean": statistics.fmean(runs), "std": statistics.pstdev(runs)}


def _config(module: str, phase: str, keys: list[str], s: Settings) -> dict:
    return {"mark": MARK, "module": module, "phase": phase, "rows": keys,
            "num_cpus": s.num_cpus, "warmup": s.warmup, "duration": s.duration,
            "repeat": s.transfer_repeat if phase == "transfer" else s.repeat,
            "small": s.small, "idle_s": s.idle_s, "size": s.transfer_size,
            "store": 3 * s.transfer_size}


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


def _run(python: str, module: str, phase: str, keys: list[str], s: Settings, log: Log,
         retry_rest: bool, verbose: bool = True) -> tuple[dict, dict]:
    """Run ``keys`` of one phase; -> ({key: {"runs"...} or {"error"}}, info)."""
    results: dict = {}
    info: dict = {}
    planned = s.warmup + s.repeat * s.duration
    pending = list(keys)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    while pending:
        cfg = _config(module, phase, pending, s)
        with tempfile.NamedTemporaryFile("w+", suffix=".stderr") as err, \
                tempfile.TemporaryDirectory(prefix="ember-bench-") as cwd:
            proc = subprocess.Popen([python, PROBE, json.dumps(cfg)], stdout=subprocess.PIPE,
                                    stderr=err, text=True, env=env, cwd=cwd,
                                    start_new_session=True)
            q: queue.Queue = queue.Queue()
            threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
            current, failure = None, None
            row_start = time.monotonic()
            budget = s.init_timeout
            deadline = time.monotonic() + budget
            while True:
                try:
                    line = q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    failure = f"timed out (no progress for {budget:.0f} s)"
                    break
                if line is None:
                    proc.wait()
                    failure = f"interpreter exited (rc {proc.returncode})"
                    break
                if not line.startswith(MARK + " "):
                    continue
                kind, _, rest = line[len(MARK) + 1:].strip().partition(" ")
                if kind == "READY":
                    info.update(json.loads(rest))
                    budget = planned + s.row_timeout
                    deadline = time.monotonic() + budget
                elif kind == "START":
                    current, deadline = rest, time.monotonic() + budget
                    row_start = time.monotonic()
                elif kind == "ALIVE":
                    deadline = max(deadline, time.monotonic() + s.row_timeout)
                elif kind in ("ROW", "ERROR"):
                    key, _, payload = rest.partition(" ")
                    value = json.loads(payload)
                    results[key] = value if kind == "ROW" else {"error": value}
                    if current == key:
                        results[key]["wall_s"] = round(time.monotonic() - row_start, 2)
                    if key in pending:
                        pending.remove(key)
                    if (verbose or kind == "ERROR") and key in keys:
                        _progress(log, module, key, results[key])
                    current = None
                    deadline = time.monotonic() + budget
                elif kind == "DONE":
                    break
            _stop(proc, grace=0.0 if failure else 30.0)
            if not failure:
                for key in pending:     # DONE without them: never measured
                    results[key] = {"error": "the probe skipped it"}
                break
            tail = _tail(err.name)
            last = tail.splitlines()[-1] if tail else ""
            if tail:
                log(f"[{module}] {phase} stderr tail:\n{tail}")
            if (current is None and not info) or not retry_rest:
                where = "init" if not info else phase
                for key in pending:
                    results[key] = {"error": f"{where}: {failure}: {last}"[:300]}
                    _progress(log, module, key, results[key])
                break
            victim = current or pending[0]
            results[victim] = {"error": f"{failure}: {last}"[:300]}
            pending.remove(victim)
            _progress(log, module, victim, results[victim])
    return results, info


def _progress(log: Log, module: str, key: str, r: dict) -> None:
    row = by_key(key)
    if "error" in r:
        text = f"error: {r['error']}"
    elif "runs" in r and "mean" not in r:
        r = _summary(r["runs"])
        text = f"{fmt(r['mean'])} +- {fmt(r['std'])} {row.unit}"
    else:
        text = f"{fmt(r['mean'])} +- {fmt(r['std'])} {row.unit}"
    log(f"[{module}] {row.name}: {text}")


def fmt(x: float) -> str:
    """Figures as a table shows them: 3 significant digits, thousands separated.

    >>> fmt(12345.6), fmt(2.345), fmt(0.01234)
    ('12,346', '2.35', '0.0123')
    """
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def settings_dict(s: Settings) -> dict:
    return asdict(s)

"""Run the probe under Ember (and Ray, when given its interpreter) and report.

Used by `ember microbenchmark` (command.py) and tools/bench/compare_ray.py.
"""
from __future__ import annotations

import json
import platform
import sys
import time

from . import report, runner
from .rows import by_key


def run(keys: list[str], settings: runner.Settings, *, python: str | None = None,
        ray_python: str | None = None, no_ember: bool = False, json_path: str | None = None,
        out=None) -> dict:
    """Measure ``keys`` with Ember, then with Ray (if ``ray_python``); print the
    table and write everything as JSON to ``json_path`` ("-": stdout).

    >>> s = runner.Settings.make(quick=True)
    >>> run(["tasks-sync"], s, ray_python="/tmp/ray-venv/bin/python")  # doctest: +SKIP
    """
    out = out or sys.stdout
    started = time.monotonic()
    result: dict = {"settings": runner.settings_dict(settings), "rows": keys,
                    "machine": {"cpus": settings.num_cpus, "python": platform.python_version(),
                                "platform": platform.platform()}}
    if any(by_key(k).needs == "numpy" for k in keys):
        result["memory_touched_bytes"] = touch_memory()
    frameworks = []
    if not no_ember:
        frameworks.append(("ember", python or sys.executable))
    if ray_python:
        frameworks.append(("ray", ray_python))
    for module, py in frameworks:
        t0 = time.monotonic()
        result[module] = runner.run_framework(py, module, keys, settings)
        result[module]["wall_s"] = time.monotonic() - t0
    with_ray = "ray" in result
    rows = report.table(result.get("ember", {}).get("results") if not no_ember else None,
                        result.get("ray", {}).get("results"), keys)
    result["table"] = rows
    result["wall_s"] = time.monotonic() - started
    ray_label = "Ray " + str(result.get("ray", {}).get("version", "")) if with_ray else "Ray"
    text = report.render(rows, with_ray=with_ray, ray_label=ray_label.strip())
    s = settings
    runs = (f"warm-up {s.warmup:g} s, {s.repeat} run(s) of {s.duration:g} s"
            + (", small batches (--quick)" if s.small else ""))
    header = (f"Per second unless the metric says, mean ± std; {runs}; num_cpus={s.num_cpus}; "
              f"wall time {result['wall_s']:.0f} s")
    if json_path != "-":
        print(f"\n{header}\n\n{text}", file=out)
        notes = _notes(result, keys)
        if notes:
            print("\n" + "\n".join(notes), file=out)
    if json_path:
        data = json.dumps(result, indent=2, default=str)
        if json_path == "-":
            print(data, file=out)
        else:
            with open(json_path, "w") as f:
                f.write(data)
    return result


def touch_memory(limit: int = 4 << 30) -> int:
    """Write, then free, ``limit`` bytes of shared memory (at most a quarter of what is
    available); how many. On a virtual machine the first write to guest memory the guest
    has never used costs several times a later one (an 800 MB put: ~1-2 s against
    ~0.3 s), so without this whichever framework runs first pays for it in the put rows.

    >>> touch_memory(1 << 20)
    1048576
    """
    import os

    from ..shm_dir import default_shm_dir
    size = limit
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
        size = min(size, avail // 4)
    except (OSError, StopIteration, ValueError):
        pass
    path = os.path.join(default_shm_dir(), f"ember-bench-touch-{os.getpid()}")
    chunk = bytes(min(size, 64 << 20))
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.unlink(path)
        done = 0
        while done < size:
            done += os.write(fd, chunk[:size - done])
    finally:
        os.close(fd)
    return size


def _notes(result: dict, keys: list[str]) -> list[str]:
    notes = []
    if result.get("memory_touched_bytes"):
        notes.append(f"Before either framework ran, {result['memory_touched_bytes'] / 2**30:.1f} "
                     "GB of shared memory was written and freed once (compare.touch_memory), "
                     "so neither pays for the virtual machine's first touch of its memory.")
    for fw in ("ember", "ray"):
        res = result.get(fw, {}).get("results", {})
        if "idle-processes" in res and "names" in res["idle-processes"]:
            names = res["idle-processes"]["names"]
            notes.append(f"{fw} idle processes: " + ", ".join(sorted({
                f"{n} x{names.count(n)}" if names.count(n) > 1 else n for n in names})))
        if "idle-memory" in res and "rss_mb" in res["idle-memory"]:
            notes.append(f"{fw} idle resident set (RSS, shared pages counted in each "
                         f"process): {res['idle-memory']['rss_mb']:.0f} MB")
    if any(by_key(k).phase == "startup" for k in keys):
        notes.append("Both frameworks start with include_dashboard=False; both packages are "
                     "byte-compiled before the run, as pip install leaves them.")
    return notes

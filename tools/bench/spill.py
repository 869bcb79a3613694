"""Object spilling throughput: how fast a full store moves objects to disk and back.

    python tools/bench/spill.py [--store-mib 256] [--object-mib 8] [--ratio 4] [--json out.json]

Runs in a fresh interpreter (one-node `ember.init(num_cpus=2,
object_store_memory=STORE)`); objects are random int64 NumPy arrays, so no
page is left untouched or compressible. Rows:

- put, no spilling: `ember.put` of --ratio x STORE bytes into a store big
  enough for all of it (the baseline).
- put, spilling: the same into a store of --store-mib: past the capacity each
  put waits for older objects to be written to `session_*/spill/`. GB/s of
  objects put, and of bytes the node manager wrote to disk in that time.
- get, restoring: `ember.get` of every object, oldest first (each was spilled,
  so each is read back from disk, evicting others). GB/s of objects got, and
  of bytes restored.

Spill files go through the page cache like any file, so on a machine with
free RAM this measures the copy costs more than the disk. Not run by the tests.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

_MARK = "@@SPILL"

_PROBE = r"""
import json, sys, time
import numpy as np
import ember
from ember._private import worker_state
from ember._private.protos import ember_pb2 as pb

CFG = json.loads(sys.argv[1])
MiB = 1 << 20
obj, total = CFG["object_mib"] * MiB, CFG["store_mib"] * MiB * CFG["ratio"]
count = total // obj
arrays = [np.random.default_rng(i).integers(0, 1 << 62, obj // 8, dtype=np.int64)
          for i in range(min(count, 8))]

def status():
    return worker_state.core.node_manager.GetStatus(pb.Empty(), timeout=60)

def say(key, value):
    print(CFG["mark"], key, json.dumps(value), flush=True)

def run(store):
    ember.init(num_cpus=2, object_store_memory=store, log_to_driver=False)
    ember.get(ember.put(arrays[0]))                 # warm up
    before = status()
    t0 = time.perf_counter()
    refs = [ember.put(arrays[i % len(arrays)]) for i in range(count)]
    put_s = time.perf_counter() - t0
    mid = status()
    t0 = time.perf_counter()
    for ref in refs:
        value = ember.get(ref)
        assert value.nbytes == obj
        del value
    get_s = time.perf_counter() - t0
    after = status()
    ember.shutdown()
    return {"put_s": put_s, "get_s": get_s, "bytes": count * obj,
            "spilled": mid.store_total_spilled_bytes - before.store_total_spilled_bytes,
            "restored": after.store_total_restored_bytes - mid.store_total_restored_bytes}

say("baseline", run(2 * total + 64 * MiB))
say("spilling", run(CFG["store_mib"] * MiB))
"""


def probe(python: str, cfg: dict, timeout: float) -> dict:
    proc = subprocess.run([python, "-c", _PROBE, json.dumps(cfg)], capture_output=True,
                          text=True, timeout=timeout)
    found: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK + " "):
            _, key, value = line.split(" ", 2)
            found[key] = json.loads(value)
    if proc.returncode != 0:
        found["error"] = proc.stderr[-4000:]
    return found


def _gbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 1e9 / seconds:.2f}" if seconds > 0 else "-"


def render(res: dict, cfg: dict) -> str:
    base, spill = res.get("baseline"), res.get("spilling")
    title = (f"Store {cfg['store_mib']} MiB, objects of {cfg['object_mib']} MiB, "
             f"{cfg['ratio']} x the store in all; GB/s = 1e9 bytes/s.")
    lines = [title, "",
             "| row | objects GB/s | disk GB/s | seconds |", "|---|---|---|---|"]
    if base:
        lines.append(f"| put, no spilling | {_gbps(base['bytes'], base['put_s'])} | - | "
                     f"{base['put_s']:.3f} |")
    if spill:
        lines.append(f"| put, spilling | {_gbps(spill['bytes'], spill['put_s'])} | "
                     f"{_gbps(spill['spilled'], spill['put_s'])} (spilled) | "
                     f"{spill['put_s']:.3f} |")
        lines.append(f"| get, restoring | {_gbps(spill['bytes'], spill['get_s'])} | "
                     f"{_gbps(spill['restored'], spill['get_s'])} (restored) | "
                     f"{spill['get_s']:.3f} |")
    if "error" in res:
        lines.append("\nfailed:\n" + res["error"])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="python with Ember installed")
    parser.add_argument("--store-mib", type=int, default=256)
    parser.add_argument("--object-mib", type=int, default=8)
    parser.add_argument("--ratio", type=int, default=4, help="bytes put, in stores (default 4)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    cfg = {"mark": _MARK, "store_mib": args.store_mib, "object_mib": args.object_mib,
           "ratio": args.ratio}
    res = probe(args.python, cfg, args.timeout)
    print(render(res, cfg))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**cfg, **res}, f, indent=2)


if __name__ == "__main__":
    main()

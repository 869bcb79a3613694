"""Task execution as a Chrome trace (``ember timeline``; Ray's ``ray timeline``).

One complete event ("ph": "X") per task attempt that ran: it starts when the
worker started it and ends when it finished or failed (or now, if it still
runs). Each node is a trace process and each worker a thread (its pid), named
by metadata events, so chrome://tracing and https://ui.perfetto.dev show one
row per worker, grouped by node. Pure; the rows are ``list_tasks`` records
with every field.

>>> trace = chrome_trace([{"task_id": "ab", "attempt_number": 0, "name": "f",
...     "state": "FINISHED", "node_id": "n1", "worker_id": "w1", "worker_pid": 7,
...     "start_time_ms": 1000, "end_time_ms": 1500, "func_or_class_name": "f",
...     "job_id": "00000001", "type": "NORMAL_TASK", "error_type": None}])
>>> [(e["ph"], e.get("dur")) for e in trace]
[('M', None), ('M', None), ('X', 500000)]
"""
from __future__ import annotations

import time
from typing import Any


def chrome_trace(rows: list[dict], now_ms: float | None = None,
                 node_names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Trace events for task attempt rows (those that never started are left out)."""
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    node_names = node_names or {}
    node_pids: dict[str, int] = {}
    threads: set[tuple[int, int]] = set()
    meta: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: r.get("start_time_ms") or 0):
        start = row.get("start_time_ms")
        if not start:
            continue
        node = row.get("node_id") or "unknown"
        pid = node_pids.get(node)
        if pid is None:
            pid = node_pids[node] = len(node_pids) + 1
            meta.append({"ph": "M", "name": "process_name", "pid": pid,
                         "args": {"name": f"Node {node_names.get(node, '')} {node}".replace(
                             "  ", " ")}})
        tid = int(row.get("worker_pid") or 0)
        if (pid, tid) not in threads:
            threads.add((pid, tid))
            meta.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                         "args": {"name": f"Worker pid={tid} {row.get('worker_id') or ''}"
                                  .rstrip()}})
        end = row.get("end_time_ms") or now_ms
        event = {"ph": "X", "cat": "task", "name": row.get("name") or "task", "pid": pid,
                 "tid": tid, "ts": int(start * 1000), "dur": max(0, int((end - start) * 1000)),
                 "args": {k: row.get(k) for k in ("task_id", "attempt_number", "state",
                                                  "func_or_class_name", "job_id", "type",
                                                  "error_type")}}
        if row.get("state") == "FAILED":
            event["cname"] = "terrible"
        elif row.get("state") not in ("FINISHED", "FAILED"):
            event["cname"] = "rail_animation"       # still running
        events.append(event)
    return meta + events

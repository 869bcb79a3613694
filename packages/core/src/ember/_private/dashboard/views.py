"""What the dashboard shows, computed from state records: pure functions, no I/O.

source.py turns the control service's and node managers' replies into plain
dicts (node: ``node_id, ip, port, alive, total, available, labels,
start_time``; status: a node manager's ``GetStatus``; task, actor, job and
placement-group rows: the state API's, ``ember.util.state``); the functions
here make the JSON the page renders. Tested in tests/core/test_dashboard.py.

>>> usage({"CPU": 4.0}, {"CPU": 1.0}, "CPU")
{'used': 3.0, 'total': 4.0}
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

STANDARD_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
MAX_ERROR_CHARS = 4000
ACTOR_ORDER = {"ALIVE": 0, "RESTARTING": 1, "PENDING_CREATION": 2, "DEAD": 3}
# What a placement group's bundles add to a node (pg_policy.py): R_group_<i>_<pg>,
# R_group_<pg>, bundle_group_...: bookkeeping, shown through the group itself.
_PG_RESOURCE = re.compile(r"^.+_group_(\d+_)?[0-9a-f]{16,}$")


def is_internal_resource(name: str) -> bool:
    """Resources the node cards leave out: per-node markers and placement-group copies.

    >>> [is_internal_resource(n) for n in ("accel", "node:10.0.0.1",
    ...                                    "CPU_group_0_" + "ab" * 9, "bundle_group_" + "ab" * 9)]
    [False, True, True, True]
    """
    return name.startswith(("node:", "accelerator_type:")) or bool(_PG_RESOURCE.match(name))


def usage(total: Mapping[str, float], available: Mapping[str, float], key: str
          ) -> dict[str, float] | None:
    """{used, total} of one resource; None when the node has none of it. A resource
    missing from ``available`` is all in use (resource maps leave zeros out).

    >>> usage({"GPU": 1.0}, {}, "GPU"), usage({}, {}, "GPU")
    ({'used': 1.0, 'total': 1.0}, None)
    """
    t = float(total.get(key, 0.0))
    if t <= 0:
        return None
    used = min(t, max(0.0, t - float(available.get(key, 0.0))))
    return {"used": used, "total": t}


def node_view(node: Mapping[str, Any], status: Mapping[str, Any] | None, head_id: str,
              machine: Mapping[str, int] | None = None) -> dict[str, Any]:
    """One node as the Overview shows it.

    ``status`` is the node manager's live report (None: it did not answer, or
    the node is dead: the control service's last numbers are used);
    ``machine``: the host's physical memory (``mem_used``, ``mem_total``) from
    the node's metrics endpoint, when it answered.

    >>> v = node_view({"node_id": "ab", "ip": "127.0.0.1", "port": 1, "alive": True,
    ...                "total": {"CPU": 2.0}, "available": {"CPU": 2.0}}, None, "ab")
    >>> v["is_head"], v["state"], v["resources"]["CPU"]
    (True, 'UNREACHABLE', {'used': 0.0, 'total': 2.0})
    """
    total = dict(node.get("total") or {})
    available = dict((status or {}).get("available") or node.get("available") or {})
    alive = bool(node.get("alive"))
    state = "DEAD" if not alive else ("ALIVE" if status is not None else "UNREACHABLE")
    resources = {k: usage(total, available, k) for k in STANDARD_RESOURCES}
    custom = {k: usage(total, available, k) for k in sorted(total)
              if k not in STANDARD_RESOURCES and not is_internal_resource(k)}
    st = status or {}
    capacity = int(st.get("store_capacity_bytes") or 0) or int(
        total.get("object_store_memory", 0))
    mem = None
    if machine and machine.get("mem_total"):
        mem = {"used": float(machine.get("mem_used", 0)), "total": float(machine["mem_total"])}
    return {
        "node_id": node.get("node_id", ""),
        "ip": node.get("ip", ""),
        "address": f"{node.get('ip', '')}:{node.get('port', 0)}",
        "is_head": node.get("node_id") == head_id,
        "state": state,
        "resources": resources,
        "custom_resources": custom,
        "object_store": {
            "used_bytes": int(st.get("store_used_bytes") or 0),
            "capacity_bytes": capacity,
            "num_objects": int(st.get("store_num_objects") or 0),
            "spilled_bytes": int(st.get("store_spilled_bytes") or 0),
        },
        "machine_memory": mem,
        "workers": int(st.get("num_workers") or 0),
        "idle_workers": int(st.get("num_idle_workers") or 0),
        "pending_leases": int(st.get("pending_leases") or 0),
        "infeasible": list(st.get("infeasible") or []),
        "labels": dict(node.get("labels") or {}),
        "start_time_ms": _ms(node.get("start_time")),
    }


def sum_usage(views: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Cluster totals of the standard and custom resources of live nodes.

    >>> a = {"state": "ALIVE", "resources": {"CPU": {"used": 1.0, "total": 2.0}},
    ...      "custom_resources": {}}
    >>> sum_usage([a, a, {**a, "state": "DEAD"}])["CPU"]
    {'used': 2.0, 'total': 4.0}
    """
    out: dict[str, dict[str, float]] = {}
    for v in views:
        if v.get("state") == "DEAD":
            continue
        for group in ("resources", "custom_resources"):
            for key, u in (v.get(group) or {}).items():
                if u is None:
                    continue
                acc = out.setdefault(key, {"used": 0.0, "total": 0.0})
                acc["used"] += u["used"]
                acc["total"] += u["total"]
    return out


def state_counts(rows: Iterable[Mapping[str, Any]], key: str = "state") -> dict[str, int]:
    """How many rows are in each state.

    >>> state_counts([{"state": "ALIVE"}, {"state": "DEAD"}, {"state": "ALIVE"}])
    {'ALIVE': 2, 'DEAD': 1}
    """
    out: dict[str, int] = {}
    for r in rows:
        s = str(r.get(key) or "UNKNOWN")
        out[s] = out.get(s, 0) + 1
    return out


def task_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """Task counts by state over every function, from ``summarize_tasks()["cluster"]``.

    >>> task_counts({"summary": {"f": {"state_counts": {"FINISHED": 2}},
    ...                          "g": {"state_counts": {"FINISHED": 1, "RUNNING": 1}}}})
    {'FINISHED': 3, 'RUNNING': 1}
    """
    out: dict[str, int] = {}
    for group in (summary.get("summary") or {}).values():
        for state, n in (group.get("state_counts") or {}).items():
            out[state] = out.get(state, 0) + int(n)
    return out


def cluster_view(nodes: list[dict[str, Any]], actors: Iterable[Mapping[str, Any]],
                 task_summary: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]],
                 address: str, now_ms: int) -> dict[str, Any]:
    """The Overview: nodes (from :func:`node_view`), cluster totals and counts.

    >>> c = cluster_view([], [{"state": "ALIVE"}], {}, [{"status": "RUNNING"}], "h:1", 0)
    >>> c["actors"], c["jobs"], c["nodes_alive"]
    ({'ALIVE': 1}, {'RUNNING': 1}, 0)
    """
    store_used = sum(n["object_store"]["used_bytes"] for n in nodes if n["state"] != "DEAD")
    store_cap = sum(n["object_store"]["capacity_bytes"] for n in nodes if n["state"] != "DEAD")
    return {
        "address": address,
        "time_ms": now_ms,
        "nodes": nodes,
        "nodes_alive": sum(1 for n in nodes if n["state"] != "DEAD"),
        "nodes_dead": sum(1 for n in nodes if n["state"] == "DEAD"),
        "totals": sum_usage(nodes),
        "object_store": {"used_bytes": store_used, "capacity_bytes": store_cap},
        "actors": state_counts(actors),
        "tasks": task_counts(task_summary),
        "jobs": state_counts(jobs, "status"),
    }


def duration_s(start_ms: int | None, end_ms: int | None, now_ms: int) -> float | None:
    """Seconds from start to end (to now while still running); None before it starts.

    >>> duration_s(1000, 3500, 9999), duration_s(1000, None, 2000), duration_s(None, None, 5)
    (2.5, 1.0, None)
    """
    if not start_ms:
        return None
    end = end_ms if end_ms else now_ms
    return max(0.0, (end - start_ms) / 1000.0)


def task_view(row: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """One task attempt for the Tasks table (a state-API row plus its duration).

    >>> t = task_view({"task_id": "01", "name": "f", "state": "FINISHED",
    ...                "start_time_ms": 1000, "end_time_ms": 1500}, 0)
    >>> t["duration_s"], t["error"]
    (0.5, None)
    """
    message = row.get("error_message") or ""
    if len(message) > MAX_ERROR_CHARS:
        message = "..." + message[-MAX_ERROR_CHARS:]
    error = None
    if row.get("error_type") or message:
        error = {"type": row.get("error_type") or "", "message": message}
    keys = ("task_id", "attempt_number", "name", "state", "type", "func_or_class_name",
            "job_id", "actor_id", "node_id", "worker_id", "worker_pid",
            "placement_group_id", "creation_time_ms", "start_time_ms", "end_time_ms")
    out = {k: row.get(k) for k in keys}
    out["required_resources"] = dict(row.get("required_resources") or {})
    out["duration_s"] = duration_s(row.get("start_time_ms"), row.get("end_time_ms"), now_ms)
    out["error"] = error
    return out


def actor_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """One actor for the Actors table (a state-API row, death cause as text).

    >>> actor_view({"actor_id": "a", "state": "DEAD",
    ...             "death_cause": {"error_message": "killed"}})["death_cause"]
    'killed'
    """
    out = dict(row)
    cause = row.get("death_cause")
    out["death_cause"] = (cause.get("error_message") if isinstance(cause, Mapping)
                          else cause) or None
    out["required_resources"] = dict(row.get("required_resources") or {})
    return out


def sort_actors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live actors first, then restarting, pending and dead ones (stable otherwise).

    >>> [a["state"] for a in sort_actors([{"state": "DEAD"}, {"state": "ALIVE"}])]
    ['ALIVE', 'DEAD']
    """
    return sorted(rows, key=lambda r: ACTOR_ORDER.get(str(r.get("state")), 4))


def job_view(row: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """One job (driver) for the Jobs table, with its duration.

    >>> job_view({"job_id": "01", "status": "RUNNING", "start_time": 0,
    ...           "end_time": None}, 10)["duration_s"] is None
    True
    """
    out = dict(row)
    out["duration_s"] = duration_s(row.get("start_time"), row.get("end_time"), now_ms)
    return out


def placement_group_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """One placement group: its state, strategy-free bundle list and where each landed.

    >>> placement_group_view({"placement_group_id": "p", "bundles": [
    ...     {"bundle_id": "p_0", "node_id": "n", "unit_resources": {"CPU": 1.0}}]})["bundles"]
    [{'index': 0, 'node_id': 'n', 'resources': {'CPU': 1.0}}]
    """
    out = dict(row)
    out["bundles"] = [{"index": i, "node_id": b.get("node_id"),
                       "resources": dict(b.get("unit_resources") or {})}
                      for i, b in enumerate(row.get("bundles") or [])]
    return out


def log_sources(files: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The logs a user can pick: one entry per worker (its stdout and stderr
    together) plus each system log, from (node id, node ip, LogFile) triples.

    >>> log_sources([("n1", "10.0.0.1", {"name": "worker-1.out", "pid": 7, "size": 3}),
    ...              ("n1", "10.0.0.1", {"name": "worker-1.err", "pid": 7, "is_err": True,
    ...                                  "size": 0}),
    ...              ("n1", "10.0.0.1", {"name": "gcs.log", "size": 9})])[0]["label"]
    'worker pid 7'
    """
    workers: dict[tuple[str, int], dict[str, Any]] = {}
    system = []
    for node_id, ip, f in files:
        pid = int(f.get("pid") or 0)
        if pid:
            entry = workers.setdefault((node_id, pid), {
                "node_id": node_id, "node_ip": ip, "pid": pid, "name": None,
                "label": f"worker pid {pid}", "size": 0})
            entry["size"] += int(f.get("size") or 0)
            if not f.get("is_err"):
                entry["name"] = f.get("name")
        else:
            system.append({"node_id": node_id, "node_ip": ip, "pid": None,
                           "name": f.get("name"), "label": str(f.get("name")),
                           "size": int(f.get("size") or 0)})
    return sorted(workers.values(), key=lambda e: (e["node_id"], e["pid"])) + system


def _ms(seconds: Any) -> int | None:
    return int(float(seconds) * 1000) if seconds else None

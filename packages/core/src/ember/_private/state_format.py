"""Text the state commands print (`ember list/get/summary/memory`): pure functions.

Tables come from tabulate; JSON is the records' fields as the Python API
returns them. Tested without processes in tests/core/test_state_cli.py.
"""
from __future__ import annotations

import datetime
import json
from typing import Any, Sequence

from tabulate import tabulate

UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def render_list(records: Sequence[Any], columns: Sequence[str], fmt: str,
                more: bool = False) -> str:
    """A list of state records as a table (``columns``) or as JSON (every field)."""
    if fmt == "json":
        return json.dumps([r.asdict() for r in records], indent=2, default=str)
    if not records:
        return "(none)"
    rows = [[_cell(getattr(r, c)) for c in columns] for r in records]
    out = tabulate(rows, headers=[c.upper() for c in columns], showindex=True)
    if more:
        out += (f"\n\n(more than {len(records)} found: showing the first {len(records)}; "
                "raise --limit to see more)")
    return out


def render_record(record: Any, fmt: str) -> str:
    """One record (``ember get``): ``key: value`` lines, or JSON."""
    data = record.asdict()
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if isinstance(value, (list, dict)) and value:
            lines.append(f"{key}:")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                lines.append(f"  {k}: {json.dumps(v, default=str) if isinstance(v, (list, dict)) else v}")
        else:
            lines.append(f"{key + ':':<{width + 1}} {_cell(value)}")
    return "\n".join(lines)


def _header(title: str) -> str:
    return f"======== {title}: {datetime.datetime.now()} ========"


def render_summary(kind: str, summary: dict, fmt: str) -> str:
    """``ember summary tasks|actors|objects`` (Ray's layout: stats, then a table)."""
    if fmt == "json":
        return json.dumps(summary, indent=2, default=str)
    cluster = summary["cluster"]
    stats = {k: v for k, v in cluster.items() if k not in ("summary", "summary_by")}
    out = [_header(f"{kind.capitalize()} Summary"), "Stats:", "-" * 36]
    out += [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in sorted(stats.items())]
    out += ["", "", f"Table (group by {cluster.get('summary_by', '')}):", "-" * 36]
    rows = []
    for name, group in sorted(cluster["summary"].items()):
        if kind == "tasks":
            rows.append([name, _counts(group["state_counts"]), group["type"]])
        elif kind == "actors":
            rows.append([name, _counts(group["state_counts"])])
        else:
            rows.append([name, group["total_objects"], f"{group['total_size_mb']:.3f} MiB",
                         group["total_num_workers"], group["total_num_nodes"],
                         _counts(group["task_state_counts"]), _counts(group["ref_type_counts"])])
    headers = {"tasks": ["FUNC_OR_CLASS_NAME", "STATE_COUNTS", "TYPE"],
               "actors": ["CLASS_NAME", "STATE_COUNTS"],
               "objects": ["CALLSITE", "TOTAL_OBJECTS", "TOTAL_SIZE", "TOTAL_NUM_WORKERS",
                           "TOTAL_NUM_NODES", "TASK_STATE_COUNTS", "REF_TYPE_COUNTS"]}[kind]
    out.append(tabulate(rows, headers=headers, showindex=True) if rows else "(none)")
    return "\n".join(out)


def _counts(counts: dict) -> str:
    return "\n".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def _size(size: int | None, units: str) -> str:
    if size is None:
        return "?"
    if units == "B":
        return f"{size} B"
    return f"{size / UNITS[units]:.3f} {units}"


_REF_COLUMNS = (("LOCAL_REFERENCE", "Local References"), ("PINNED_IN_MEMORY", "Pinned"),
                ("USED_BY_PENDING_TASK", "Used by task"),
                ("CAPTURED_IN_OBJECT", "Captured in Objects"), ("ACTOR_HANDLE", "Actor Handles"))
SORT_KEYS = {"OBJECT_SIZE": lambda r: -(r["object_size"] or 0), "PID": lambda r: r["pid"],
             "REFERENCE_TYPE": lambda r: r["reference_type"]}


def render_memory(rows: list[dict], statuses: dict[str, Any], node_ips: dict[str, str],
                  group_by: str = "NODE_ADDRESS", sort_by: str = "OBJECT_SIZE",
                  units: str = "B", stats_only: bool = False, num_entries: int | None = None
                  ) -> str:
    """``ember memory`` (Ray's ``ray memory``): object references per node (or one
    group: call sites are not recorded), then the object stores' totals.

    ``rows``: ObjectState dicts (every field); ``statuses``: NodeStatus by node id.
    """
    out = [_header("Object references status")]
    if not stats_only:
        by_node = group_by == "NODE_ADDRESS"
        groups: dict[str, list[dict]] = {}
        for row in rows:
            key = (f"{node_ips.get(row['node_id'] or '', row['ip'])} "
                   f"({(row['node_id'] or '')[:8]})") if by_node else "disabled"
            groups.setdefault(key, []).append(row)
        out.append(f"Grouping by {'node address' if by_node else 'call site'}...    "
                   f"Sorting by {sort_by.lower().replace('_', ' ')}...")
        for key in sorted(groups):
            members = sorted(groups[key], key=SORT_KEYS[sort_by])
            what = "node address" if by_node else "call site"
            owned = [r for r in members if r["is_owner"] and r["object_size"] is not None]
            summary = [_size(sum(r["object_size"] for r in owned), units)]
            for ref_type, _ in _REF_COLUMNS:
                of_type = [r for r in members if r["reference_type"] == ref_type]
                held = sum(r["object_size"] or 0 for r in of_type if r["is_owner"])
                summary.append(f"{len(of_type)}, ({_size(held, units)})")
            out += ["", f"--- Summary for {what}: {key} ---",
                    tabulate([summary], headers=["Mem Used by Objects"]
                             + [title for _, title in _REF_COLUMNS]),
                    "", f"--- Object references for {what}: {key} ---"]
            shown = members if num_entries is None else members[:num_entries]
            table = [[r["ip"], r["pid"], r["type"], r["call_site"], r["task_status"],
                      _size(r["object_size"], units), r["reference_type"],
                      "yes" if r["is_owner"] else "no", r["object_id"]] for r in shown]
            out.append(tabulate(table, headers=["IP Address", "PID", "Type", "Call Site",
                                                "Status", "Size", "Reference Type", "Owner",
                                                "Object Ref"]))
            if num_entries is not None and len(members) > num_entries:
                out.append(f"... {len(members) - num_entries} more (--num-entries)")
        out += ["", "Call sites are not recorded (Call Site: disabled)."]
    used = sum(st.store_used_bytes for st in statuses.values())
    count = sum(st.store_num_objects for st in statuses.values())
    capacity = sum(getattr(st, "store_capacity_bytes", 0) for st in statuses.values())
    spilled = sum(getattr(st, "store_spilled_bytes", 0) for st in statuses.values())
    num_spilled = sum(getattr(st, "store_num_spilled", 0) for st in statuses.values())
    total_spilled = sum(getattr(st, "store_total_spilled_bytes", 0) for st in statuses.values())
    restored = sum(getattr(st, "store_total_restored_bytes", 0) for st in statuses.values())
    full = f", {100 * used / capacity:.1f}% full" if capacity else ""
    out += ["", "--- Aggregate object store stats across all nodes ---",
            f"Shared memory usage {_size(used, 'MB')}, {count} objects{full}",
            (f"Spilled {_size(spilled, 'MB')} now ({num_spilled} objects); "
             f"{_size(total_spilled, 'MB')} written and {_size(restored, 'MB')} restored "
             "since the nodes started")]
    return "\n".join(out)

"""Filters of the state API: ``("state", "=", "RUNNING")``, as in Ray.

A filter is (key, predicate, value) with predicate ``=`` or ``!=``. String
values compare case-insensitively; a row value that is a bool, int or float
is compared with the filter value converted to that type. Pure functions,
shared by the control service (tasks), the Python API and the CLI.

>>> rows = [{"state": "RUNNING", "pid": 7}, {"state": "FINISHED", "pid": 8}]
>>> [r["pid"] for r in apply_filters(rows, [("state", "=", "running")])]
[7]
>>> parse_filter("pid!=7")
('pid', '!=', '7')
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

PREDICATES = ("=", "!=")

Filter = tuple[str, str, Any]


def parse_filter(text: str) -> Filter:
    """``key=value`` or ``key!=value`` (the CLI's ``--filter``) as a filter tuple."""
    if "!=" in text:
        key, _, value = text.partition("!=")
        predicate = "!="
    elif "=" in text:
        key, _, value = text.partition("=")
        predicate = "="
    else:
        raise ValueError(f"filter {text!r} must look like key=value or key!=value, "
                         "e.g. state=RUNNING")
    key, value = key.strip(), value.strip()
    if not key:
        raise ValueError(f"filter {text!r} has no key: write key=value, e.g. state=RUNNING")
    return key, predicate, value


def check_filters(filters: Sequence[Any] | None, columns: Iterable[str],
                  what: str) -> list[Filter]:
    """Validate user filters against the columns of ``what``; returns them as tuples."""
    out: list[Filter] = []
    known = set(columns)
    for f in filters or ():
        if isinstance(f, str):
            f = parse_filter(f)
        if not isinstance(f, (tuple, list)) or len(f) != 3:
            raise ValueError(f"filter {f!r} must be a (key, predicate, value) tuple, e.g. "
                             "('state', '=', 'RUNNING')")
        key, predicate, value = f
        if predicate not in PREDICATES:
            raise ValueError(f"filter {tuple(f)!r}: predicate must be '=' or '!=', "
                             f"got {predicate!r}")
        if key not in known:
            raise ValueError(f"cannot filter {what} by {key!r}: filter by one of "
                             f"{', '.join(sorted(known))}")
        out.append((str(key), predicate, value))
    return out


def _equal(row_value: Any, value: Any) -> bool:
    if row_value is None:
        return value is None or str(value).lower() in ("", "none", "null")
    if isinstance(row_value, bool):
        if isinstance(value, bool):
            return row_value == value
        return str(value).strip().lower() == str(row_value).lower()
    if isinstance(row_value, (int, float)):
        try:
            return float(row_value) == float(value)
        except (TypeError, ValueError):
            return False
    return str(row_value).lower() == str(value).lower()


def matches(row: dict, filters: Sequence[Filter]) -> bool:
    """Whether one row passes every filter."""
    for key, predicate, value in filters:
        equal = _equal(row.get(key), value)
        if equal != (predicate == "="):
            return False
    return True


def apply_filters(rows: Iterable[dict], filters: Sequence[Filter]) -> list[dict]:
    return [r for r in rows if matches(r, filters)]

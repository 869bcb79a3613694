"""The comparison table: metric, Ember, Ray, Ember/Ray, target, met? (pure).

>>> rows = table({"tasks-sync": {"mean": 900.0, "std": 10.0}},
...              {"tasks-sync": {"mean": 300.0, "std": 5.0}}, ["tasks-sync"])
>>> rows[0]["ratio"], rows[0]["target"], rows[0]["met"]
(3.0, '>= 3x', 'yes')
"""
from __future__ import annotations

from fractions import Fraction

from .rows import by_key
from .runner import fmt


def _target_text(target: float, better: str) -> str:
    if better == "info":
        return "-"
    if target < 1:
        frac = Fraction(target).limit_denominator(100)
        shown = f"1/{frac.denominator}" if frac.numerator == 1 else f"{target:.2f}"
    else:
        shown = f"{target:g}x"
    return (">= " if better == "higher" else "<= ") + shown


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return "error: " + str(r["error"]).replace("|", "/").replace("\n", " ")[:120]
    if len(r.get("runs", [])) > 1:
        return f"{fmt(r['mean'])} ± {fmt(r['std'])}"
    return fmt(r["mean"])


def table(ember: dict | None, ray: dict | None, keys: list[str]) -> list[dict]:
    """One dict per metric: ``metric, key, unit, ember, ray`` (cells), ``ratio``
    (Ember/Ray of the means, None if either is missing), ``target``, ``met``."""
    out = []
    for key in keys:
        row = by_key(key)
        e = (ember or {}).get(key)
        r = (ray or {}).get(key)
        ratio = None
        if e and r and "mean" in e and "mean" in r and r["mean"]:
            ratio = e["mean"] / r["mean"]
        met = "-"
        if ratio is not None and row.better != "info":
            ok = ratio >= row.target if row.better == "higher" else ratio <= row.target
            met = "yes" if ok else "NO"
        elif row.better != "info" and (ember is not None and ray is not None):
            met = "n/a"
        name = row.name if row.unit == "per second" else f"{row.name} ({row.unit})"
        out.append({"metric": name, "key": key, "unit": row.unit, "ember": _cell(e),
                    "ray": _cell(r), "ratio": ratio, "target": _target_text(row.target,
                                                                            row.better),
                    "met": met})
    return out


def render(rows: list[dict], with_ray: bool, ray_label: str = "Ray") -> str:
    """The table as text (tabulate's GitHub layout)."""
    from tabulate import tabulate

    if with_ray:
        head = ["metric", "Ember", ray_label, "Ember/Ray", "target", "met?"]
        body = [[r["metric"], r["ember"], r["ray"],
                 "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"], r["met"]]
                for r in rows]
    else:
        head = ["metric", "Ember"]
        body = [[r["metric"], r["ember"]] for r in rows]
    return tabulate(body, headers=head, tablefmt="github", disable_numparse=True)

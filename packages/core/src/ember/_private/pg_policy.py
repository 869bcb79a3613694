"""Where a placement group's bundles go: a pure function over free resources.

Strategies (Ray's):

* PACK: as few nodes as possible (all on one if any node has room), best
  effort beyond that;
* SPREAD: a different node per bundle where possible, best effort beyond;
* STRICT_PACK: all bundles on one node, or not yet;
* STRICT_SPREAD: every bundle on a different node, or not yet.

``place`` returns one node id per bundle, or None when the bundles cannot be
placed on the free resources now (the group stays pending and is retried as
resources free up or nodes join). The control service then reserves the
bundles with a two-phase prepare/commit, so a stale view only costs a retry.
Tested in tests/core/test_pg_policy.py.
"""
from __future__ import annotations

from typing import Mapping, Sequence

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def _fits(need: Mapping[str, float], free: Mapping[str, float]) -> bool:
    return all(free.get(k, 0.0) >= v - 1e-9 for k, v in need.items() if v > 0)


def _take(free: dict[str, float], need: Mapping[str, float]) -> None:
    for k, v in need.items():
        free[k] = free.get(k, 0.0) - v


def _sum(bundles: Sequence[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    return total


def place(bundles: Sequence[Mapping[str, float]], strategy: str,
          available: Mapping[str, Mapping[str, float]],
          allowed: Sequence[set[str] | None] | None = None,
          prefer: str = "") -> list[str] | None:
    """Assign each bundle to a node id, or None if that is impossible right now.

    ``available`` maps node id -> free resources of live nodes. ``allowed``
    (one entry per bundle, None = any) restricts bundles to some nodes (their
    label selectors); ``prefer`` names a node to try first for packing.

    >>> place([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", {"a": {"CPU": 2}, "b": {"CPU": 1}})
    ['a', 'b']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}; use one of {STRATEGIES}")
    if allowed is not None and any(a is not None for a in allowed):
        # A bundle that may only use some nodes: treat the others as full for it.
        return _place_restricted(bundles, strategy, available, list(allowed), prefer)
    nodes = sorted(available)                  # deterministic order
    free = {n: dict(available[n]) for n in nodes}
    if strategy in ("PACK", "STRICT_PACK"):
        whole = _sum(bundles)
        # The preferred node first, then most free first, so a pack lands where
        # it leaves the most room elsewhere.
        for node in sorted(nodes, key=lambda n: (n != prefer, -sum(free[n].values()))):
            if _fits(whole, free[node]):
                return [node] * len(bundles)
        if strategy == "STRICT_PACK":
            return None
        return _greedy(bundles, nodes, free, prefer_used=True)
    if strategy == "STRICT_SPREAD":
        if len(bundles) > len(nodes):
            return None
        return _distinct(bundles, nodes, free)
    spread = _distinct(bundles, nodes, free) if len(bundles) <= len(nodes) else None
    if spread is not None:
        return spread
    return _greedy(bundles, nodes, {n: dict(available[n]) for n in nodes}, prefer_used=False)


def _place_restricted(bundles: Sequence[Mapping[str, float]], strategy: str,
                      available: Mapping[str, Mapping[str, float]],
                      allowed: list[set[str] | None], prefer: str) -> list[str] | None:
    """place() when bundles may only use some nodes: try the strategy's node sets in order."""
    nodes = sorted(available)
    ok = [set(nodes) if a is None else set(a) & set(nodes) for a in allowed]
    if strategy in ("PACK", "STRICT_PACK"):
        common = set.intersection(*ok) if ok else set()
        for node in sorted(common, key=lambda n: (n != prefer, -sum(available[n].values()))):
            if _fits(_sum(bundles), available[node]):
                return [node] * len(bundles)
        if strategy == "STRICT_PACK":
            return None
    distinct = strategy in ("SPREAD", "STRICT_SPREAD")
    chosen: dict[int, str] = {}
    free = {n: dict(available[n]) for n in nodes}
    order = sorted(range(len(bundles)), key=lambda i: (len(ok[i]), -sum(bundles[i].values())))

    def assign(k: int) -> bool:
        if k == len(order):
            return True
        i = order[k]
        used = set(chosen.values())
        candidates = [n for n in nodes if n in ok[i] and _fits(bundles[i], free[n])]
        if distinct:
            fresh = [n for n in candidates if n not in used]
            candidates = fresh if strategy == "STRICT_SPREAD" else fresh + \
                [n for n in candidates if n in used]
        for node in candidates:
            _take(free[node], bundles[i])
            chosen[i] = node
            if assign(k + 1):
                return True
            del chosen[i]
            for key, v in bundles[i].items():
                free[node][key] = free[node].get(key, 0.0) + v
        return False

    if not assign(0):
        return None
    return [chosen[i] for i in range(len(bundles))]


def _distinct(bundles: Sequence[Mapping[str, float]], nodes: list[str],
              free: dict[str, dict[str, float]]) -> list[str] | None:
    """One node per bundle, each node used once (backtracking; groups are small)."""
    order = sorted(range(len(bundles)), key=lambda i: -sum(bundles[i].values()))
    chosen: dict[int, str] = {}
    used: set[str] = set()

    def assign(k: int) -> bool:
        if k == len(order):
            return True
        i = order[k]
        for node in nodes:
            if node not in used and _fits(bundles[i], free[node]):
                used.add(node)
                chosen[i] = node
                if assign(k + 1):
                    return True
                used.discard(node)
        return False

    if not assign(0):
        return None
    return [chosen[i] for i in range(len(bundles))]


def _greedy(bundles: Sequence[Mapping[str, float]], nodes: list[str],
            free: dict[str, dict[str, float]], prefer_used: bool) -> list[str] | None:
    """Best effort: each bundle on a node with room, packing onto used nodes or spreading.

    Biggest bundles first (as Ray sorts them), so small ones placed early do not
    leave a big one nowhere to go when some assignment would fit them all.
    """
    counts = {n: 0 for n in nodes}
    out: dict[int, str] = {}
    for i in sorted(range(len(bundles)), key=lambda i: -sum(bundles[i].values())):
        bundle = bundles[i]
        fitting = [n for n in nodes if _fits(bundle, free[n])]
        if not fitting:
            return None
        if prefer_used:
            node = max(fitting, key=lambda n: (counts[n], sum(free[n].values())))
        else:
            node = min(fitting, key=lambda n: (counts[n], -sum(free[n].values())))
        _take(free[node], bundle)
        counts[node] += 1
        out[i] = node
    return [out[i] for i in range(len(bundles))]


def bundle_resource_names(resources: Mapping[str, float], pg_hex: str,
                          index: int) -> dict[str, float]:
    """The resources a committed bundle adds to its node (Ray's naming).

    Each ``R`` of bundle ``i`` becomes ``R_group_i_<pg>`` and ``R_group_<pg>``;
    ``bundle_group_i_<pg>`` / ``bundle_group_<pg>`` (1000 each) let a task that
    asks for nothing still be pinned to the bundle.

    >>> sorted(bundle_resource_names({"CPU": 2}, "ab", 0))
    ['CPU_group_0_ab', 'CPU_group_ab', 'bundle_group_0_ab', 'bundle_group_ab']
    """
    out: dict[str, float] = {}
    for name, value in resources.items():
        if value > 0:
            out[f"{name}_group_{index}_{pg_hex}"] = value
            out[f"{name}_group_{pg_hex}"] = value
    out[f"bundle_group_{index}_{pg_hex}"] = 1000.0
    out[f"bundle_group_{pg_hex}"] = 1000.0
    return out


def task_resources_in_bundle(resources: Mapping[str, float], pg_hex: str,
                             index: int) -> dict[str, float]:
    """Rewrite a task's request to draw from bundle ``index`` (-1: any bundle).

    >>> task_resources_in_bundle({"CPU": 1}, "ab", -1)
    {'CPU_group_ab': 1, 'bundle_group_ab': 0.001}
    """
    suffix = f"{index}_{pg_hex}" if index >= 0 else pg_hex
    out: dict[str, float] = {f"{name}_group_{suffix}": value
                             for name, value in resources.items() if value > 0}
    out[f"bundle_group_{suffix}"] = 0.001
    return out

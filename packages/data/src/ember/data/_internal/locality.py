"""Locality-aware splitting: which blocks go to which consumer (pure; no tasks, no I/O).

``split(n, locality_hints=...)`` and ``streaming_split(n, locality_hints=...)`` take one
node (a node id, or an actor whose node is looked up) per part. Blocks already on a part's
node are given to that part whole; the rest are sliced to fill what is left, so row counts
are exactly those of a split without hints and only placement differs. A block's nodes
come from ``ember.experimental.get_object_locations``; a small block kept inline by its
owner has none and is "anywhere".
"""
from __future__ import annotations

from typing import Any, Sequence

import ember

__all__ = ["block_nodes", "choose_bundle", "plan_local_split", "resolve_hints"]


def plan_local_split(rows: Sequence[int], nodes: Sequence[frozenset[str]],
                     hints: Sequence[str | None], targets: Sequence[int]
                     ) -> tuple[list[list[int]], list[int], list[int]]:
    """Assign whole blocks to the parts on their node, without overfilling a part.

    Returns ``(kept, rest, room)``: the block indices each part keeps whole, the indices
    (in order) of the blocks left over, and how many rows each part still needs; the
    caller slices the leftover blocks into those ``room`` sizes.

    >>> plan_local_split([5, 5, 5], [frozenset({"a"}), frozenset({"b"}), frozenset()],
    ...                  ["a", "b"], [8, 7])
    ([[0], [1]], [2], [3, 2])
    """
    if len(hints) != len(targets):
        raise ValueError(f"{len(hints)} locality hints for {len(targets)} parts")
    room = list(targets)
    kept: list[list[int]] = [[] for _ in targets]
    rest: list[int] = []
    for k, (count, where) in enumerate(zip(rows, nodes)):
        fits = [i for i, hint in enumerate(hints)
                if hint is not None and hint in where and room[i] >= count]
        if fits:
            # The emptiest of the parts on that node, so parts sharing a node fill evenly.
            best = max(fits, key=lambda i: (room[i], -i))
            kept[best].append(k)
            room[best] -= count
        else:
            rest.append(k)
    return kept, rest, room


def choose_bundle(candidates: Sequence[frozenset[str]], hint: str | None,
                  other_hints: Sequence[str | None]) -> int | None:
    """Which buffered bundle a ``streaming_split`` consumer on node ``hint`` should take.

    First one on its own node; else one no other consumer is waiting next to (inline
    blocks count as anywhere); else None, so the caller can look further down the stream
    before handing out another consumer's local block.

    >>> choose_bundle([frozenset({"b"}), frozenset({"a"})], "a", ["b"])
    1
    """
    if hint is None:
        return 0 if candidates else None
    others = {h for h in other_hints if h is not None and h != hint}
    for k, where in enumerate(candidates):
        if hint in where:
            return k
    for k, where in enumerate(candidates):
        if not (where & others):
            return k
    return None


def block_nodes(refs: list[Any]) -> list[frozenset[str]]:
    """The nodes holding each (ready) block."""
    if not refs:
        return []
    from ember.experimental import get_object_locations
    found = get_object_locations(refs)
    return [frozenset(found.get(r, {}).get("node_ids") or ()) for r in refs]


def _node_of(actor: Any) -> str:
    return ember.get_runtime_context().get_node_id()


def resolve_hints(hints: Any, n: int, what: str) -> list[str]:
    """Node ids from ``locality_hints``: node id strings or actor handles, one per part."""
    if not isinstance(hints, (list, tuple)) or len(hints) != n:
        raise ValueError(f"{what}: locality_hints must be a list of {n} node ids or actor "
                         f"handles (one per part), got {hints!r}")
    from ember.actor import ActorHandle
    out: list[Any] = []
    for hint in hints:
        if isinstance(hint, str) and hint:
            out.append(hint)
        elif isinstance(hint, ActorHandle):
            out.append(hint.__ray_call__.remote(lambda self: _node_of(self)))
        else:
            raise ValueError(f"{what}: each locality hint must be a node id (str, from "
                             f"ember.nodes() or get_runtime_context().get_node_id()) or an "
                             f"actor handle, got {hint!r}")
    pending = [i for i, h in enumerate(out) if not isinstance(h, str)]
    if pending:
        for i, node in zip(pending, ember.get([out[i] for i in pending])):
            out[i] = node
    return out

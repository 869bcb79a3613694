"""``zip`` (row-aligned column concatenation) and ``join`` (hash join on keys)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa

import ember

from . import block as B
from .bundle import RefBundle
from .exchange import _as_list, _blocks, _bundles, _finish, _now, plan_ranges
from .executor import remote_fn

__all__ = ["join_fn", "normalize_join_type", "zip_bundles"]

_JOIN_TYPES = {
    "inner": "inner", "left_outer": "left outer", "left": "left outer",
    "right_outer": "right outer", "right": "right outer", "full_outer": "full outer",
    "outer": "full outer", "full": "full outer", "left_semi": "left semi",
    "right_semi": "right semi", "left_anti": "left anti", "right_anti": "right anti",
}


def normalize_join_type(join_type: str) -> str:
    """Ray's join type names (and pandas-style short ones) -> pyarrow's."""
    key = join_type.lower().replace(" ", "_")
    if key not in _JOIN_TYPES:
        raise ValueError(f"join_type must be one of {sorted(set(_JOIN_TYPES))}, "
                         f"got {join_type!r}")
    return _JOIN_TYPES[key]


# -- zip ---------------------------------------------------------------------------------------
def _zip_task(left: B.Block, spec: list[tuple[int, int, int]],
              *right_blocks: B.Block) -> tuple[B.Block, Any]:
    start = _now()
    right = B.concat([B.slice_block(right_blocks[i], s, e) for i, s, e in spec]) \
        if spec else pa.table({})
    out = left
    for name in right.column_names:
        new = name
        suffix = 1
        while new in out.column_names:
            new = f"{name}_{suffix}"
            suffix += 1
        out = out.append_column(new, right.column(name))
    return _finish(out, start)


def zip_bundles(inputs: list[list[RefBundle]], ctx: Any) -> list[RefBundle]:
    """Pair rows of two datasets by position: each left block gets the matching right rows."""
    left, right = _blocks(inputs[0]), _blocks(inputs[1])
    left_rows = [m.num_rows or 0 for _, m in left]
    right_rows = [m.num_rows or 0 for _, m in right]
    if sum(left_rows) != sum(right_rows):
        raise ValueError(f"zip needs datasets with the same number of rows; got "
                         f"{sum(left_rows)} and {sum(right_rows)}")
    bounds = np.concatenate([[0], np.cumsum(left_rows)]).astype(int).tolist()
    task = remote_fn(_zip_task, num_returns=2)
    pairs = []
    for (ref, _), spec in zip(left, plan_ranges(right_rows, bounds)):
        used = sorted({i for i, _, _ in spec})
        local = {i: k for k, i in enumerate(used)}
        pairs.append(task.remote(ref, [(local[i], s, e) for i, s, e in spec],
                                 *[right[i][0] for i in used]))
    return _bundles(pairs, ctx)


# -- join --------------------------------------------------------------------------------------
def _hash_partition(block: B.Block, keys: tuple[str, ...], n: int) -> Any:
    """Split rows into ``n`` parts by a hash of the key columns (same on both sides)."""
    missing = [k for k in keys if k not in block.column_names]
    if missing:
        raise KeyError(f"join: no key column(s) {missing}; the dataset has "
                       f"{block.column_names}")
    if n == 1:
        return block
    import pandas as pd
    if block.num_rows == 0:
        return tuple([block] * n)
    frame = block.select(list(keys)).to_pandas()
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    part = (hashes % np.uint64(n)).astype(np.int64)
    return tuple(block.filter(pa.array(part == j)) for j in range(n))


def _join_partition(join_type: str, left_keys: tuple[str, ...], right_keys: tuple[str, ...],
                    left_suffix: str | None, right_suffix: str | None, n_left: int,
                    *parts: B.Block) -> tuple[B.Block, Any]:
    start = _now()
    left = B.concat(list(parts[:n_left]))
    right = B.concat(list(parts[n_left:]))
    if left.num_columns == 0 and right.num_columns == 0:
        return _finish(pa.table({}), start)
    # A side with no blocks at all has no schema: treat it as an empty table of just its
    # key columns (typed like the other side's), so outer/anti joins keep the other
    # side's rows, as pandas.merge does with an empty frame.
    if left.num_columns == 0:
        left = _empty_keys(right, right_keys, left_keys)
    elif right.num_columns == 0:
        right = _empty_keys(left, left_keys, right_keys)
    overlap = (set(left.column_names) - set(left_keys)) & (set(right.column_names) -
                                                           set(right_keys))
    if overlap and not (left_suffix or right_suffix):
        raise ValueError(f"join: both sides have non-key column(s) {sorted(overlap)}; pass "
                         "left_suffix= and/or right_suffix= to tell them apart")
    out = left.join(right, keys=list(left_keys), right_keys=list(right_keys),
                    join_type=join_type, left_suffix=left_suffix, right_suffix=right_suffix,
                    use_threads=False)
    return _finish(out, start)


def _empty_keys(other: B.Block, other_keys: tuple[str, ...],
                keys: tuple[str, ...]) -> B.Block:
    return pa.table({k: pa.array([], type=other.schema.field(ok).type)
                     for k, ok in zip(keys, other_keys)})


def join_fn(op: Any) -> Callable[[list[list[RefBundle]], Any], list[RefBundle]]:
    def bulk(inputs: list[list[RefBundle]], ctx: Any) -> list[RefBundle]:
        left, right = _blocks(inputs[0]), _blocks(inputs[1])
        if not left and not right:
            return []
        n = op.num_partitions or max(len(left), len(right), 1)
        mapper = remote_fn(_hash_partition, num_returns=n)
        left_parts = [_as_list(mapper.remote(ref, op.left_keys, n), n) for ref, _ in left]
        right_parts = [_as_list(mapper.remote(ref, op.right_keys, n), n) for ref, _ in right]
        if not left_parts or not right_parts:
            # One side is empty (no blocks): use an empty table with no schema.
            empty = [ember.put(pa.table({}))] * n
            left_parts = left_parts or [empty]
            right_parts = right_parts or [empty]
        reducer = remote_fn(_join_partition, num_returns=2)
        reduced = [reducer.remote(op.join_type, op.left_keys, op.right_keys, op.left_suffix,
                                  op.right_suffix, len(left_parts),
                                  *[p[j] for p in left_parts], *[p[j] for p in right_parts])
                   for j in range(n)]
        return _bundles(reduced, ctx)
    return bulk

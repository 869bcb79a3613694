"""All-to-all operations: repartition, random shuffle, sort, group-by aggregation.

Each ``*_fn`` returns a bulk function ``(bundles, ctx) -> bundles`` that the executor
calls once every input block exists. They are map/reduce exchanges over Ember tasks:
map tasks split each block into one part per output partition (``num_returns=n``),
reduce tasks combine part j of every map output. Block values never pass through the
driver; only metadata and key samples do.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import ember

from . import block as B
from .bundle import RefBundle
from .executor import remote_fn

__all__ = ["aggregate_fn", "convert_refs", "randomize_blocks_fn", "repartition_fn",
           "shuffle_fn", "sort_fn"]

Bulk = Callable[[list[RefBundle], Any], list[RefBundle]]


def _blocks(bundles: list[RefBundle]) -> list[tuple[Any, Any]]:
    return [pair for bundle in bundles for pair in bundle.blocks]


def _as_list(refs: Any, n: int) -> list[Any]:
    return [refs] if n == 1 else list(refs)


def _bundles(pairs: list[tuple[Any, Any]], ctx: Any) -> list[RefBundle]:
    """Refs of (block, meta) pairs from reduce tasks -> bundles (waits for metadata)."""
    metas = ember.get([m for _, m in pairs])
    out = []
    for i, ((block_ref, _), meta) in enumerate(zip(pairs, metas)):
        ctx.stats.num_tasks += 1
        exec_stats = meta.exec_stats or {}
        ctx.stats.task_wall_s += exec_stats.get("wall_s", 0.0)
        out.append(RefBundle([(block_ref, meta)], (i,)))
    return out


def _finish(block: B.Block, start: float) -> tuple[B.Block, Any]:
    import time
    block = B.compact(block)
    return block, B.metadata_for(block, exec_stats={"wall_s": time.perf_counter() - start})


def _now() -> float:
    import time
    return time.perf_counter()


# -- repartition (no shuffle): contiguous row ranges -------------------------------------------
def _assemble(spec: list[tuple[int, int, int]], *blocks: B.Block) -> tuple[B.Block, Any]:
    start = _now()
    parts = [B.slice_block(blocks[i], s, e) for i, s, e in spec]
    out = B.concat(parts) if parts else pa.table({})
    if out.num_rows == 0 and parts:
        out = parts[0].schema.empty_table()
    return _finish(out, start)


def plan_ranges(rows: Sequence[int], bounds: Sequence[int]) -> list[list[tuple[int, int, int]]]:
    """For each output range [bounds[j], bounds[j+1]): the (block, start, end) slices.

    >>> plan_ranges([3, 3], [0, 2, 6])
    [[(0, 0, 2)], [(0, 2, 3), (1, 0, 3)]]
    """
    out: list[list[tuple[int, int, int]]] = []
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        spec = []
        for i, n in enumerate(rows):
            s, e = max(lo, offsets[i]), min(hi, offsets[i] + n)
            if s < e:
                spec.append((i, int(s - offsets[i]), int(e - offsets[i])))
        out.append(spec)
    return out


def assemble_ranges(pairs: list[tuple[Any, Any]], bounds: Sequence[int],
                    ctx: Any = None) -> list[RefBundle]:
    """Bundles holding rows [bounds[j], bounds[j+1]) of the concatenated blocks."""
    rows = [meta.num_rows or 0 for _, meta in pairs]
    task = remote_fn(_assemble, num_returns=2)
    results = []
    for spec in plan_ranges(rows, bounds):
        used = sorted({i for i, _, _ in spec})
        if len(spec) == 1 and spec[0][1] == 0 and spec[0][2] == rows[spec[0][0]]:
            results.append(("whole", pairs[spec[0][0]]))  # a whole block: no task needed
            continue
        if not spec and pairs:
            spec, used = [(0, 0, 0)], [0]
        local = {i: k for k, i in enumerate(used)}
        refs = [pairs[i][0] for i in used]
        if not refs:
            results.append(("whole", (ember.put(pa.table({})), B.metadata_for(pa.table({})))))
            continue
        results.append(("task", task.remote([(local[i], s, e) for i, s, e in spec], *refs)))
    metas = ember.get([r[1][1] for r in results if r[0] == "task"])
    it = iter(metas)
    out = []
    for i, (kind, value) in enumerate(results):
        if kind == "whole":
            out.append(RefBundle([value], (i,)))
        else:
            meta = next(it)
            if ctx is not None:
                ctx.stats.num_tasks += 1
            out.append(RefBundle([(value[0], meta)], (i,)))
    return out


def repartition_fn(num_blocks: int) -> Bulk:
    def bulk(bundles: list[RefBundle], ctx: Any) -> list[RefBundle]:
        pairs = _blocks(bundles)
        total = sum(m.num_rows or 0 for _, m in pairs)
        bounds = np.linspace(0, total, num_blocks + 1).astype(int).tolist()
        return assemble_ranges(pairs, bounds, ctx)
    return bulk


# -- random shuffle ----------------------------------------------------------------------------
def _rng(seed: int | None, *salt: int) -> np.random.Generator:
    return np.random.default_rng(None if seed is None else [seed, *salt])


# Parts a shuffle map task writes below this size cost more in per-object work (a store
# file, a seal and a free, a reducer argument) than in bytes: 32 blocks of 3 MiB each cut
# into 32 parts made 1024 objects of ~100 KiB, and the exchange ran at half Ray's speed.
MIN_PART_BYTES = 1 << 20
# ... but one map task never reads more than this (its inputs and parts are in memory).
MAX_MAP_INPUT_BYTES = 512 << 20


def plan_map_groups(sizes: Sequence[int], num_outputs: int, min_tasks: int,
                    min_part_bytes: int = MIN_PART_BYTES,
                    max_input_bytes: int = MAX_MAP_INPUT_BYTES) -> list[list[int]]:
    """Input block indices for each shuffle map task (contiguous runs).

    As few map tasks as keep each of their ``num_outputs`` parts >= ``min_part_bytes``,
    but at least ``min_tasks`` (parallelism), at most one per block, and none reading
    more than ``max_input_bytes``.

    >>> plan_map_groups([3 << 20] * 32, 32, min_tasks=4)
    [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15], [16, 17, 18, 19, 20, 21, 22, 23], [24, 25, 26, 27, 28, 29, 30, 31]]
    >>> len(plan_map_groups([32 << 20] * 32, 32, min_tasks=4))
    32
    """
    m = len(sizes)
    if m == 0:
        return []
    total = sum(max(0, s) for s in sizes)
    tasks = total // max(1, num_outputs * min_part_bytes)
    tasks = max(tasks, min_tasks, -(-total // max(1, max_input_bytes)))
    tasks = max(1, min(m, tasks))
    bounds = np.linspace(0, m, tasks + 1).astype(int)
    return [list(range(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:])]


# Map-side parts of at most this many bytes go to their reducers as Arrow IPC streams.
# A sort of 19M rows into 200 x 200 parts of ~14 KB spent 125 us a part on a compact
# copy and a pickle (the pickler walks ~40 objects per table); the IPC writer writes a
# slice's own rows in 11 us and reads back in 9. Larger parts stay tables: pickled
# out of band, they reach shared memory with one copy and are read without one, while
# IPC bytes are copied into the pickle and out of it again. Below core's inline limit
# (100 KiB) a part is copied through the driver either way.
_PACK_MAX = 64 << 10


def _pack(part: B.Block) -> Any:
    """A map task's part as it travels to its reducer (see _PACK_MAX; _unpack reverses)."""
    if part.nbytes > _PACK_MAX or any(isinstance(f.type, pa.ExtensionType)
                                      for f in part.schema):
        return B.compact(part)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, part.schema) as writer:
        writer.write_table(part)
    return sink.getvalue().to_pybytes()


def _unpack(parts: tuple[Any, ...]) -> list[B.Block]:
    return [pa.ipc.open_stream(p).read_all() if isinstance(p, bytes) else p for p in parts]


def _shuffle_map(seed: int | None, idx: int, n: int, *blocks: B.Block) -> Any:
    """Send each row of ``blocks`` to a uniformly random one of ``n`` parts.

    One gather per part with ascending source indices (a stable sort of the part ids),
    so each part is a fresh compact table: no full-block permutation, no slice copies.
    The reducer permutes the rows it receives.
    """
    block = B.concat(list(blocks)) if len(blocks) != 1 else blocks[0]
    if block.num_rows == 0:
        empty = block if block.num_columns else pa.table({})
        return empty if n == 1 else tuple([empty] * n)
    if n == 1:
        return _pack(block)
    part_of = _rng(seed, 0, idx).integers(0, n, block.num_rows,
                                          dtype=np.int16 if n < (1 << 15) else np.int32)
    order = np.argsort(part_of, kind="stable")
    ends = np.cumsum(np.bincount(part_of, minlength=n))
    starts = ends - np.bincount(part_of, minlength=n)
    # Take on a chunked column gathers through every chunk per call: n takes over a run of
    # g blocks cost ~4x one combine (a memcpy of the run) followed by n contiguous takes.
    block = block.combine_chunks()
    scattered = _scattered_parts(block, order, starts, ends)
    if scattered is not None:
        return tuple(_pack(part) for part in scattered)
    indices = pa.array(order, type=pa.int64())
    return tuple(_pack(block.take(indices.slice(int(a), int(b - a))))
                 for a, b in zip(starts, ends))


def _scattered_parts(block: B.Block, order: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray) -> list[B.Block] | None:
    """The parts ``block.take(order[a:b])`` for each (a, b), made by one scatter per
    column into a new array grouped by part (a part is then a view of its range), when
    every column is numeric without nulls; else None.

    A part's take reads one row in ~n across the whole block, so with more parts than
    rows per cache line each line is fetched once per part: 160 takes over a 6.4M-row
    block (4 numeric columns) took 219 ms. The scatter reads every column once in order
    and writes n sequential streams: 140 ms with the inverse permutation it needs.
    """
    columns = []
    for column in block.columns:
        if column.null_count or column.num_chunks != 1 or not (
                pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return None
        columns.append(column.chunk(0).to_numpy(zero_copy_only=True))
    dest = np.empty(len(order), dtype=np.int64)
    dest[order] = np.arange(len(order), dtype=np.int64)
    grouped = []
    for values in columns:
        out = np.empty_like(values)
        out[dest] = values
        grouped.append(out)
    return [pa.Table.from_arrays([pa.array(g[int(a):int(b)]) for g in grouped],
                                 schema=block.schema)
            for a, b in zip(starts, ends)]


def _shuffle_reduce(seed: int | None, idx: int, *packed: Any) -> tuple[B.Block, Any]:
    start = _now()
    parts = _unpack(packed)
    block = B.concat(parts)
    if block.num_rows == 0 and parts:
        block = parts[0].schema.empty_table()
    perm = _rng(seed, 1, idx).permutation(block.num_rows)
    return _finish(block.take(pa.array(perm, type=pa.int64())), start)


def shuffle_fn(seed: int | None, num_blocks: int | None) -> Bulk:
    def bulk(bundles: list[RefBundle], ctx: Any) -> list[RefBundle]:
        pairs = [p for p in _blocks(bundles)]
        if not pairs:
            return []
        n = num_blocks or len(pairs)
        cpus = int(ember.cluster_resources().get("CPU", 1))
        groups = plan_map_groups([m.size_bytes or 0 for _, m in pairs], n,
                                 min_tasks=2 * max(1, cpus))
        mapper = remote_fn(_shuffle_map, num_returns=n)
        parts = [_as_list(mapper.remote(seed, i, n, *[pairs[k][0] for k in group]), n)
                 for i, group in enumerate(groups)]
        reducer = remote_fn(_shuffle_reduce, num_returns=2)
        reduced = [reducer.remote(seed, j, *[p[j] for p in parts]) for j in range(n)]
        return _bundles(reduced, ctx)
    return bulk


def randomize_blocks_fn(seed: int | None) -> Bulk:
    def bulk(bundles: list[RefBundle], ctx: Any) -> list[RefBundle]:
        pairs = _blocks(bundles)
        random.Random(seed).shuffle(pairs)
        return [RefBundle([p], (i,)) for i, p in enumerate(pairs)]
    return bulk


# -- sort and range partitioning ---------------------------------------------------------------
def _order(keys: list[str], desc: list[bool]) -> list[tuple[str, str]]:
    return [(k, "descending" if d else "ascending") for k, d in zip(keys, desc)]


def _sample(block: B.Block, keys: list[str], k: int, seed: int) -> B.Block:
    missing = [c for c in keys if c not in block.column_names]
    if missing and block.num_rows:
        raise KeyError(f"no column(s) {missing} to sort/group by; the dataset has "
                       f"{block.column_names}")
    if block.num_rows == 0:
        return block.select([c for c in keys if c in block.column_names])
    idx = np.random.default_rng(seed).choice(block.num_rows, size=min(k, block.num_rows),
                                             replace=False)
    return block.select(keys).take(pa.array(np.sort(idx), type=pa.int64()))


def _sort_partition(block: B.Block, keys: list[str], desc: list[bool],
                    boundaries: B.Block | None, n: int) -> Any:
    """Sort the block and cut it into ``n`` ranges at ``boundaries`` (n - 1 key rows)."""
    if block.num_rows == 0:
        parts = [block] * n
        return parts[0] if n == 1 else tuple(parts)
    order = _order(keys, desc)
    block = block.take(pc.sort_indices(block, sort_keys=order))
    if boundaries is None or n == 1:
        if n == 1:
            return _pack(block)
        return tuple([_pack(block)] + [block.slice(0, 0)] * (n - 1))
    key_schema = block.select(keys).schema
    bounds = boundaries.select(keys).cast(key_schema)
    inner = _searched_cuts(block, bounds, keys, desc)
    if inner is None:
        inner = _sorted_cuts(block, bounds, keys, order)
    cuts = [0] + inner + [block.num_rows]
    return tuple(_pack(block.slice(cuts[j], cuts[j + 1] - cuts[j])) for j in range(n))


def _sorted_cuts(block: B.Block, bounds: B.Block, keys: list[str],
                 order: list[tuple[str, str]]) -> list[int]:
    """Where each boundary falls in the sorted ``block``, any keys: sort boundaries and
    rows together, a boundary before the rows equal to it (the rows from there on are
    the next range's)."""
    nb = bounds.num_rows
    marker = pa.array(np.concatenate([np.zeros(nb, np.int8), np.ones(block.num_rows, np.int8)]))
    combined = pa.concat_tables([bounds, block.select(keys)]).append_column("__marker", marker)
    sorted_idx = pc.sort_indices(combined, sort_keys=order + [("__marker", "ascending")]).to_numpy()
    positions = np.nonzero(sorted_idx < nb)[0]           # boundary j sits at positions[j]
    return [int(p - j) for j, p in enumerate(positions)]


def _searched_cuts(block: B.Block, bounds: B.Block, keys: list[str],
                   desc: list[bool]) -> list[int] | None:
    """_sorted_cuts by binary search, for the common case of one numeric key without
    nulls or NaNs (None otherwise): the second sort cost ~3 ms of a 20 ms map task
    (96k rows cut in 200); the search 0.05 ms."""
    if len(keys) != 1:
        return None
    col, bcol = block.column(keys[0]), bounds.column(keys[0])
    kind = col.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) \
            or col.null_count or bcol.null_count:
        return None
    values, edges = col.to_numpy(), bcol.to_numpy()
    if pa.types.is_floating(kind) and (np.isnan(values).any() or np.isnan(edges).any()):
        return None
    if desc[0]:     # rows above each boundary come before it
        cuts = len(values) - np.searchsorted(values[::-1], edges, side="right")
    else:           # rows below it
        cuts = np.searchsorted(values, edges, side="left")
    return [int(c) for c in cuts]


def _merge_sorted(keys: list[str], desc: list[bool], *packed: Any) -> tuple[B.Block, Any]:
    start = _now()
    parts = _unpack(packed)
    block = B.concat([p for p in parts if p.num_rows]) if any(p.num_rows for p in parts) \
        else (parts[0] if parts else pa.table({}))
    if block.num_rows:
        block = block.take(pc.sort_indices(block, sort_keys=_order(keys, desc)))
    return _finish(block, start)


def _boundaries(pairs: list[tuple[Any, Any]], keys: list[str], desc: list[bool],
                n: int) -> B.Block | None:
    """n - 1 key rows splitting a sample of the data into n equal ranges."""
    if n <= 1:
        return None
    sampler = remote_fn(_sample)
    total = sum(m.num_rows or 0 for _, m in pairs) or 1
    samples = ember.get([sampler.remote(ref, keys, max(10, 100 * n * (m.num_rows or 0) // total),
                                        i) for i, (ref, m) in enumerate(pairs)])
    samples = [s for s in samples if s.num_rows]
    if not samples:
        return None
    sample = B.concat(samples)
    sample = sample.take(pc.sort_indices(sample, sort_keys=_order(keys, desc)))
    idx = [min(sample.num_rows - 1, (sample.num_rows * j) // n) for j in range(1, n)]
    return sample.take(pa.array(idx, type=pa.int64()))


def range_partition(pairs: list[tuple[Any, Any]], keys: list[str], desc: list[bool],
                    reduce_fn: Any, reduce_args: tuple[Any, ...], ctx: Any) -> list[RefBundle]:
    """Sort-partition blocks by key into ranges; ``reduce_fn(*reduce_args, *parts)`` each."""
    if not pairs:
        return []
    total = sum(m.num_rows or 0 for _, m in pairs)
    n = max(1, min(len(pairs), total))
    bounds = _boundaries(pairs, keys, desc, n)
    if bounds is None:
        n = 1
    bounds_ref = ember.put(bounds) if bounds is not None else None
    mapper = remote_fn(_sort_partition, num_returns=n)
    parts = [_as_list(mapper.remote(ref, keys, desc, bounds_ref, n), n) for ref, _ in pairs]
    reducer = remote_fn(reduce_fn, num_returns=2)
    reduced = [reducer.remote(*reduce_args, *[p[j] for p in parts]) for j in range(n)]
    return _bundles(reduced, ctx)


def sort_fn(keys: list[str], desc: list[bool]) -> Bulk:
    def bulk(bundles: list[RefBundle], ctx: Any) -> list[RefBundle]:
        return range_partition(_blocks(bundles), keys, desc, _merge_sorted, (keys, desc), ctx)
    return bulk


# -- aggregation -------------------------------------------------------------------------------
def _install_context(context: Any) -> None:
    if context is not None:
        from ..context import DataContext
        DataContext._set_current(context)


def _partial_aggregate(context: Any, aggs: list[Any], block: B.Block) -> list[Any]:
    _install_context(context)
    if block.num_rows:
        for agg in aggs:
            agg._check_columns(block.column_names)
    return [agg.accumulate_block(agg.init(None), block) if block.num_rows else agg.init(None)
            for agg in aggs]


def _group_starts(block: B.Block, keys: list[str]) -> np.ndarray:
    """Row indices where a new group starts in a block sorted by ``keys``."""
    n = block.num_rows
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for key in keys:
        col = block.column(key)
        a, b = col.slice(1), col.slice(0, n - 1)
        differs = pc.fill_null(pc.not_equal(a, b), True).to_numpy(zero_copy_only=False)
        both_null = np.logical_and(pc.is_null(a).to_numpy(zero_copy_only=False),
                                   pc.is_null(b).to_numpy(zero_copy_only=False))
        change |= np.logical_and(differs, ~both_null)
    return np.concatenate([[0], np.nonzero(change)[0] + 1]).astype(int)


def aggregate_block(block: B.Block, keys: list[str], aggs: list[Any]) -> B.Block:
    """One row per group of ``keys`` (sorted), one column per aggregation."""
    for agg in aggs:
        agg._check_columns(block.column_names)
    specs = [agg._arrow_spec() for agg in aggs]
    if block.num_rows and all(s is not None for s in specs):
        grouped = block.group_by(keys, use_threads=False).aggregate(
            [(s[0], s[1], s[2]) if s[2] is not None else (s[0], s[1])
             for s in specs if s is not None])
        # Older pyarrow puts the aggregates first, newer the keys first.
        first = len(keys) if grouped.column_names[:len(keys)] == keys else 0
        columns = {k: grouped.column(k) for k in keys}
        for i, agg in enumerate(aggs):
            columns[agg.name] = grouped.column(first + i)
        out = pa.table(columns)
        return out.take(pc.sort_indices(out, sort_keys=_order(keys, [False] * len(keys))))
    block = block.take(pc.sort_indices(block, sort_keys=_order(keys, [False] * len(keys))))
    starts = _group_starts(block, keys) if block.num_rows else np.array([], dtype=int)
    ends = list(starts[1:]) + [block.num_rows]
    key_rows: dict[str, list[Any]] = {k: [] for k in keys}
    results: dict[str, list[Any]] = {agg.name: [] for agg in aggs}
    for s, e in zip(starts, ends):
        group = block.slice(int(s), int(e - s))
        key_value = tuple(group.column(k)[0].as_py() for k in keys)
        for k, v in zip(keys, key_value):
            key_rows[k].append(v)
        for agg in aggs:
            init_key = key_value[0] if len(keys) == 1 else key_value
            acc = agg.accumulate_block(agg.init(init_key), group)
            results[agg.name].append(agg.finalize(acc))
    out_columns: dict[str, Any] = {k: pa.array(v, type=block.schema.field(k).type)
                                   for k, v in key_rows.items()}
    for name, values in results.items():
        out_columns[name] = B.to_arrow_column(values)
    return pa.table(out_columns)


def _aggregate_partition(context: Any, keys: list[str], aggs: list[Any],
                         *packed: Any) -> tuple[B.Block, Any]:
    _install_context(context)
    start = _now()
    nonempty = [p for p in _unpack(packed) if p.num_rows]
    if not nonempty:
        return _finish(pa.table({}), start)
    return _finish(aggregate_block(B.concat(nonempty), keys, aggs), start)


def aggregate_fn(keys: list[str] | None, aggs: list[Any]) -> Bulk:
    def bulk(bundles: list[RefBundle], ctx: Any) -> list[RefBundle]:
        pairs = _blocks(bundles)
        if keys is None:
            partial = remote_fn(_partial_aggregate)
            accs_per_block = ember.get([partial.remote(ctx.context_ref, aggs, ref)
                                        for ref, _ in pairs])
            row = {}
            for i, agg in enumerate(aggs):
                acc = agg.init(None)
                for accs in accs_per_block:
                    acc = agg.merge(acc, accs[i])
                row[agg.name] = agg.finalize(acc)
            block = B.block_from_rows([row])
            return [RefBundle([(ember.put(block), B.metadata_for(block))])]
        return range_partition(pairs, keys, [False] * len(keys), _aggregate_partition,
                               (ctx.context_ref, keys, aggs), ctx)
    return bulk


# -- conversions -------------------------------------------------------------------------------
def _convert(block: B.Block, fmt: str, column: str | None) -> Any:
    from .batch import block_to_batch
    batch = block_to_batch(block, fmt)
    return batch[column] if column is not None else batch


def convert_refs(refs: list[Any], fmt: str, column: str | None) -> list[Any]:
    """Refs to each block converted to ``fmt`` ("pandas", "numpy"), one task per block."""
    task = remote_fn(_convert)
    return [task.remote(ref, fmt, column) for ref in refs]

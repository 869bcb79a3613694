"""Creating datasets: ``range``, ``from_*`` and ``read_datasource`` (file formats build on it)."""
from __future__ import annotations

import builtins
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

import ember

from ..context import DataContext
from ..datasource.datasource import Datasource
from ..dataset import Dataset, MaterializedDataset
from . import block as B
from .bundle import RefBundle
from .executor import remote_fn
from .logical import InputData, Read
from .planner import autodetect_parallelism
from .range_source import RangeDatasource
from .session import current_session, ensure_initialized

__all__ = ["from_arrow", "from_arrow_refs", "from_items", "from_numpy", "from_numpy_refs",
           "from_pandas", "from_pandas_refs", "range", "range_tensor", "read_datasource"]


def read_datasource(datasource: Datasource, *, parallelism: int = -1,
                    ray_remote_args: dict[str, Any] | None = None,
                    concurrency: int | None = None,
                    override_num_blocks: int | None = None, **_ignored: Any) -> Dataset:
    """A dataset read from a custom ``Datasource`` (lazily: nothing is read yet).

    ``override_num_blocks`` (or the older ``parallelism``) sets how many read tasks to
    ask the datasource for; by default enough to keep the cluster's CPUs busy.
    ``concurrency`` caps how many read tasks run at once.

    >>> ds = ember.data.read_datasource(MySource(), override_num_blocks=8)
    """
    if not isinstance(datasource, Datasource):
        raise TypeError(f"read_datasource expects a Datasource, got {type(datasource).__name__}")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    n = override_num_blocks if override_num_blocks is not None else parallelism
    op = Read(datasource=datasource, parallelism=n if n is not None else -1,
              ray_remote_args=dict(ray_remote_args or {}), concurrency=concurrency)
    return Dataset(op, current_session())


def range(n: int, *, parallelism: int = -1, override_num_blocks: int | None = None,
          concurrency: int | None = None) -> Dataset:
    """Rows ``{"id": i}`` for i in [0, n).

    >>> ember.data.range(5).take_all()
    [{'id': 0}, {'id': 1}, {'id': 2}, {'id': 3}, {'id': 4}]
    """
    return read_datasource(RangeDatasource(n), parallelism=parallelism,
                           override_num_blocks=override_num_blocks, concurrency=concurrency)


def range_tensor(n: int, *, shape: tuple[int, ...] = (1,), parallelism: int = -1,
                 override_num_blocks: int | None = None,
                 concurrency: int | None = None) -> Dataset:
    """Rows ``{"data": np.full(shape, i)}`` for i in [0, n).

    >>> ember.data.range_tensor(2, shape=(2, 2)).take(1)[0]["data"]
    array([[0, 0],
           [0, 0]])
    """
    return read_datasource(RangeDatasource(n, tuple(shape)), parallelism=parallelism,
                           override_num_blocks=override_num_blocks, concurrency=concurrency)


def _from_blocks(blocks: Sequence[B.Block], label: str) -> MaterializedDataset:
    ensure_initialized()
    blocks = [B.compact(block) for block in blocks]  # a slice would pickle its parent
    bundles = tuple(RefBundle([(ember.put(block), B.metadata_for(block))], (i,))
                    for i, block in enumerate(blocks))
    return MaterializedDataset(InputData(bundles=bundles, label=label), current_session())


def from_items(items: Sequence[Any], *, parallelism: int = -1,
               override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset of the given rows: dicts become rows, anything else ``{"item": x}``.

    >>> ember.data.from_items([{"a": 1}, {"a": 2}]).sum("a")
    3
    """
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        items = list(items)
    ensure_initialized()
    cpus = ember.cluster_resources().get("CPU", 1)
    n = override_num_blocks if override_num_blocks is not None else parallelism
    if n is None or n <= 0:
        n = autodetect_parallelism(-1, 64 * len(items), cpus=cpus, ctx=DataContext.get_current())
    n = max(1, min(n, len(items)))
    bounds = np.linspace(0, len(items), n + 1).astype(int)
    blocks = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        chunk = items[start:end]
        rows = [x if isinstance(x, dict) else {"item": x} for x in chunk]
        blocks.append(B.block_from_rows(rows))
    return _from_blocks(blocks, "FromItems")


def from_pandas(dfs: Any, *, override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset with one block per DataFrame (a single DataFrame is fine).

    >>> ember.data.from_pandas(pd.DataFrame({"a": [1, 2]})).count()
    2
    """
    import pandas as pd
    frames = [dfs] if isinstance(dfs, pd.DataFrame) else list(dfs)
    for df in frames:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_pandas expects DataFrames, got {type(df).__name__}")
    blocks = [B.to_block(df) for df in frames]
    if override_num_blocks is not None:
        blocks = _resplit(blocks, override_num_blocks)
    return _from_blocks(blocks, "FromPandas")


def from_arrow(tables: Any, *, override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset with one block per Arrow table.

    >>> ember.data.from_arrow(pa.table({"a": [1, 2]})).count()
    2
    """
    import pyarrow as pa
    tables = [tables] if isinstance(tables, (pa.Table, pa.RecordBatch)) else list(tables)
    blocks = [B.to_block(t) for t in tables]
    if override_num_blocks is not None:
        blocks = _resplit(blocks, override_num_blocks)
    return _from_blocks(blocks, "FromArrow")


def from_numpy(ndarrays: Any) -> MaterializedDataset:
    """A dataset with column ``data`` (N-d arrays give tensor rows), one block per array.

    >>> ember.data.from_numpy(np.zeros((4, 2))).take(1)
    [{'data': array([0., 0.])}]
    """
    arrays = [ndarrays] if isinstance(ndarrays, np.ndarray) else list(ndarrays)
    blocks = [B.block_from_columns({"data": np.asarray(a)}) for a in arrays]
    return _from_blocks(blocks, "FromNumpy")


def _resplit(blocks: list[B.Block], n: int) -> list[B.Block]:
    whole = B.concat(blocks)
    bounds = np.linspace(0, whole.num_rows, max(1, n) + 1).astype(int)
    return [B.slice_block(whole, int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:])]


def _convert_task(value: Any) -> tuple[B.Block, Any]:
    if isinstance(value, np.ndarray):
        block = B.block_from_columns({"data": value})
    else:
        block = B.to_block(value)
    return block, B.metadata_for(block)


def _convert_unless_arrow(value: Any) -> tuple[B.Block | None, Any, bool]:
    # An Arrow table already is a block: report its metadata and keep the caller's ref
    # (no copy, and the block stays on the node that made it, for locality).
    if isinstance(value, pa.Table):
        return None, B.metadata_for(value), False
    return (*_convert_task(value), True)


def _from_refs(refs: Any, label: str) -> MaterializedDataset:
    ensure_initialized()
    refs = [refs] if isinstance(refs, ember.ObjectRef) else list(refs)
    for ref in refs:
        if not isinstance(ref, ember.ObjectRef):
            raise TypeError(f"{label} expects ObjectRefs, got {type(ref).__name__}")
    convert = remote_fn(_convert_unless_arrow, num_returns=3)
    # Inspect each object where it lives: elsewhere it would be copied to the task's
    # node, and the dataset's blocks would no longer be only where the caller made them.
    from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from .locality import block_nodes
    triples = []
    for ref, nodes in zip(refs, block_nodes(refs)):
        task = convert
        if nodes:
            task = convert.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                sorted(nodes)[0], soft=True))
        triples.append(task.remote(ref))
    metas = ember.get([m for _, m, _ in triples])
    converted = ember.get([c for _, _, c in triples])
    bundles = tuple(RefBundle([(block if new else ref, meta)], (i,))
                    for i, (ref, (block, _, _), meta, new)
                    in enumerate(zip(refs, triples, metas, converted)))
    return MaterializedDataset(InputData(bundles=bundles, label=label), current_session())


def from_pandas_refs(dfs: Any) -> MaterializedDataset:
    """A dataset from refs to DataFrames (converted to Arrow blocks in tasks)."""
    return _from_refs(dfs, "FromPandasRefs")


def from_arrow_refs(tables: Any) -> MaterializedDataset:
    """A dataset from refs to Arrow tables."""
    return _from_refs(tables, "FromArrowRefs")


def from_numpy_refs(ndarrays: Any) -> MaterializedDataset:
    """A dataset from refs to NumPy arrays (column ``data``)."""
    return _from_refs(ndarrays, "FromNumpyRefs")


# ``range`` shadows the builtin in this module; keep a handle for internal use.
_builtin_range = builtins.range

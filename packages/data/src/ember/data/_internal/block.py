"""Blocks: the unit of data. A block is a ``pyarrow.Table``; these are its helpers.

Pandas DataFrames and dicts of columns are accepted at the edges (``to_block``) and
turned into Arrow at once, so everything inside the executor sees one type.

N-dimensional NumPy columns (images, tensors) are stored as Arrow's fixed-shape tensor
extension type, and come back as N-d arrays in batches and rows.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence, TypeAlias

import numpy as np
import pyarrow as pa

from ..datasource.datasource import BlockMetadata

# A block is a pyarrow.Table; typed as Any because pyarrow ships no type information.
Block: TypeAlias = Any

__all__ = ["Block", "column_to_numpy", "concat", "empty_block", "metadata_for", "num_rows",
           "rebatch_blocks", "rows_of", "size_bytes", "slice_block", "to_arrow_column", "to_block",
           "block_from_columns", "block_from_rows", "take_indices", "unify_schemas"]


def to_block(data: Any) -> Block:
    """Turn an Arrow table, pandas DataFrame or mapping of columns into a block.

    >>> to_block({"x": np.arange(3)}).num_rows
    3
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    import pandas as pd  # only when pandas data actually shows up

    if isinstance(data, pd.DataFrame):
        return _from_pandas(data)
    if isinstance(data, Mapping):
        return block_from_columns(data)
    raise TypeError(f"expected a pyarrow.Table, pandas.DataFrame or dict of columns, "
                    f"got {type(data).__name__}")


def _from_pandas(df: Any) -> Block:
    columns: dict[str, Any] = {}
    for name in df.columns:
        series = df[name]
        if series.dtype == object and len(series) and isinstance(series.iloc[0], np.ndarray):
            columns[str(name)] = list(series)  # tensors: Arrow cannot infer them from pandas
        else:
            columns[str(name)] = series
    if any(isinstance(v, list) for v in columns.values()):
        return block_from_columns({k: (v if isinstance(v, list) else v.to_numpy())
                                   for k, v in columns.items()})
    return pa.Table.from_pandas(df, preserve_index=False)


def to_arrow_column(values: Any) -> pa.Array | pa.ChunkedArray:
    """One column of any supported kind -> an Arrow array (N-d arrays become tensors)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, np.ndarray):
        if values.ndim > 1:
            return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
        if values.dtype == object:
            return to_arrow_column(list(values))
        if values.dtype.kind in "iuf" and values.dtype.isnative:
            # Numbers: wrap the array's memory (copied only if strided). pa.array would
            # import pandas (its shim checks for pandas types) and is slower per call.
            values = np.ascontiguousarray(values)
            return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                         [None, pa.py_buffer(values)])
        return pa.array(values)
    if hasattr(values, "to_numpy") and not isinstance(values, (list, tuple)):
        return to_arrow_column(values.to_numpy())  # pandas Series
    values = list(values)
    if values and all(isinstance(v, np.ndarray) for v in values):
        shapes = {v.shape for v in values}
        if len(shapes) == 1 and values[0].ndim >= 1:
            return to_arrow_column(np.stack(values))
        return pa.array([v.tolist() for v in values])
    if values and any(isinstance(v, np.generic) for v in values):
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return pa.array(values)


def block_from_columns(columns: Mapping[str, Any]) -> Block:
    """Build a block from ``{name: column}``; all columns must have the same length.

    >>> block_from_columns({"a": [1, 2], "b": np.zeros((2, 3))}).num_rows
    2
    """
    arrays = {}
    length = None
    for name, values in columns.items():
        if np.isscalar(values) or values is None:
            raise TypeError(f"column {name!r} is a scalar ({values!r}); expected a sequence "
                            "of values, one per row")
        array = to_arrow_column(values)
        if length is not None and len(array) != length:
            raise ValueError(f"columns have different lengths: {name!r} has {len(array)} "
                             f"rows, others have {length}")
        length = len(array)
        arrays[str(name)] = array
    if not arrays:
        return pa.table({})
    # from_arrays, not pa.table(dict): the latter asks pyarrow's pandas shim whether
    # the dict is a DataFrame, which imports pandas (~0.25 s) in every process.
    return pa.Table.from_arrays(list(arrays.values()), names=list(arrays))


def block_from_rows(rows: Sequence[Mapping[str, Any]]) -> Block:
    """Build a block from a list of row dicts (the keys of the first row, in order)."""
    if not rows:
        return pa.table({})
    names: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            raise TypeError(f"expected each row to be a dict, got {type(row).__name__}: {row!r}")
        for key in row:
            names.setdefault(key, None)
    return block_from_columns({k: [row.get(k) for row in rows] for k in names})


def num_rows(block: Block) -> int:
    return block.num_rows


def size_bytes(block: Block) -> int:
    """Bytes the block's buffers take (a slice counts only its share)."""
    return int(block.nbytes)


def compact(block: Block) -> Block:
    """The block with buffers holding only its own rows (a copy if it is a slice).

    Pickling a slice of an Arrow table writes the whole parent buffers, so a block that
    leaves a task as a slice would carry every row of the table it was cut from (a
    shuffle's 64 parts of a block would each be the whole block). Every block a task
    returns goes through here first; the copy is a memcpy of the rows kept.

    >>> compact(big_table.slice(0, 10)).get_total_buffer_size() < 1000
    True
    """
    if block.num_columns == 0:
        return block
    if block.get_total_buffer_size() <= block.nbytes + 4096 + block.nbytes // 8:
        return block
    columns = [pa.concat_arrays(col.chunks) if col.num_chunks else col
               for col in block.columns]
    return pa.Table.from_arrays(columns, schema=block.schema)


def slice_block(block: Block, start: int, end: int) -> Block:
    """Rows [start, end) without copying."""
    return block.slice(start, max(0, end - start))


def take_indices(block: Block, indices: Any) -> Block:
    return block.take(pa.array(indices, type=pa.int64()))


def empty_block(schema: pa.Schema | None = None) -> Block:
    return schema.empty_table() if schema is not None else pa.table({})


def unify_schemas(schemas: Iterable[pa.Schema]) -> pa.Schema | None:
    """One schema for blocks that may differ in null types / column order."""
    real = [s for s in schemas if s is not None and len(s.names)]
    if not real:
        return None
    try:
        return pa.unify_schemas(real, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return real[0]


def concat(blocks: Sequence[Block]) -> Block:
    """Concatenate blocks, promoting types where they differ (int + null, ...)."""
    blocks = [b for b in blocks if b.num_columns or b.num_rows]
    if not blocks:
        return pa.table({})
    if len(blocks) == 1:
        return blocks[0]
    try:
        return pa.concat_tables(blocks, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"cannot combine blocks with different schemas: {e}. "
                         f"First: {blocks[0].schema}; other: "
                         f"{next(b.schema for b in blocks if b.schema != blocks[0].schema)}"
                         ) from e


def rebatch_blocks(blocks: Iterable[Block], batch_size: int | None, *,
                   drop_last: bool = False) -> Iterator[Block]:
    """Cut a stream of blocks into blocks of exactly ``batch_size`` rows.

    The last block may be short (dropped with ``drop_last``); ``None`` passes non-empty
    blocks through whole.
    """
    if batch_size is None:
        for block in blocks:
            if block.num_rows:
                yield block
        return
    pending: list[Block] = []
    rows = 0
    for block in blocks:
        start = 0
        while start < block.num_rows:
            take = min(batch_size - rows, block.num_rows - start)
            pending.append(slice_block(block, start, start + take))
            rows += take
            start += take
            if rows == batch_size:
                yield concat(pending)
                pending, rows = [], 0
    if rows and not drop_last:
        yield concat(pending)


# Arrow type ids of the integer and floating point types (fixed width, NumPy layout).
_NUMERIC = frozenset(t.id for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
                                     pa.uint16(), pa.uint32(), pa.uint64(), pa.float16(),
                                     pa.float32(), pa.float64()))


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as NumPy: tensors N-d, strings/lists as object arrays."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.type.id in _NUMERIC and column.null_count == 0:
        # Numbers without nulls: a read-only view of Arrow's memory, as to_numpy()
        # gives, without to_numpy's pandas import (~0.25 s in every process).
        dtype = np.dtype(column.type.to_pandas_dtype())
        data = column.buffers()[1]
        if data is None or len(column) == 0:
            return np.empty(0, dtype=dtype)
        out = np.frombuffer(data, dtype=dtype, count=len(column),
                            offset=column.offset * dtype.itemsize)
        out.flags.writeable = False
        return out
    if isinstance(column.type, pa.FixedShapeTensorType):
        if len(column) == 0:
            return np.empty((0, *column.type.shape),
                            dtype=column.type.value_type.to_pandas_dtype())
        return column.to_numpy_ndarray()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or \
            pa.types.is_fixed_size_list(column.type):
        values = column.to_pylist()
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = np.asarray(v) if v is not None else None
        return out
    return column.to_numpy(zero_copy_only=False)


def rows_of(block: Block) -> Iterator[dict[str, Any]]:
    """The block's rows as dicts (tensor cells as NumPy arrays)."""
    tensor_cols = [i for i, f in enumerate(block.schema)
                   if isinstance(f.type, pa.FixedShapeTensorType)]
    if not tensor_cols:
        yield from block.to_pylist()
        return
    names = block.column_names
    columns: list[Any] = []
    for i in range(len(names)):
        if i in tensor_cols:
            columns.append(column_to_numpy(block.column(i)))
        else:
            columns.append(block.column(i).to_pylist())
    for r in range(block.num_rows):
        yield {name: columns[i][r] for i, name in enumerate(names)}


def metadata_for(block: Block, input_files: list[str] | None = None,
                 exec_stats: Any = None) -> BlockMetadata:
    return BlockMetadata(num_rows=block.num_rows, size_bytes=size_bytes(block),
                         input_files=list(input_files or []), schema=block.schema,
                         exec_stats=exec_stats)

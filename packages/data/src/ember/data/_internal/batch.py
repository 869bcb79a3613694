"""Batch formats: how a block is handed to a UDF and how its return value is read back.

``"default"`` and ``"numpy"`` are ``dict[str, np.ndarray]``, ``"pandas"`` a DataFrame,
``"pyarrow"`` the Arrow table itself (Ray Data's formats).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .block import Block, block_from_columns, column_to_numpy, to_block

BATCH_FORMATS = ("default", "numpy", "pandas", "pyarrow")

__all__ = ["BATCH_FORMATS", "block_to_batch", "batch_to_block", "check_batch_format"]


def check_batch_format(batch_format: str | None) -> str:
    fmt = "default" if batch_format is None else batch_format
    if fmt not in BATCH_FORMATS:
        raise ValueError(f"batch_format must be one of {', '.join(map(repr, BATCH_FORMATS))} "
                         f"(or None), got {batch_format!r}")
    return fmt


def block_to_batch(block: Block, batch_format: str) -> Any:
    """A block in the given batch format.

    >>> block_to_batch(pa.table({"x": [1, 2]}), "numpy")["x"]
    array([1, 2])
    """
    if batch_format in ("default", "numpy"):
        return {name: column_to_numpy(block.column(name)) for name in block.column_names}
    if batch_format == "pandas":
        return _to_pandas(block)
    if batch_format == "pyarrow":
        return block
    raise ValueError(f"unknown batch_format {batch_format!r}")


def _to_pandas(block: Block) -> Any:
    import pandas as pd

    tensor = [f.name for f in block.schema if isinstance(f.type, pa.FixedShapeTensorType)]
    if not tensor:
        return block.to_pandas()
    plain = block.drop_columns(tensor)
    df = plain.to_pandas() if plain.num_columns else pd.DataFrame(index=range(block.num_rows))
    for name in tensor:
        arr = column_to_numpy(block.column(name))
        df[name] = pd.Series(list(arr), dtype=object)
    return df[block.column_names]


def batch_to_block(batch: Any, *, what: str = "map_batches") -> Block:
    """Read a UDF's batch back into a block, or explain what was expected."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, Mapping):
        for name, col in batch.items():
            if not isinstance(col, (np.ndarray, list, pa.Array, pa.ChunkedArray)) and \
                    not hasattr(col, "to_numpy"):
                raise ValueError(
                    f"{what} UDF returned a dict whose column {name!r} is a "
                    f"{type(col).__name__}; each value must be a numpy array or list "
                    "with one entry per row")
        return block_from_columns(batch)
    import pandas as pd

    if isinstance(batch, pd.DataFrame):
        return to_block(batch)
    raise ValueError(
        f"{what} UDF returned a value of type {type(batch).__name__}; it must return a "
        "pyarrow.Table, a pandas.DataFrame or a dict of str -> numpy.ndarray")

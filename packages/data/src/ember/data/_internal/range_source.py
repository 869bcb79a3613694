"""``range`` and ``range_tensor`` as a Datasource (so limits push into them)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..datasource.datasource import BlockMetadata, Datasource, ReadTask
from .block import block_from_columns

__all__ = ["RangeDatasource"]


class RangeDatasource(Datasource):
    """Rows 0..n-1 as column ``id``, or as ``data`` tensors of ``tensor_shape`` filled with i."""

    def __init__(self, n: int, tensor_shape: tuple[int, ...] | None = None,
                 column: str | None = None) -> None:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"range: n must be an int >= 0, got {n!r}")
        self._n = int(n)
        self._shape = tensor_shape
        self._column = column or ("id" if tensor_shape is None else "data")

    def _row_bytes(self) -> int:
        return 8 * (int(np.prod(self._shape)) if self._shape is not None else 1)

    def estimate_inmemory_data_size(self) -> int:
        return self._n * self._row_bytes()

    def get_name(self) -> str:
        return "ReadRange" if self._shape is None else "ReadRangeTensor"

    def supports_limit_pushdown(self) -> bool:
        return True

    def apply_limit(self, limit: int) -> "RangeDatasource":
        return RangeDatasource(min(self._n, limit), self._shape, self._column)

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        n = self._n
        parallelism = max(1, min(parallelism, n)) if n else 1
        tasks = []
        bounds = np.linspace(0, n, parallelism + 1).astype(np.int64)
        shape, column = self._shape, self._column
        schema = (pa.schema([(column, pa.int64())]) if shape is None else None)
        for start, end in zip(bounds[:-1], bounds[1:]):
            if end <= start and n:
                continue
            rows = int(end - start)

            def read(start: int = int(start), end: int = int(end)) -> list[Any]:
                ids = np.arange(start, end, dtype=np.int64)
                if shape is None:
                    return [pa.table({column: ids})]
                data = np.broadcast_to(ids.reshape((-1,) + (1,) * len(shape)),
                                       (end - start,) + tuple(shape))
                return [block_from_columns({column: np.ascontiguousarray(data)})]

            tasks.append(ReadTask(read, BlockMetadata(num_rows=rows,
                                                      size_bytes=rows * self._row_bytes(),
                                                      input_files=[], schema=schema)))
        return tasks

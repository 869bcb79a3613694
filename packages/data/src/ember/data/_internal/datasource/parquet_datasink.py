"""Write a dataset as Parquet files, optionally hive-partitioned by some columns.

>>> ds.write_parquet("/out/trips", compression="zstd",               # doctest: +SKIP
...                  partition_cols=["year"])  # /out/trips/year=2024/<uuid>_000000_000000.parquet
"""
from __future__ import annotations

import os
import urllib.parse
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...datasource import TaskContext
from .file_datasink import FileDatasink, args_with_fn
from .partitioning import HIVE_NULL

__all__ = ["ParquetDatasink"]


class ParquetDatasink(FileDatasink):
    """One Parquet file per write task (per task and partition with ``partition_cols``).

    ``arrow_parquet_args`` go to ``pyarrow.parquet.ParquetWriter`` (``compression``,
    ``use_dictionary``, ``version``...), except ``row_group_size``, which goes to
    ``write_table``. ``arrow_parquet_args_fn`` returns more of them, in the worker.
    """

    _FILE_EXTENSION = "parquet"
    _FORMAT = "Parquet"

    def __init__(self, path: str | os.PathLike[str], *,
                 partition_cols: Sequence[str] | None = None,
                 arrow_parquet_args_fn: Callable[[], dict[str, Any]] | None = None,
                 filesystem: Any = None, try_create_dir: bool = True,
                 arrow_open_stream_args: dict[str, Any] | None = None,
                 filename_provider: Any = None, dataset_uuid: str | None = None,
                 mode: Any = "append", min_rows_per_file: int | None = None,
                 **arrow_parquet_args: Any) -> None:
        super().__init__(path, filesystem=filesystem, try_create_dir=try_create_dir,
                         arrow_open_stream_args=arrow_open_stream_args,
                         filename_provider=filename_provider, dataset_uuid=dataset_uuid,
                         mode=mode, min_rows_per_file=min_rows_per_file)
        if isinstance(partition_cols, str):
            partition_cols = [partition_cols]
        self._partition_cols = list(partition_cols or [])
        self._args_fn = arrow_parquet_args_fn
        self._args = dict(arrow_parquet_args)
        _check_writer_args(self._args)

    def _write_files(self, table: pa.Table, ctx: TaskContext) -> list[str]:
        if not self._partition_cols:
            return super()._write_files(table, ctx)
        missing = [c for c in self._partition_cols if c not in table.column_names]
        if missing:
            raise ValueError(f"partition_cols {missing} are not columns of the dataset "
                             f"(columns: {table.column_names})")
        if len(self._partition_cols) == table.num_columns:
            raise ValueError("partition_cols cannot be every column: no data would be left "
                             "to write in the files")
        keys = table.select(self._partition_cols).group_by(self._partition_cols,
                                                          use_threads=False).aggregate([])
        paths = []
        for key in keys.to_pylist():
            mask = None
            for name, value in key.items():
                term = pc.is_null(table[name]) if value is None else \
                    pc.equal(table[name], pa.scalar(value, table.schema.field(name).type))
                mask = term if mask is None else pc.and_(mask, term)
            part = table.filter(mask).drop_columns(self._partition_cols)
            directory = "/".join([self._path] + [
                f"{urllib.parse.quote(name, safe='')}="
                f"{HIVE_NULL if value is None else urllib.parse.quote(str(value), safe='')}"
                for name, value in key.items()])
            paths.append(self._write_file(part, directory, ctx))
        return paths

    def _write_table(self, table: pa.Table, f: pa.NativeFile) -> None:
        args = args_with_fn(self._args, self._args_fn)
        row_group_size = args.pop("row_group_size", None)
        with pq.ParquetWriter(f, table.schema, **args) as writer:
            writer.write_table(table, row_group_size=row_group_size)


def _check_writer_args(args: dict[str, Any]) -> None:
    """Reject misspelled writer options in the driver, not in every write task."""
    options = {k: v for k, v in args.items() if k != "row_group_size"}
    try:
        pq.ParquetWriter(pa.BufferOutputStream(), pa.schema([("x", pa.int64())]),
                         **options).close()
    except TypeError as e:
        raise TypeError(f"write_parquet got an option pyarrow.parquet.ParquetWriter does "
                        f"not take: {e}") from e
    except Exception:  # noqa: BLE001 - other problems show up, with context, when writing
        pass

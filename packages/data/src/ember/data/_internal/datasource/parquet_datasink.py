"""Write a dataset as Parquet files, optionally hive-partitioned by some columns.

A write task's blocks stream into its file, a row group at a time, so a task's memory
does not grow with the rows it writes. Blocks are held until they make a row group:
``row_group_size`` rows when it is given (the row groups are then exactly those of the
task's rows written as one table); otherwise 1Mi rows (pyarrow's default) or 8 MiB,
whichever comes first.

>>> ds.write_parquet("/out/trips", compression="zstd",               # doctest: +SKIP
...                  partition_cols=["year"])  # /out/trips/year=2024/<uuid>_000000_000000.parquet
"""
from __future__ import annotations

import os
import urllib.parse
from typing import Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...datasource import TaskContext
from .. import block as B
from .file_datasink import FileDatasink, args_with_fn, concat_task_tables
from .partitioning import HIVE_NULL

__all__ = ["ParquetDatasink"]

# pyarrow.parquet's row group size when none is given (rows), and, then, the bytes of
# blocks after which those held are written as a row group anyway. 8 MiB: a fused
# read -> map -> write task reads blocks of 16 MiB (planner.WRITE_READ_BLOCK_BYTES),
# and holding two of its outputs made memory grow with the rows per task (tree PSS
# +17% for 4x the data in workload 5 of tools/bench/data.py, against +2%).
DEFAULT_ROW_GROUP_ROWS = 1024 * 1024
DEFAULT_ROW_GROUP_BYTES = 8 * 1024 * 1024


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

    def write(self, blocks: Iterable[Any], ctx: TaskContext) -> dict[str, Any]:
        """Write one task's blocks to one file (per partition with ``partition_cols``).

        Without partition columns or a filename provider (which names the file after
        the task's whole table) the blocks stream into the file; see the module doc.
        """
        if self._skip_write or self._partition_cols or self._filename_provider is not None:
            return super().write(blocks, ctx)
        return self._write_streaming(iter(blocks), ctx)

    def _write_streaming(self, blocks: Iterator[Any], ctx: TaskContext) -> dict[str, Any]:
        args = args_with_fn(self._args, self._args_fn)
        row_group_size = args.pop("row_group_size", None)
        out = _RowGroupWriter(lambda: self._open_file(self._path, ctx), args,
                              row_group_size or DEFAULT_ROW_GROUP_ROWS,
                              None if row_group_size else DEFAULT_ROW_GROUP_BYTES)
        try:
            # The blocks are pulled outside _RowGroupWriter's error wrapping: an error
            # of the stages before the write is the user's own, and stays as it is.
            for raw in blocks:
                block = B.to_block(raw)
                if block.num_rows and not out.add(block):
                    # The file's columns cannot hold this block's (a column that was all
                    # nulls now has values): write the task again as one table.
                    path, held = out.abandon()
                    return self._rewrite_as_one(path, held + [block], blocks, ctx)
            out.finish()
        finally:
            out.close()
        if not out.rows:
            return {"num_rows": 0, "paths": []}  # no rows, no file (as Ray)
        return {"num_rows": out.rows, "paths": [out.path]}

    def _rewrite_as_one(self, path: str, held: list[pa.Table], rest: Iterator[Any],
                        ctx: TaskContext) -> dict[str, Any]:
        """The concatenating write, for a task whose blocks' types changed mid-file:
        the rows already in ``path`` (if any) are read back, and the file is written
        again."""
        if not path:
            return super().write([*held, *rest], ctx)
        with self._filesystem.open_input_stream(
                path, compression=self._open_args.get("compression")) as f:
            done = pq.read_table(pa.BufferReader(f.read()))
        self._filesystem.delete_file(path)
        return super().write([done, *held, *rest], ctx)

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


class _RowGroupWriter:
    """One task's Parquet file, written a row group at a time as blocks arrive.

    Blocks are held until they make ``group_rows`` rows or ``group_bytes`` (None: no
    limit); the file is opened, with the schema of what is held then, at the first write.
    """

    def __init__(self, open_file: Callable[[], tuple[str, pa.NativeFile]],
                 args: dict[str, Any], group_rows: int, group_bytes: int | None) -> None:
        self._open = open_file
        self._args = args
        self._group_rows = group_rows
        self._group_bytes = group_bytes
        self._held: list[pa.Table] = []
        self._held_rows = self._held_bytes = 0
        self._file: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self.path = ""
        self.rows = 0  # written so far

    def add(self, block: pa.Table) -> bool:
        """Take a non-empty block; False (taking nothing) when the open file's schema
        cannot hold it."""
        if self._writer is not None and block.schema != self._writer.schema:
            fitted = _fit(block, self._writer.schema)
            if fitted is None:
                return False
            block = fitted
        self._held.append(block)
        self._held_rows += block.num_rows
        self._held_bytes += B.size_bytes(block)
        if self._held_rows >= self._group_rows or (
                self._group_bytes is not None and self._held_bytes >= self._group_bytes):
            self._flush(everything=False)
        return True

    def finish(self) -> None:
        """Write what is held."""
        if self._held:
            self._flush(everything=True)

    def abandon(self) -> tuple[str, list[pa.Table]]:
        """Close the file as it is: (its path, "" if none was opened; blocks held)."""
        self.close()
        held, self._held = self._held, []
        return self.path, held

    def close(self) -> None:
        writer, f = self._writer, self._file
        self._writer = self._file = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if f is not None:
                f.close()

    def _flush(self, everything: bool) -> None:
        table = concat_task_tables(self._held)
        assert table is not None
        group = self._group_rows
        cut = table.num_rows if everything else table.num_rows // group * group
        if not cut:  # at the byte limit: what is held becomes one short row group
            cut = table.num_rows
        try:
            if self._writer is None:
                self.path, self._file = self._open()
                self._writer = pq.ParquetWriter(self._file, table.schema, **self._args)
            self._writer.write_table(table.slice(0, cut), row_group_size=group)
        except (ValueError, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise ValueError(f"Failed to write {self.path!r} as Parquet: {e}") from e
        self.rows += cut
        rest = table.slice(cut)
        self._held = [rest] if rest.num_rows else []
        self._held_rows = rest.num_rows
        self._held_bytes = B.size_bytes(rest) if rest.num_rows else 0


def _fit(block: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``block`` cast to the schema of a file being written, when concatenating the two
    would give that schema (same columns, each type the same or promotable into the
    file's: all-null, narrower ints); None when the file's schema would have to change."""
    if block.schema.names != schema.names:
        return None
    try:
        unified = pa.unify_schemas([schema, block.schema], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if not unified.equals(schema):
        return None
    try:
        return block.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


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

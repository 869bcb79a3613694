"""``FileDatasink``: the common base of the file writers (Parquet, CSV, JSON).

Each write task writes its blocks to one new file in the target directory, named
``{dataset_uuid}_{task_idx:06d}_000000.{ext}``: the uuid is fresh for every write, so
writing twice into one directory adds files instead of overwriting (``mode`` changes
that, as Ray's ``SaveMode``). ``on_write_start`` creates the directory in the driver.

>>> sink = CSVDatasink("/out/trips")                     # doctest: +SKIP
>>> ds.write_datasink(sink)                               # doctest: +SKIP
>>> sink.write_result["num_rows"], len(sink.write_result["paths"])  # doctest: +SKIP
(1000, 4)
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable, ClassVar, Iterable, Sequence

import pyarrow as pa
import pyarrow.fs as pafs

from ...datasource import Datasink, TaskContext
from ..block import to_block
from .file_utils import resolve_paths_and_filesystem

__all__ = ["FileDatasink", "SAVE_MODES", "SINK_ARGS", "concat_task_tables"]

SAVE_MODES = ("append", "overwrite", "ignore", "error")
# FileDatasink's own keyword arguments; formats pass the others to their writer.
SINK_ARGS = ("filesystem", "try_create_dir", "arrow_open_stream_args", "filename_provider",
             "dataset_uuid", "mode", "min_rows_per_file")


def _save_mode(mode: Any) -> str:
    value = getattr(mode, "value", mode)  # Ray's SaveMode enum, or its string value
    if not isinstance(value, str) or value.lower() not in SAVE_MODES:
        raise ValueError(f"mode must be one of {list(SAVE_MODES)}, got {mode!r}")
    return value.lower()


class FileDatasink(Datasink):
    """Writes one file per write task into the directory ``path``.

    Args (Ray's names): ``filesystem`` (pyarrow or fsspec; default from the path),
    ``try_create_dir``, ``arrow_open_stream_args`` (for ``open_output_stream``: e.g.
    ``{"compression": "gzip"}``), ``filename_provider`` (an object with
    ``get_filename_for_block(block, task_index, block_index)``), ``dataset_uuid`` (the
    file name prefix), ``mode`` ("append", "overwrite": empty the directory first,
    "ignore": write nothing if it exists, "error": fail if it exists) and
    ``min_rows_per_file`` (a hint to the executor, see ``min_rows_per_write``).
    """

    _FILE_EXTENSION: ClassVar[str] = "bin"
    _FORMAT: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str], *, filesystem: Any = None,
                 try_create_dir: bool = True,
                 arrow_open_stream_args: dict[str, Any] | None = None,
                 filename_provider: Any = None, dataset_uuid: str | None = None,
                 mode: Any = "append", min_rows_per_file: int | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be one directory path, got {type(path).__name__}")
        self._filesystem, [self._path] = resolve_paths_and_filesystem(path, filesystem)
        self._path = self._path.rstrip("/") or "/"
        self._try_create_dir = try_create_dir
        self._open_args = dict(arrow_open_stream_args or {})
        if filename_provider is not None and \
                not callable(getattr(filename_provider, "get_filename_for_block", None)):
            raise TypeError("filename_provider must have a "
                            "get_filename_for_block(block, task_index, block_index) method")
        self._filename_provider = filename_provider
        self._dataset_uuid = dataset_uuid or uuid.uuid4().hex
        self._mode = _save_mode(mode)
        self._min_rows_per_file = min_rows_per_file
        self._skip_write = False
        self.write_result: dict[str, Any] | None = None

    # ---- to be implemented by each format ----------------------------------------

    def _write_table(self, table: pa.Table, f: pa.NativeFile) -> None:
        """Write ``table`` (every row of one write task) to the open file ``f``."""
        raise NotImplementedError

    # ---- Datasink API ----------------------------------------------------------------

    @property
    def path(self) -> str:
        """The directory written to (inside ``filesystem``)."""
        return self._path

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._filesystem

    @property
    def min_rows_per_write(self) -> int | None:
        """Ray's hint: the executor should give each write task at least this many rows."""
        return self._min_rows_per_file

    def on_write_start(self) -> None:
        info = self._filesystem.get_file_info(self._path)
        if info.type == pafs.FileType.File:
            raise NotADirectoryError(f"{self._path!r} is a file; write_{self._FORMAT.lower()} "
                                     f"writes a directory of files, so pass a directory path")
        exists = info.type == pafs.FileType.Directory
        if exists and self._mode == "error":
            raise FileExistsError(f"{self._path!r} already exists (mode='error')")
        if exists and self._mode == "ignore":
            # The write tasks get this datasink as it is after on_write_start.
            self._skip_write = True
            return
        if exists and self._mode == "overwrite":
            self._filesystem.delete_dir_contents(self._path)
        if self._try_create_dir:
            self._filesystem.create_dir(self._path, recursive=True)

    def write(self, blocks: Iterable[Any], ctx: TaskContext) -> dict[str, Any]:
        """Write one task's blocks to one file; returns ``{"num_rows", "paths"}``."""
        if self._skip_write:
            return {"num_rows": 0, "paths": []}
        tables: list[pa.Table] = [to_block(b) for b in blocks]
        table = concat_task_tables([t for t in tables if t.num_rows > 0])
        if table is None:
            return {"num_rows": 0, "paths": []}  # no rows, no file (as Ray)
        paths = self._write_files(table, ctx)
        return {"num_rows": table.num_rows, "paths": paths}

    def on_write_complete(self, write_results: list[Any]) -> dict[str, Any]:
        results = [r for r in write_results if isinstance(r, dict)]
        self.write_result = {
            "num_rows": sum(r.get("num_rows", 0) for r in results),
            "paths": [p for r in results for p in r.get("paths", [])],
        }
        return self.write_result

    def get_name(self) -> str:
        return f"Write{self._FORMAT}"

    # ---- helpers -------------------------------------------------------------------------

    def _write_files(self, table: pa.Table, ctx: TaskContext) -> list[str]:
        return [self._write_file(table, self._path, ctx)]

    def _filename(self, table: pa.Table | None, ctx: TaskContext) -> str:
        if self._filename_provider is not None:
            return str(self._filename_provider.get_filename_for_block(table, ctx.task_idx, 0))
        return f"{self._dataset_uuid}_{ctx.task_idx:06d}_000000.{self._FILE_EXTENSION}"

    def _write_file(self, table: pa.Table, directory: str, ctx: TaskContext) -> str:
        path = directory
        try:
            path, f = self._open_file(directory, ctx, table)
            with f:
                self._write_table(table, f)
        except (ValueError, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise ValueError(f"Failed to write {path!r} as {self._FORMAT}: {e}") from e
        return path

    def _open_file(self, directory: str, ctx: TaskContext, table: pa.Table | None = None
                   ) -> tuple[str, pa.NativeFile]:
        """(path, output stream) of the task's new file in ``directory``; ``table`` is
        what the filename provider is shown (None only without one)."""
        path = f"{directory.rstrip('/')}/{self._filename(table, ctx)}"
        if self._try_create_dir:
            # Partition subdirectories are made here, in the worker; local filesystems
            # do not create parents when a file is opened.
            self._filesystem.create_dir(directory, recursive=True)
        return path, self._filesystem.open_output_stream(path, **self._open_args)


def concat_task_tables(tables: Sequence[pa.Table]) -> pa.Table | None:
    """The rows of one write task as one table; types are promoted where blocks differ
    (a column that is all nulls in one block, int and float...), as Ray concatenates a
    task's blocks before writing its file."""
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"the blocks of one write task have incompatible schemas: {e}. "
                         f"First: {tables[0].schema}") from e


def args_with_fn(args: dict[str, Any], args_fn: Callable[[], dict[str, Any]] | None
                 ) -> dict[str, Any]:
    """Ray's ``*_args_fn``: a function called in the worker (for arguments that cannot
    be pickled) whose result extends the static arguments."""
    if args_fn is None:
        return dict(args)
    return {**args, **args_fn()}

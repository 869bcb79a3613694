"""``FileBasedDatasource``: the common base of the whole-file readers (CSV, JSON, NumPy,
text, binary).

Paths are expanded in the driver when the datasource is made; ``get_read_tasks`` cuts
the file list into contiguous groups of about equal bytes, one read task each. A read
task opens its files one after the other and yields the tables the subclass's
``_read_stream`` makes, adding partition columns (from the path) and the ``path``
column when asked.

A subclass only says how to turn one open file into tables:

>>> class LineCount(FileBasedDatasource):
...     _FORMAT = "line count"
...     def _read_stream(self, f, path):
...         yield pa.table({"lines": [f.readall().count(b"\\n")]})
>>> ds = ember.data.read_datasource(LineCount("/logs/"))  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import copy
import functools
import threading
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.fs as pafs

from ...datasource import BlockMetadata, Datasource, ReadTask
from .file_utils import (FileInfo, PathsArg, ShuffleArg, check_compatible, expand_paths,
                         normalize_shuffle, resolve_paths_and_filesystem, shuffle_files,
                         split_balanced, wrap_read_error)
from .partitioning import Partitioning, add_partition_columns, normalize_partitioning

__all__ = ["FileBasedDatasource", "PATH_COLUMN", "block_bytes", "coalesce_batches",
           "read_block_limit", "target_block_size"]

# Column that include_paths=True adds (Ray's name).
PATH_COLUMN = "path"
# file_extensions not given: the format's own default (None, an explicit choice, reads all).
DEFAULT: Any = object()


def target_block_size() -> int:
    """``DataContext.target_max_block_size`` of this process (read in the driver)."""
    from ...context import DataContext

    return int(DataContext.get_current().target_max_block_size)


_read_hint = threading.local()


@contextlib.contextmanager
def read_block_limit(limit: int | None) -> Iterator[None]:
    """While open, reads that start in this thread yield blocks of at most about
    ``limit`` bytes, where that is below their target block size (None: no limit).

    A fused read -> ... -> write task reads under it: its blocks never leave the task,
    so blocks as large as the target would only add to its memory, in proportion to
    the rows each task reads.

    >>> with read_block_limit(16 << 20):
    ...     tables = list(read_task())   # doctest: +SKIP
    """
    previous = getattr(_read_hint, "limit", None)
    _read_hint.limit = limit
    try:
        yield
    finally:
        _read_hint.limit = previous


def block_bytes(target: int) -> int:
    """The block size a read starting now aims at: ``target``, or the smaller limit of
    an open ``read_block_limit``."""
    limit = getattr(_read_hint, "limit", None)
    return target if limit is None else max(1, min(target, limit))


def checked_arrow_args(args: dict[str, Any] | None, allowed: Sequence[str], *,
                       reader: str, fmt: str) -> dict[str, Any]:
    """A copy of ``args`` (pyarrow reader options), rejecting keys not in ``allowed``."""
    checked = dict(args or {})
    unknown = sorted(set(checked) - set(allowed))
    if unknown:
        raise TypeError(f"{reader} got unexpected arguments {unknown}; pyarrow {fmt} "
                        f"options go in {list(allowed)}")
    return checked


def coalesce_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                     target_bytes: int) -> Iterator[pa.Table]:
    """Group a stream of record batches into tables of about ``target_bytes`` each.

    Readers produce small batches (about 1 MiB for CSV); blocks that small would make
    the executor's per-block overhead dominate, so they are merged up to the target.
    """
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        size += batch.nbytes
        if size >= target_bytes:
            yield pa.Table.from_batches(pending, schema=schema)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema=schema)


class FileBasedDatasource(Datasource):
    """Reads a list of files; subclasses implement ``_read_stream(f, path)``.

    Args (Ray's names): ``paths``, ``filesystem`` (pyarrow or fsspec),
    ``arrow_open_stream_args`` (for ``FileSystem.open_input_stream``; compression is
    detected from the extension by default), ``partitioning`` (path-encoded columns),
    ``partition_filter`` (``list[path] -> list[path]``), ``ignore_missing_paths``,
    ``shuffle`` ("files" or ``FileShuffleConfig``), ``include_paths`` (adds a
    ``path`` column) and ``file_extensions`` (default: the format's ``_FILE_EXTENSIONS``;
    None reads every file).
    """

    # Shown in error messages ("Failed to read 'x' as CSV: ...").
    _FORMAT: ClassVar[str] = "file"
    # Default for file_extensions when the caller passes none (Ray: per format).
    _FILE_EXTENSIONS: ClassVar[list[str] | None] = None
    # Bytes in memory per byte on disk, for estimate_inmemory_data_size: parsed text
    # (numbers become fixed-width, strings get offsets) is usually larger than the file.
    _ENCODING_RATIO: ClassVar[float] = 1.0

    def __init__(self, paths: PathsArg, *, filesystem: Any = None,
                 arrow_open_stream_args: dict[str, Any] | None = None,
                 partitioning: Any = None,
                 partition_filter: Callable[[list[str]], list[str]] | None = None,
                 ignore_missing_paths: bool = False, shuffle: ShuffleArg = None,
                 include_paths: bool = False,
                 file_extensions: Sequence[str] | None | Any = DEFAULT) -> None:
        if file_extensions is DEFAULT:
            file_extensions = self._FILE_EXTENSIONS
        self._filesystem, resolved = resolve_paths_and_filesystem(paths, filesystem)
        self._files: list[FileInfo] = expand_paths(
            resolved, self._filesystem, file_extensions=file_extensions,
            ignore_missing_paths=ignore_missing_paths, partition_filter=partition_filter)
        self._open_args = dict(arrow_open_stream_args or {})
        self._partitioning: Partitioning | None = normalize_partitioning(partitioning)
        self._shuffle = normalize_shuffle(shuffle)
        self._include_paths = include_paths
        self._limit: int | None = None
        self._target_block_size = target_block_size()

    # ---- to be implemented by each format ----------------------------------------

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        """Yield the tables in one open file."""
        raise NotImplementedError

    def _read_file(self, f: pa.NativeFile, info: FileInfo) -> Iterator[pa.Table]:
        """Like ``_read_stream``, for formats that also want the file's size."""
        return self._read_stream(f, info.path)

    # ---- Datasource API --------------------------------------------------------------

    @property
    def files(self) -> list[str]:
        """The files this datasource reads, in order."""
        return [f.path for f in self._files]

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._filesystem

    def estimate_inmemory_data_size(self) -> int | None:
        if any(f.size is None for f in self._files):
            return None
        return int(sum(f.size or 0 for f in self._files) * self._ENCODING_RATIO)

    def supports_limit_pushdown(self) -> bool:
        return True

    def apply_limit(self, limit: int) -> "FileBasedDatasource":
        # Row counts are unknown before reading, so every task still runs, but each
        # stops once it has produced `limit` rows instead of reading all of its files.
        out = copy.copy(self)
        out._limit = limit if self._limit is None else min(limit, self._limit)
        return out

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        files = shuffle_files(self._files, self._shuffle)
        if not files:
            return []
        groups = split_balanced([float(f.size or 0) for f in files], max(1, parallelism))
        # The read function carries a copy without the full file list: each task
        # pickles only its own files, not all N of them (N tasks x N paths).
        reader = copy.copy(self)
        reader._files = []
        tasks = []
        for group in groups:
            chunk = [files[i] for i in group]
            sizes = [f.size for f in chunk]
            size = None if any(s is None for s in sizes) else \
                int(sum(s or 0 for s in sizes) * self._ENCODING_RATIO)
            metadata = BlockMetadata(num_rows=None, size_bytes=size,
                                     input_files=[f.path for f in chunk], schema=None)
            tasks.append(ReadTask(functools.partial(_read_files, reader, chunk), metadata))
        return tasks

    # ---- helpers for subclasses --------------------------------------------------------

    def _open(self, path: str) -> pa.NativeFile:
        return self._filesystem.open_input_stream(path, **self._open_args)

    def _partition_values(self, path: str) -> dict[str, pa.Scalar]:
        if self._partitioning is None:
            return {}
        parsed = self._partitioning.parse(path)
        return {k: self._partitioning.scalar(k, v) for k, v in parsed.items()}

    def _finish(self, table: pa.Table, path: str,
                partition_values: dict[str, pa.Scalar]) -> pa.Table:
        table = add_partition_columns(table, partition_values)
        if self._include_paths:
            if PATH_COLUMN in table.column_names:
                table = table.drop_columns([PATH_COLUMN])
            table = table.append_column(pa.field(PATH_COLUMN, pa.string()),
                                        pa.repeat(pa.scalar(path), table.num_rows))
        return table


def _read_files(reader: FileBasedDatasource, files: list[FileInfo]) -> Iterator[pa.Table]:
    """The body of one read task: every table in ``files``, in order."""
    remaining = reader._limit
    first: tuple[str, pa.Schema] | None = None  # to name both files in a type conflict
    for info in files:
        if remaining is not None and remaining <= 0:
            return
        partition_values = reader._partition_values(info.path)
        try:
            with reader._open(info.path) as f:
                for table in reader._read_file(f, info):
                    if table.num_rows == 0:
                        continue
                    if first is None:
                        first = (info.path, table.schema)
                    elif first[0] != info.path:
                        check_compatible(*first, info.path, table.schema)
                    if remaining is not None:
                        table = table.slice(0, remaining)
                        remaining -= table.num_rows
                    yield reader._finish(table, info.path, partition_values)
                    if remaining is not None and remaining <= 0:
                        return
        except Exception as e:  # noqa: BLE001 - re-raised, with the path when it lacks one
            wrapped = wrap_read_error(info.path, reader._FORMAT, e)
            if wrapped is e:
                raise
            raise wrapped from e

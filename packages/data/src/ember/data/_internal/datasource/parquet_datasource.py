"""Parquet files, split by row group, with column projection, filters and hive partitions.

The driver reads every file's footer (in a thread pool: it is one small ranged read
per file) when the datasource is made. That gives the schema, so files that disagree
on a column's type fail at once with both names; the row counts; and each row group's
uncompressed size per column, so ``get_read_tasks(n)`` can cut the row groups of all
files into ``n`` read tasks of about equal bytes: a single large file is read by many
tasks, many small files are grouped into a few.

>>> import pyarrow.compute as pc
>>> src = ParquetDatasource("/data/trips/", columns=["fare", "year"],
...                         filter=pc.field("fare") > 10)
>>> [t.metadata.num_rows for t in src.get_read_tasks(4)]   # doctest: +SKIP
[None, None, None, None]        # unknown until read: the filter drops rows
"""
from __future__ import annotations

import copy
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ...datasource import BlockMetadata, Datasource, ReadTask
from .file_based_datasource import (PATH_COLUMN, block_bytes, coalesce_batches,
                                    target_block_size)
from .file_utils import (FileInfo, PathsArg, ShuffleArg, expand_paths, normalize_shuffle,
                         resolve_paths_and_filesystem, shuffle_files, split_balanced,
                         unify_file_schemas, wrap_read_error)
from .partitioning import Partitioning, normalize_partitioning

if TYPE_CHECKING:
    import pyarrow.compute as pc

# pyarrow.compute and pyarrow.dataset load where a filter, partition columns or
# scanner options need them: pyarrow.dataset imports pandas, and a read worker
# paid ~0.24 s of start-up for it (_read_pieces reads plain files without it).

__all__ = ["PARQUET_FILE_EXTENSIONS", "ParquetDatasource", "SCANNER_ARGS"]

PARQUET_FILE_EXTENSIONS = ["parquet"]

# Options of pyarrow.dataset.Scanner.from_fragment that read_parquet passes through.
SCANNER_ARGS = ("batch_size", "batch_readahead", "fragment_readahead",
                "fragment_scan_options", "use_threads", "cache_metadata")

# Footers are read with this many threads (I/O bound: mostly waiting on storage).
_METADATA_THREADS = 16


class _RowGroup(NamedTuple):
    file: int                    # index into the datasource's files
    row_group: int               # row group number inside the file
    num_rows: int
    column_bytes: dict[str, int]  # uncompressed bytes per top-level column


@dataclass
class _ScanSpec:
    """What every read task of one datasource shares (pickled into each task)."""

    filesystem: pafs.FileSystem
    dataset_schema: pa.Schema
    scan_columns: list[str]
    output_schema: pa.Schema
    filter: pc.Expression | None
    scanner_args: dict[str, Any]
    include_paths: bool
    limit: int | None
    target_block_size: int


class ParquetDatasource(Datasource):
    """Reads Parquet files; see ``ember.data.read_parquet`` for the arguments.

    Partition columns (``partitioning``, hive by default: ``year=2024/`` directories)
    are strings unless ``Partitioning(field_types=...)`` says otherwise, and can be
    projected and filtered like file columns. A column stored in the files wins over a
    partition field of the same name.
    """

    def __init__(self, paths: PathsArg, *, filesystem: Any = None,
                 columns: Sequence[str] | None = None, filter: pc.Expression | None = None,
                 schema: pa.Schema | None = None, partitioning: Any = "hive",
                 partition_filter: Callable[[list[str]], list[str]] | None = None,
                 shuffle: ShuffleArg = None, include_paths: bool = False,
                 file_extensions: Sequence[str] | None = tuple(PARQUET_FILE_EXTENSIONS),
                 ignore_missing_paths: bool = False,
                 to_batches_kwargs: dict[str, Any] | None = None) -> None:
        import pyarrow.compute as pc
        if filter is not None and not isinstance(filter, pc.Expression):
            raise TypeError(f"filter must be a pyarrow expression such as "
                            f"pyarrow.dataset.field('x') > 3, got {type(filter).__name__}")
        if schema is not None and not isinstance(schema, pa.Schema):
            raise TypeError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
        self._scanner_args = dict(to_batches_kwargs or {})
        unknown = sorted(set(self._scanner_args) - set(SCANNER_ARGS))
        if unknown:
            raise TypeError(f"read_parquet got unexpected arguments {unknown}; it passes "
                            f"only {list(SCANNER_ARGS)} on to pyarrow's scanner")
        self._filesystem, resolved = resolve_paths_and_filesystem(paths, filesystem)
        self._files: list[FileInfo] = expand_paths(
            resolved, self._filesystem, file_extensions=file_extensions,
            ignore_missing_paths=ignore_missing_paths, partition_filter=partition_filter)
        self._partitioning: Partitioning | None = normalize_partitioning(partitioning)
        self._shuffle = normalize_shuffle(shuffle)
        self._include_paths = include_paths
        self._filter = filter
        self._limit: int | None = None
        self._target_block_size = target_block_size()

        metadata = _read_footers(self._filesystem, [f.path for f in self._files])
        file_schemas = [(f.path, md.schema.to_arrow_schema())
                        for f, md in zip(self._files, metadata)]
        self._row_groups: list[list[_RowGroup]] = [
            _row_groups(i, md) for i, md in enumerate(metadata)]
        file_schema = schema if schema is not None else unify_file_schemas(file_schemas)
        # Partition values per file, as scalars of the partition field's type; only for
        # fields that are not stored in the files themselves.
        self._partition_values: list[dict[str, pa.Scalar]] = []
        partition_fields: dict[str, pa.Field] = {}
        for f in self._files:
            values = {}
            if self._partitioning is not None:
                for name, value in self._partitioning.parse(f.path).items():
                    if name in file_schema.names:
                        continue
                    values[name] = self._partitioning.scalar(name, value)
                    partition_fields.setdefault(name, pa.field(name, values[name].type))
            self._partition_values.append(values)
        self._dataset_schema = pa.schema(list(file_schema) + list(partition_fields.values()),
                                         metadata=file_schema.metadata)
        self._columns: list[str] | None = None
        if columns is not None:
            if isinstance(columns, str):
                raise TypeError(f"columns must be a list of column names, got {columns!r}")
            columns = list(columns)
            if include_paths and PATH_COLUMN not in columns:
                columns.append(PATH_COLUMN)  # as Ray: include_paths adds it to any columns
            self._columns = self._check_columns(columns)

    # ---- schema and projection -------------------------------------------------------

    def _available_columns(self) -> list[str]:
        names = list(self._dataset_schema.names)
        if self._include_paths and PATH_COLUMN not in names:
            names.append(PATH_COLUMN)
        return names

    def _check_columns(self, columns: Sequence[str]) -> list[str]:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns must be a list of column names, got {columns!r}")
        available = self._available_columns()
        missing = [c for c in columns if c not in available]
        if missing:
            raise ValueError(f"columns {missing} are not in the Parquet files "
                             f"{_short(self.files)}; available columns: {available}")
        return list(columns)

    def _output_columns(self) -> list[str]:
        return list(self._columns) if self._columns is not None else self._available_columns()

    def _reads_path_column(self) -> bool:
        return (self._include_paths and PATH_COLUMN not in self._dataset_schema.names
                and PATH_COLUMN in self._output_columns())

    def schema(self) -> pa.Schema:
        """The schema of the blocks this datasource produces (known without reading)."""
        fields = []
        for name in self._output_columns():
            if name == PATH_COLUMN and PATH_COLUMN not in self._dataset_schema.names:
                fields.append(pa.field(PATH_COLUMN, pa.string()))
            else:
                fields.append(self._dataset_schema.field(name))
        return pa.schema(fields, metadata=self._dataset_schema.metadata)

    def supports_projection_pushdown(self) -> bool:
        return True

    def apply_projection(self, columns: list[str]) -> "ParquetDatasource":
        out = copy.copy(self)
        out._columns = self._check_columns(columns)
        return out

    def supports_limit_pushdown(self) -> bool:
        return True

    def apply_limit(self, limit: int) -> "ParquetDatasource":
        out = copy.copy(self)
        out._limit = limit if self._limit is None else min(limit, self._limit)
        return out

    # ---- sizes and read tasks -------------------------------------------------------

    @property
    def files(self) -> list[str]:
        """The files this datasource reads, in order."""
        return [f.path for f in self._files]

    def _unit_bytes(self, rg: _RowGroup) -> int:
        wanted = set(self._output_columns())
        return sum(b for name, b in rg.column_bytes.items() if name in wanted)

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(self._unit_bytes(rg) for groups in self._row_groups for rg in groups)

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        order = shuffle_files(list(range(len(self._files))), self._shuffle)
        units = [rg for i in order for rg in self._row_groups[i]]
        if self._limit is not None and self._filter is None:
            # Row counts are exact without a filter: skip row groups past the limit.
            kept, rows = [], 0
            for rg in units:
                if rows >= self._limit:
                    break
                kept.append(rg)
                rows += rg.num_rows
            units = kept
        spec = self._scan_spec()
        if not units:
            # No rows at all (empty files, or limit 0): one task that yields an empty
            # block, so the dataset still knows its columns.
            metadata = BlockMetadata(num_rows=0, size_bytes=0, input_files=self.files,
                                     schema=spec.output_schema)
            return [ReadTask(functools.partial(_empty, spec.output_schema), metadata)]
        groups = split_balanced([float(self._unit_bytes(rg)) for rg in units],
                                max(1, parallelism))
        tasks = []
        for group in groups:
            chosen = [units[i] for i in group]
            pieces: list[tuple[str, list[int], dict[str, pa.Scalar]]] = []
            for rg in chosen:  # consecutive row groups of one file make one piece
                path = self._files[rg.file].path
                if pieces and pieces[-1][0] == path:
                    pieces[-1][1].append(rg.row_group)
                else:
                    pieces.append((path, [rg.row_group], self._partition_values[rg.file]))
            num_rows: int | None = None
            if self._filter is None:
                num_rows = sum(rg.num_rows for rg in chosen)
                if self._limit is not None:
                    num_rows = min(num_rows, self._limit)
            metadata = BlockMetadata(
                num_rows=num_rows, size_bytes=sum(self._unit_bytes(rg) for rg in chosen),
                input_files=list(dict.fromkeys(p[0] for p in pieces)),
                schema=spec.output_schema)
            tasks.append(ReadTask(functools.partial(_read_pieces, spec, pieces), metadata))
        return tasks

    def _scan_spec(self) -> _ScanSpec:
        scan_columns = [c for c in self._output_columns()
                        if not (c == PATH_COLUMN and self._reads_path_column())]
        return _ScanSpec(filesystem=self._filesystem, dataset_schema=self._dataset_schema,
                         scan_columns=scan_columns, output_schema=self.schema(),
                         filter=self._filter, scanner_args=self._scanner_args,
                         include_paths=self._reads_path_column(), limit=self._limit,
                         target_block_size=self._target_block_size)


def _short(paths: list[str], n: int = 3) -> str:
    return ", ".join(repr(p) for p in paths[:n]) + (" ..." if len(paths) > n else "")


def _read_footer(filesystem: pafs.FileSystem, path: str) -> pq.FileMetaData:
    try:
        with filesystem.open_input_file(path) as f:
            return pq.read_metadata(f)
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path!r} is not a Parquet file ({e}). Pass file_extensions= "
                         f"to read only the Parquet files of a directory") from e


def _read_footers(filesystem: pafs.FileSystem, paths: list[str]) -> list[pq.FileMetaData]:
    if len(paths) <= 1:
        return [_read_footer(filesystem, p) for p in paths]
    with ThreadPoolExecutor(min(_METADATA_THREADS, len(paths))) as pool:
        return list(pool.map(functools.partial(_read_footer, filesystem), paths))


def _row_groups(file_index: int, metadata: pq.FileMetaData) -> list[_RowGroup]:
    out = []
    for i in range(metadata.num_row_groups):
        rg = metadata.row_group(i)
        column_bytes: dict[str, int] = {}
        for j in range(rg.num_columns):
            column = rg.column(j)
            # Nested columns have one chunk per leaf ("a.b", "a.c"): count them under "a".
            top = column.path_in_schema.split(".", 1)[0]
            column_bytes[top] = column_bytes.get(top, 0) + column.total_uncompressed_size
        out.append(_RowGroup(file_index, i, rg.num_rows, column_bytes))
    return out


def _partition_expression(values: dict[str, pa.Scalar]) -> pc.Expression | None:
    import pyarrow.compute as pc
    expression = None
    for name, scalar in values.items():
        term = pc.field(name).is_null() if not scalar.is_valid else pc.field(name) == scalar
        expression = term if expression is None else expression & term
    return expression


def _empty(schema: pa.Schema) -> Iterator[pa.Table]:
    yield schema.empty_table()


def _plain_file(spec: _ScanSpec, path: str, partition_values: dict[str, pa.Scalar]
                ) -> pq.ParquetFile | None:
    """The file opened for a direct read when a scanner would add nothing: no filter,
    no partition columns, no scanner options, and the scanned columns stored exactly
    as the dataset's schema has them. None: read it through pyarrow.dataset."""
    if spec.filter is not None or partition_values or spec.scanner_args:
        return None
    f = pq.ParquetFile(spec.filesystem.open_input_file(path))
    stored = f.schema_arrow
    for name in spec.scan_columns:
        i = stored.get_field_index(name)
        if i < 0 or not stored.field(i).equals(spec.dataset_schema.field(name)):
            f.close()
            return None
    return f


def _row_group_tables(f: pq.ParquetFile, row_groups: list[int], columns: list[str],
                      target_bytes: int) -> Iterator[pa.Table]:
    """Runs of consecutive row groups of at most ``target_bytes`` (uncompressed; one
    larger row group is a run of its own), each read as one table. read_row_groups gives
    every column as one chunk, so NumPy batches of it are views; blocks merged from
    iter_batches' 64k-row batches had to be combined (a copy of every column) first.

    Without threads, as Ray's read tasks: a task has one CPU, and with the decoding on
    pyarrow's thread pool a write task's memory (tree PSS) rose ~10% in its first
    seconds, freed blocks staying in the pool threads' allocator heaps."""
    def read(group: list[int]) -> pa.Table:
        return f.read_row_groups(group, columns=columns, use_pandas_metadata=False,
                                 use_threads=False)

    try:
        meta = f.metadata
        group: list[int] = []
        size = 0
        for rg in row_groups:
            rg_bytes = meta.row_group(rg).total_byte_size
            if group and size + rg_bytes > target_bytes:
                yield read(group)
                group, size = [], 0
            group.append(rg)
            size += rg_bytes
        if group:
            yield read(group)
    finally:
        f.close()


def _scan(spec: _ScanSpec, path: str, row_groups: list[int],
          partition_values: dict[str, pa.Scalar]) -> tuple[Iterator[pa.RecordBatch], pa.Schema]:
    """The given row groups of one file, in that order, through pyarrow.dataset (a
    filter, partition columns or scanner options): (batches, their schema)."""
    import pyarrow.dataset as pads
    fragment = pads.ParquetFileFormat().make_fragment(
        path, filesystem=spec.filesystem,
        partition_expression=_partition_expression(partition_values))
    # subset() keeps the row groups in the order given; make_fragment(row_groups=)
    # does not (pyarrow reorders them), and a dataset must read back in order.
    fragment.ensure_complete_metadata()
    fragment = fragment.subset(row_group_ids=row_groups)
    # The fragment fills partition columns from its partition expression, and
    # the filter may use columns that are not projected.
    scanner = pads.Scanner.from_fragment(
        fragment, schema=spec.dataset_schema, columns=spec.scan_columns,
        filter=spec.filter, **{"use_threads": False, **spec.scanner_args})
    return scanner.to_batches(), scanner.projected_schema


def _read_pieces(spec: _ScanSpec, pieces: list[tuple[str, list[int], dict[str, pa.Scalar]]]
                 ) -> Iterator[pa.Table]:
    """The body of one read task: the given row groups of each file, in order."""
    remaining = spec.limit
    produced = False
    target = block_bytes(spec.target_block_size)
    for path, row_groups, partition_values in pieces:
        if remaining is not None and remaining <= 0:
            break
        try:
            plain = _plain_file(spec, path, partition_values)
            if plain is not None:
                tables = _row_group_tables(plain, row_groups, spec.scan_columns, target)
            else:
                batches, schema = _scan(spec, path, row_groups, partition_values)
                tables = coalesce_batches(batches, schema, target)
            for table in tables:
                if remaining is not None:
                    table = table.slice(0, remaining)
                    remaining -= table.num_rows
                if spec.include_paths:
                    table = table.append_column(pa.field(PATH_COLUMN, pa.string()),
                                                pa.repeat(pa.scalar(path), table.num_rows))
                if table.schema.names != spec.output_schema.names:
                    table = table.select(spec.output_schema.names)
                produced = True
                yield table
                if remaining is not None and remaining <= 0:
                    break
        except Exception as e:  # noqa: BLE001 - re-raised, with the path when it lacks one
            wrapped = wrap_read_error(path, "Parquet", e)
            if wrapped is e:
                raise
            raise wrapped from e
    if not produced:  # everything filtered out: still say what the columns are
        yield spec.output_schema.empty_table()

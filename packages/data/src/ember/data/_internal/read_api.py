"""File readers: ``read_parquet``, ``read_csv``, ``read_json``, ``read_numpy``,
``read_text`` and ``read_binary_files`` (Ray Data's names, arguments and semantics).

Each builds a datasource (``_internal/datasource/``) and hands it to
``read_datasource``. Paths are expanded and checked right here, in the driver, so a
typo fails at once: ``FileNotFoundError`` with the path in the message.

Every reader accepts a path or a list of paths; directories (read recursively, skipping
names that start with "." or "_"); globs (``/data/*.csv``, ``/data/**/*.csv``); URIs
(``s3://bucket/key``); and ``filesystem=`` any ``pyarrow.fs.FileSystem`` or fsspec
filesystem. The common keyword arguments:

* ``parallelism`` / ``override_num_blocks``: the number of read tasks (-1 / None: chosen
  from the data size and the cluster); ``concurrency``: how many run at once;
  ``ray_remote_args`` (and the ``num_cpus``/``num_gpus``/``memory`` shortcuts): resources
  of each read task.
* ``partitioning``: columns encoded in directory names (``Partitioning("hive")``);
  ``partition_filter``: a ``list[path] -> list[path]`` function choosing files.
* ``include_paths``: add a ``path`` column; ``file_extensions``: read only these;
  ``ignore_missing_paths``; ``shuffle``: "files" or ``FileShuffleConfig(seed)``.
* ``arrow_open_stream_args``: passed to ``FileSystem.open_input_stream`` (compression
  is detected from the extension: ``.csv.gz`` works as is).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from .datasource.file_utils import FileShuffleConfig, PathsArg, ShuffleArg
from .datasource.json_datasource import JSON_FILE_EXTENSIONS
from .datasource.parquet_datasource import PARQUET_FILE_EXTENSIONS
from .datasource.partitioning import Partitioning

if TYPE_CHECKING:
    import pyarrow
    import pyarrow.compute

    from ..dataset import Dataset
    from ..datasource import Datasource

__all__ = ["FileShuffleConfig", "Partitioning", "read_binary_files", "read_csv", "read_json",
           "read_numpy", "read_parquet", "read_text"]

PartitionFilter = Callable[[list[str]], list[str]]


def _read(datasource: "Datasource", *, parallelism: int, num_cpus: float | None,
          num_gpus: float | None, memory: float | None,
          ray_remote_args: dict[str, Any] | None, concurrency: int | None,
          override_num_blocks: int | None) -> "Dataset":
    from .create import read_datasource  # here: ember.data's modules import this one lazily

    remote_args = dict(ray_remote_args or {})
    for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
        if value is not None:
            remote_args[key] = value
    return read_datasource(datasource, parallelism=parallelism,
                           ray_remote_args=remote_args or None, concurrency=concurrency,
                           override_num_blocks=override_num_blocks)


_READ_ARGS = ("parallelism", "num_cpus", "num_gpus", "memory", "ray_remote_args",
              "concurrency", "override_num_blocks")


def _read_files(datasource_cls: Callable[..., "Datasource"], args: dict[str, Any]) -> "Dataset":
    """Build a datasource from a reader's arguments (its ``locals()``) and read it.

    The ``_read`` arguments (``_READ_ARGS``) go to ``_read``; all the others, ``paths``
    first, go to ``datasource_cls``.
    """
    datasource_args = dict(args)
    read_args = {key: datasource_args.pop(key) for key in _READ_ARGS}
    datasource = datasource_cls(datasource_args.pop("paths"), **datasource_args)
    return _read(datasource, **read_args)


def read_parquet(
    paths: PathsArg,
    *,
    filesystem: Any = None,
    columns: Sequence[str] | None = None,
    filter: "pyarrow.compute.Expression | None" = None,
    schema: "pyarrow.Schema | None" = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    partition_filter: PartitionFilter | None = None,
    partitioning: Partitioning | str | None = "hive",
    shuffle: ShuffleArg = None,
    include_paths: bool = False,
    file_extensions: Sequence[str] | None = tuple(PARQUET_FILE_EXTENSIONS),
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    **arrow_parquet_args: Any,
) -> "Dataset":
    """Read Parquet files into a dataset, one read task per group of row groups.

    Large files are split by row group across read tasks and small files are grouped,
    so the tasks carry about equal bytes. ``columns`` are the only ones read (the
    planner also pushes a later ``select_columns`` into the read), ``filter`` (a
    pyarrow expression) skips row groups by their statistics and drops rows while
    reading, and hive directories (``year=2024/``) become string columns (typed with
    ``Partitioning("hive", field_types={"year": int})``). ``schema`` casts the files
    to the given types. Files that disagree on a column's type raise an error naming
    both; other ``arrow_parquet_args`` (``batch_size``, ``use_threads``...) go to
    ``pyarrow.dataset.Scanner.from_fragment``.

    >>> import pyarrow.dataset as pds
    >>> ds = ember.data.read_parquet("/data/taxi/", columns=["fare", "year"],
    ...                              filter=pds.field("fare") > 10.0)   # doctest: +SKIP
    >>> ds.schema()                                                     # doctest: +SKIP
    fare: double
    year: string
    """
    args = dict(locals())
    args["to_batches_kwargs"] = args.pop("arrow_parquet_args")
    from .datasource.parquet_datasource import ParquetDatasource

    return _read_files(ParquetDatasource, args)


def read_csv(
    paths: PathsArg,
    *,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    partition_filter: PartitionFilter | None = None,
    partitioning: Partitioning | str | None = "hive",
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: ShuffleArg = None,
    file_extensions: Sequence[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    **arrow_csv_args: Any,
) -> "Dataset":
    """Read CSV files into a dataset (one file is never split across read tasks).

    ``arrow_csv_args`` are ``read_options``, ``parse_options`` and ``convert_options``
    of ``pyarrow.csv``.

    >>> import pyarrow.csv as pacsv
    >>> ds = ember.data.read_csv("/data/trips.csv.gz",                 # doctest: +SKIP
    ...     parse_options=pacsv.ParseOptions(delimiter="|"),
    ...     convert_options=pacsv.ConvertOptions(column_types={"zip": "string"}))
    """
    args = dict(locals())
    from .datasource.csv_datasource import CSVDatasource

    return _read_files(CSVDatasource, args)


def read_json(
    paths: PathsArg,
    *,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    partition_filter: PartitionFilter | None = None,
    partitioning: Partitioning | str | None = "hive",
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: ShuffleArg = None,
    file_extensions: Sequence[str] | None = tuple(JSON_FILE_EXTENSIONS),
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    **arrow_json_args: Any,
) -> "Dataset":
    """Read JSON Lines files (one object per line) into a dataset.

    ``arrow_json_args`` are ``read_options`` and ``parse_options`` of ``pyarrow.json``
    (``parse_options=ParseOptions(explicit_schema=...)`` fixes the types). A file that
    holds a single JSON array of objects is read too. By default only ``.json`` and
    ``.jsonl`` files (compressed ones too) are read.

    >>> ds = ember.data.read_json("/data/events/")                      # doctest: +SKIP
    >>> ds.take(1)                                                      # doctest: +SKIP
    [{'user': 'ada', 'clicks': 3}]
    """
    args = dict(locals())
    from .datasource.json_datasource import JSONDatasource

    return _read_files(JSONDatasource, args)


def read_numpy(
    paths: PathsArg,
    *,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    partition_filter: PartitionFilter | None = None,
    partitioning: Partitioning | str | None = None,
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: ShuffleArg = None,
    file_extensions: Sequence[str] | None = ("npy",),
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    **numpy_load_args: Any,
) -> "Dataset":
    """Read ``.npy`` files into a dataset with one ``data`` column: a row per element of
    the first axis (N-D arrays give tensor rows). ``numpy_load_args`` go to
    ``numpy.load`` (``allow_pickle`` is off unless given).

    >>> np.save("/tmp/x.npy", np.arange(6).reshape(3, 2))               # doctest: +SKIP
    >>> ember.data.read_numpy("/tmp/x.npy").take(1)                     # doctest: +SKIP
    [{'data': array([0, 1])}]
    """
    args = dict(locals())
    from .datasource.numpy_datasource import NumpyDatasource

    return _read_files(NumpyDatasource, args)


def read_text(
    paths: PathsArg,
    *,
    encoding: str = "utf-8",
    drop_empty_lines: bool = True,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    partition_filter: PartitionFilter | None = None,
    partitioning: Partitioning | str | None = None,
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: ShuffleArg = None,
    file_extensions: Sequence[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
) -> "Dataset":
    """Read text files into a dataset with one row per line, in a ``text`` column.

    ``drop_empty_lines`` (default True) drops lines that are empty or only whitespace.

    >>> ds = ember.data.read_text("/logs/*.log", include_paths=True)   # doctest: +SKIP
    >>> ds.take(1)                                                      # doctest: +SKIP
    [{'text': 'GET /index.html 200', 'path': '/logs/a.log'}]
    """
    args = dict(locals())
    from .datasource.text_datasource import TextDatasource

    return _read_files(TextDatasource, args)


def read_binary_files(
    paths: PathsArg,
    *,
    include_paths: bool = False,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    partition_filter: PartitionFilter | None = None,
    partitioning: Partitioning | str | None = None,
    ignore_missing_paths: bool = False,
    shuffle: ShuffleArg = None,
    file_extensions: Sequence[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
) -> "Dataset":
    """Read whole files into a dataset: one row per file, its contents in ``bytes``
    (and its path in ``path`` with ``include_paths=True``).

    >>> ds = ember.data.read_binary_files("/images/", include_paths=True)  # doctest: +SKIP
    >>> row = ds.take(1)[0]; row["path"], len(row["bytes"])               # doctest: +SKIP
    ('/images/cat.png', 48213)
    """
    args = dict(locals())
    from .datasource.binary_datasource import BinaryDatasource

    return _read_files(BinaryDatasource, args)

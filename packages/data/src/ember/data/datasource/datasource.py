"""The read/write plug-in interface: ``Datasource``, ``ReadTask`` and ``Datasink``.

A *datasource* cuts its input into ``ReadTask``s; each one runs as an Ember task and
yields Arrow tables (blocks). A *datasink* receives the blocks of one write task at a
time and is told when the whole write starts, finishes or fails.

>>> import pyarrow as pa
>>> class Squares(Datasource):
...     def get_read_tasks(self, parallelism):
...         def read():
...             yield pa.table({"x": [i * i for i in range(4)]})
...         return [ReadTask(read, BlockMetadata(num_rows=4, size_bytes=32,
...                                              input_files=[], schema=None))]
...     def estimate_inmemory_data_size(self):
...         return 32
>>> ember.data.read_datasource(Squares()).take_all()
[{'x': 0}, {'x': 1}, {'x': 4}, {'x': 9}]

The names and signatures follow Ray Data (``ray.data.Datasource`` and friends).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    import pyarrow

__all__ = ["BlockMetadata", "Datasink", "Datasource", "ReadTask", "TaskContext"]


@dataclass
class BlockMetadata:
    """What is known about a block without reading it (None: unknown).

    >>> BlockMetadata(num_rows=10, size_bytes=80, input_files=["a.csv"], schema=None)
    """

    num_rows: int | None
    size_bytes: int | None
    input_files: list[str] = field(default_factory=list)
    schema: "pyarrow.Schema | None" = None
    exec_stats: Any = None


class ReadTask:
    """One unit of reading: a function that yields blocks, plus their expected metadata.

    Calling the task runs ``read_fn`` (in an Ember worker) and returns its iterable of
    ``pyarrow.Table``s (pandas DataFrames are accepted too).

    >>> task = ReadTask(lambda: [pa.table({"x": [1]})],
    ...                 BlockMetadata(num_rows=1, size_bytes=8, input_files=[], schema=None))
    >>> list(task())[0].num_rows
    1
    """

    def __init__(self, read_fn: Callable[[], Iterable["pyarrow.Table"]],
                 metadata: BlockMetadata) -> None:
        self._read_fn = read_fn
        self._metadata = metadata

    @property
    def metadata(self) -> BlockMetadata:
        return self._metadata

    @property
    def read_fn(self) -> Callable[[], Iterable["pyarrow.Table"]]:
        return self._read_fn

    def __call__(self) -> Iterable["pyarrow.Table"]:
        return self._read_fn()

    def __repr__(self) -> str:
        meta = self._metadata
        return f"ReadTask(num_rows={meta.num_rows}, size_bytes={meta.size_bytes})"


class Datasource(abc.ABC):
    """A source of blocks; subclass it and pass an instance to ``read_datasource``.

    Only ``get_read_tasks`` must be written. Override ``supports_projection_pushdown``
    and ``apply_projection`` to let the planner read only the columns the dataset
    uses (``select_columns`` right after the read), and ``estimate_inmemory_data_size``
    so ``parallelism=-1`` can pick a good number of read tasks.
    """

    @abc.abstractmethod
    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        """Split the input into (about) ``parallelism`` read tasks."""

    def estimate_inmemory_data_size(self) -> int | None:
        """Bytes the data takes in memory once read, or None if unknown."""
        return None

    def get_name(self) -> str:
        """Operator name shown in progress bars and stats ("ReadParquet", ...)."""
        name = type(self).__name__
        if name.endswith("Datasource") and name != "Datasource":
            name = name[: -len("Datasource")]
        return f"Read{name}"

    def supports_projection_pushdown(self) -> bool:
        """True if ``apply_projection`` can make the read return only some columns."""
        return False

    def apply_projection(self, columns: list[str]) -> "Datasource":
        """Return a datasource that reads only ``columns`` (in that order).

        Called by the planner only when ``supports_projection_pushdown()`` is True.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support projection pushdown")

    def supports_limit_pushdown(self) -> bool:
        """True if ``apply_limit`` can make the read stop after some rows."""
        return False

    def apply_limit(self, limit: int) -> "Datasource":
        """Return a datasource that reads at most ``limit`` rows in total."""
        raise NotImplementedError(f"{type(self).__name__} does not support limit pushdown")

    @property
    def should_create_reader(self) -> bool:  # Ray compatibility: always the new path.
        return False


@dataclass
class TaskContext:
    """Passed to ``Datasink.write``: which write task this is (0-based)."""

    task_idx: int
    kwargs: dict[str, Any] = field(default_factory=dict)


class Datasink(abc.ABC):
    """A destination for blocks; subclass it and pass an instance to ``write_datasink``.

    ``on_write_start`` runs once in the driver, ``write`` once per write task (in a
    worker, with that task's blocks), then ``on_write_complete`` in the driver with the
    list of every ``write`` return value, or ``on_write_failed`` with the error.
    """

    def on_write_start(self) -> None:
        """Called once in the driver before any block is written."""

    @abc.abstractmethod
    def write(self, blocks: Iterable["pyarrow.Table"], ctx: TaskContext) -> Any:
        """Write the blocks of one task; the return value goes to ``on_write_complete``."""

    def on_write_complete(self, write_results: list[Any]) -> Any:
        """Called once in the driver after every write task succeeded."""
        return None

    def on_write_failed(self, error: Exception) -> None:
        """Called once in the driver if the write failed; the error is then re-raised."""

    def get_name(self) -> str:
        """Operator name shown in progress bars and stats ("WriteParquet", ...)."""
        name = type(self).__name__
        if name.endswith("Datasink") and name != "Datasink":
            name = name[: -len("Datasink")]
        return f"Write{name}"

    @property
    def supports_distributed_writes(self) -> bool:
        """False makes every block go through one write task."""
        return True

"""``Dataset``: a lazy, distributed table of rows (Ray Data's ``Dataset``).

Transformations return a new Dataset and run nothing; consuming methods (``take``,
``iter_batches``, ``count``, ``write_*``, ``materialize``...) optimize the plan and
stream it through the executor.

>>> ds = ember.data.range(100).map(lambda r: {"id": r["id"], "even": r["id"] % 2 == 0})
>>> ds.filter(lambda r: r["even"]).count()
50
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ._internal.logical import (ActorPool, AllToAll, InputData, Join, Limit, LogicalOp, MapOp,
                                Read, TaskPool, Union, Write, Zip, describe)
from ._internal.stats import DatasetStats

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from .datasource.datasource import Datasink
    from .grouped_data import GroupedData
    from .iterator import DataIterator

__all__ = ["Dataset", "MaterializedDataset", "Schema"]

DEFAULT_BATCH_SIZE = 1024


class Schema:
    """Column names and types of a dataset (``base_schema`` is the ``pyarrow.Schema``).

    >>> ember.data.range(3).schema()
    Column  Type
    ------  ----
    id      int64
    """

    def __init__(self, base_schema: "pyarrow.Schema") -> None:
        self.base_schema = base_schema

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list[Any]:
        return list(self.base_schema.types)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schema):
            return bool(self.base_schema == other.base_schema)
        return bool(self.base_schema == other)

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __repr__(self) -> str:
        rows = [(n, str(t)) for n, t in zip(self.names, self.types)]
        w1 = max([len("Column")] + [len(n) for n, _ in rows])
        w2 = max([len("Type")] + [len(t) for _, t in rows])
        lines = [f"{'Column':<{w1}}  {'Type':<{w2}}".rstrip(),
                 f"{'-' * 6:<{w1}}  {'-' * 4:<{w2}}".rstrip()]
        lines += [f"{n:<{w1}}  {t}" for n, t in rows]
        return "\n".join(lines)


def _compute_for(fn: Any, compute: Any, concurrency: Any, what: str) -> TaskPool | ActorPool:
    """Ray's rules: callable classes run on actor pools (``concurrency`` required),
    functions as tasks (``concurrency`` caps how many run at once)."""
    from .strategy import UNBOUNDED, ActorPoolStrategy, TaskPoolStrategy

    is_class = isinstance(fn, type)
    pool: TaskPool | ActorPool | None = None
    if isinstance(compute, ActorPoolStrategy):
        pool = ActorPool(compute.min_size, compute.max_size,
                         compute.max_tasks_in_flight_per_actor or 2)
    elif compute == "actors":
        pool = ActorPool(1, UNBOUNDED)
    elif isinstance(compute, TaskPoolStrategy):
        pool = TaskPool(compute.size)
    elif compute not in (None, "tasks"):
        raise ValueError(f"{what}: compute must be an ActorPoolStrategy, TaskPoolStrategy, "
                         f"'tasks' or 'actors', got {compute!r}")
    if concurrency is not None:
        if pool is not None and compute not in (None, "tasks", "actors"):
            raise ValueError(f"{what}: give either compute= or concurrency=, not both")
        if isinstance(concurrency, tuple):
            if len(concurrency) != 2 or not all(isinstance(c, int) for c in concurrency) or \
                    not 1 <= concurrency[0] <= concurrency[1]:
                raise ValueError(f"{what}: concurrency must be an int or a (min, max) tuple "
                                 f"with 1 <= min <= max, got {concurrency!r}")
            if not is_class:
                raise ValueError(f"{what}: concurrency=(min, max) autoscales an actor pool, "
                                 "which needs a callable class; a function takes an int")
            pool = ActorPool(concurrency[0], concurrency[1])
        elif isinstance(concurrency, int) and concurrency >= 1:
            pool = ActorPool(concurrency, concurrency) if is_class else TaskPool(concurrency)
        else:
            raise ValueError(f"{what}: concurrency must be an int >= 1 or a (min, max) tuple, "
                             f"got {concurrency!r}")
    if is_class and not isinstance(pool, ActorPool):
        raise ValueError(f"{what}: ``concurrency`` must be specified when using a callable "
                         f"class (e.g. concurrency=2, or (1, 4) to autoscale): {fn.__name__} "
                         "runs on a pool of actors, each constructing it once")
    if not is_class and isinstance(pool, ActorPool):
        raise ValueError(f"{what}: an actor pool needs a callable class (one whose instances "
                         f"are called with each batch); got a {type(fn).__name__}")
    if not callable(fn):
        raise TypeError(f"{what}: expected a function or callable class, got "
                        f"{type(fn).__name__}: {fn!r}")
    return pool or TaskPool()


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _remote_args(num_cpus: float | None, num_gpus: float | None,
                 extra: dict[str, Any]) -> dict[str, Any]:
    args = dict(extra)
    if num_cpus is not None:
        args["num_cpus"] = num_cpus
    if num_gpus is not None:
        args["num_gpus"] = num_gpus
    return args


class Dataset:
    """A lazy dataset: a logical plan, run when consumed. Create one with ``ember.data.*``."""

    def __init__(self, plan: LogicalOp, session: str | None = None) -> None:
        self._plan = plan
        self._session = session
        self._last_stats: DatasetStats | None = None

    def _with(self, op: LogicalOp) -> "Dataset":
        return Dataset(op, self._session)

    def __repr__(self) -> str:
        return f"Dataset({describe(self._plan)})"

    # -- transformations -------------------------------------------------------------------
    def map(self, fn: Any, *, compute: Any = None, fn_args: Sequence[Any] | None = None,
            fn_kwargs: dict[str, Any] | None = None,
            fn_constructor_args: Sequence[Any] | None = None,
            fn_constructor_kwargs: dict[str, Any] | None = None,
            num_cpus: float | None = None, num_gpus: float | None = None,
            concurrency: int | tuple[int, int] | None = None,
            **ray_remote_args: Any) -> "Dataset":
        """Apply ``fn(row) -> row`` (dicts) to each row.

        >>> ember.data.range(3).map(lambda r: {"sq": r["id"] ** 2}).take_all()
        [{'sq': 0}, {'sq': 1}, {'sq': 4}]
        """
        return self._row_op("map", fn, "Map", compute, fn_args, fn_kwargs, fn_constructor_args,
                            fn_constructor_kwargs, num_cpus, num_gpus, concurrency,
                            ray_remote_args, row_preserving=True)

    def flat_map(self, fn: Any, *, compute: Any = None, fn_args: Sequence[Any] | None = None,
                 fn_kwargs: dict[str, Any] | None = None,
                 fn_constructor_args: Sequence[Any] | None = None,
                 fn_constructor_kwargs: dict[str, Any] | None = None,
                 num_cpus: float | None = None, num_gpus: float | None = None,
                 concurrency: int | tuple[int, int] | None = None,
                 **ray_remote_args: Any) -> "Dataset":
        """Apply ``fn(row) -> list of rows`` and flatten.

        >>> ember.data.range(2).flat_map(lambda r: [r, r]).count()
        4
        """
        return self._row_op("flat_map", fn, "FlatMap", compute, fn_args, fn_kwargs,
                            fn_constructor_args, fn_constructor_kwargs, num_cpus, num_gpus,
                            concurrency, ray_remote_args)

    def filter(self, fn: Any = None, *, compute: Any = None,
               fn_args: Sequence[Any] | None = None, fn_kwargs: dict[str, Any] | None = None,
               fn_constructor_args: Sequence[Any] | None = None,
               fn_constructor_kwargs: dict[str, Any] | None = None,
               num_cpus: float | None = None, num_gpus: float | None = None,
               concurrency: int | tuple[int, int] | None = None,
               expr: str | None = None,
               **ray_remote_args: Any) -> "Dataset":
        """Keep the rows for which ``fn(row)`` is true, or for which the string
        expression ``expr`` holds (evaluated with pyarrow.compute, never ``eval``).

        >>> ember.data.range(10).filter(lambda r: r["id"] < 3).count()
        3
        >>> ember.data.range(10).filter(expr="id < 3 or id in [7, 8]").count()
        5
        """
        if expr is not None:
            if fn is not None:
                raise ValueError("filter(): pass either fn or expr, not both")
            from ._internal.transforms import ExprFilterStage, MapTransformer
            stage = ExprFilterStage(expr)
            return self._with(MapOp(transformer=MapTransformer([stage]),
                                    ray_remote_args=_remote_args(num_cpus, num_gpus,
                                                                 ray_remote_args),
                                    label=stage.name, inputs=(self._plan,)))
        if fn is None:
            raise TypeError("filter() needs a function fn(row) -> bool, or expr='col > 5'")
        return self._row_op("filter", fn, "Filter", compute, fn_args, fn_kwargs,
                            fn_constructor_args, fn_constructor_kwargs, num_cpus, num_gpus,
                            concurrency, ray_remote_args)

    def _row_op(self, kind: str, fn: Any, label: str, compute: Any, fn_args: Any,
                fn_kwargs: Any, ctor_args: Any, ctor_kwargs: Any, num_cpus: Any,
                num_gpus: Any, concurrency: Any, extra: dict[str, Any],
                row_preserving: bool = False) -> "Dataset":
        from ._internal.transforms import MapTransformer, RowStage
        pool = _compute_for(fn, compute, concurrency, label.lower())
        name = f"{label}({_fn_name(fn)})"
        stage = RowStage(fn, kind, fn_args=fn_args or (), fn_kwargs=fn_kwargs,
                         fn_constructor_args=ctor_args or (),
                         fn_constructor_kwargs=ctor_kwargs, name=name)
        return self._with(MapOp(transformer=MapTransformer([stage]), compute=pool,
                                ray_remote_args=_remote_args(num_cpus, num_gpus, extra),
                                row_preserving=row_preserving, label=name,
                                inputs=(self._plan,)))

    def map_batches(self, fn: Any, *, batch_size: int | None | str = None,
                    compute: Any = None, batch_format: str | None = "default",
                    zero_copy_batch: bool = False, fn_args: Sequence[Any] | None = None,
                    fn_kwargs: dict[str, Any] | None = None,
                    fn_constructor_args: Sequence[Any] | None = None,
                    fn_constructor_kwargs: dict[str, Any] | None = None,
                    num_cpus: float | None = None, num_gpus: float | None = None,
                    concurrency: int | tuple[int, int] | None = None,
                    **ray_remote_args: Any) -> "Dataset":
        """Apply ``fn(batch) -> batch`` to batches of ``batch_size`` rows (default: whole
        blocks, as in Ray 2.60; ``"default"`` means 1024 rows).

        ``batch_format``: "default"/"numpy" (dict of arrays), "pandas" or "pyarrow".
        ``zero_copy_batch=False`` copies batches cut to ``batch_size`` so ``fn`` may
        modify them; whole blocks are passed as they are (as in Ray), so their NumPy
        arrays may be read-only. A callable class runs on an actor pool: ``concurrency=n`` actors, or
        ``(min, max)`` to autoscale; each actor constructs it once
        (``fn_constructor_args``), e.g. to load a model.

        >>> ds = ember.data.range(4).map_batches(lambda b: {"y": b["id"] * 10}, batch_size=2)
        >>> sorted(r["y"] for r in ds.take_all())
        [0, 10, 20, 30]
        """
        from ._internal.batch import check_batch_format
        from ._internal.transforms import BatchStage, MapTransformer
        fmt = check_batch_format(batch_format)
        size: int | None
        if batch_size == "default":
            size = DEFAULT_BATCH_SIZE
        elif batch_size is None or (isinstance(batch_size, int) and batch_size >= 1):
            size = batch_size
        else:
            raise ValueError(f"map_batches: batch_size must be an int >= 1, None (whole "
                             f"blocks) or 'default', got {batch_size!r}")
        pool = _compute_for(fn, compute, concurrency, "map_batches")
        name = f"MapBatches({_fn_name(fn)})"
        stage = BatchStage(fn, batch_size=size, batch_format=fmt, zero_copy_batch=zero_copy_batch,
                           fn_args=fn_args or (), fn_kwargs=fn_kwargs,
                           fn_constructor_args=fn_constructor_args or (),
                           fn_constructor_kwargs=fn_constructor_kwargs, name=name)
        return self._with(MapOp(transformer=MapTransformer([stage]), compute=pool,
                                ray_remote_args=_remote_args(num_cpus, num_gpus,
                                                             ray_remote_args),
                                min_rows_per_bundle=size, label=name, inputs=(self._plan,)))

    def add_column(self, col: str, fn: Callable[[Any], Any], *,
                   batch_format: str | None = "pandas", compute: Any = None,
                   concurrency: int | None = None, **ray_remote_args: Any) -> "Dataset":
        """Add (or replace) column ``col`` computed as ``fn(batch)``.

        >>> ember.data.range(3).add_column("double", lambda df: df["id"] * 2).take(1)
        [{'id': 0, 'double': 0}]
        """
        fmt = batch_format or "pandas"

        def add(batch: Any) -> Any:
            values = fn(batch)
            if fmt == "pyarrow":
                import pyarrow as pa
                if col in batch.column_names:
                    batch = batch.drop_columns([col])
                return batch.append_column(col, values if isinstance(values, (pa.Array,
                                           pa.ChunkedArray)) else pa.array(values))
            batch[col] = values
            return batch

        add.__name__ = f"add_column[{col}]"
        return self.map_batches(add, batch_size=None, batch_format=fmt, compute=compute,
                                concurrency=concurrency, **ray_remote_args)

    def _project(self, **kwargs: Any) -> "Dataset":
        from ._internal.transforms import MapTransformer, ProjectStage
        stage = ProjectStage(**kwargs)
        select = kwargs.get("select")
        return self._with(MapOp(transformer=MapTransformer([stage]), row_preserving=True,
                                projection=tuple(select) if select is not None else None,
                                label=stage.name, ray_remote_args={}, inputs=(self._plan,)))

    def select_columns(self, cols: str | list[str], **_ignored: Any) -> "Dataset":
        """Keep only ``cols``, in that order (pushed into reads that support it).

        >>> ember.data.from_items([{"a": 1, "b": 2}]).select_columns(["b"]).take_all()
        [{'b': 2}]
        """
        cols = [cols] if isinstance(cols, str) else list(cols)
        if len(set(cols)) != len(cols):
            raise ValueError(f"select_columns: duplicate column names in {cols}")
        return self._project(select=cols)

    def drop_columns(self, cols: str | list[str], **_ignored: Any) -> "Dataset":
        """Remove ``cols``. >>> ds.drop_columns(["b"])"""
        cols = [cols] if isinstance(cols, str) else list(cols)
        return self._project(drop=cols)

    def rename_columns(self, names: dict[str, str] | list[str], **_ignored: Any) -> "Dataset":
        """Rename columns: ``{"old": "new"}``, or a list of new names for every column.

        >>> ember.data.range(1).rename_columns({"id": "x"}).columns()
        ['x']
        """
        if isinstance(names, dict):
            if len(set(names.values())) != len(names):
                raise ValueError(f"rename_columns: new names are not unique: {names}")
            return self._project(rename=dict(names))
        new = list(names)
        old = self.columns()
        if len(new) != len(old):
            raise ValueError(f"rename_columns: got {len(new)} names for {len(old)} columns {old}")
        return self._project(rename=dict(zip(old, new)))

    def limit(self, limit: int) -> "Dataset":
        """The first ``limit`` rows (reads stop early). >>> ds.limit(10).count()"""
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be an int >= 0, got {limit!r}")
        return self._with(Limit(limit=limit, inputs=(self._plan,)))

    def random_sample(self, fraction: float, *, seed: int | None = None) -> "Dataset":
        """Each row kept with probability ``fraction``. >>> ds.random_sample(0.1, seed=0)"""
        from ._internal.transforms import MapTransformer, SampleStage
        if not 0 <= fraction <= 1:
            raise ValueError(f"random_sample: fraction must be in [0, 1], got {fraction}")
        return self._with(MapOp(transformer=MapTransformer([SampleStage(fraction, seed)]),
                                label="RandomSample", inputs=(self._plan,)))

    def _all_to_all(self, fn: Callable[..., Any], label: str,
                    preserves_rows: bool = True) -> "Dataset":
        return self._with(AllToAll(bulk_fn=fn, label=label, preserves_rows=preserves_rows,
                                   inputs=(self._plan,)))

    def repartition(self, num_blocks: int, *, shuffle: bool = False, **_ignored: Any) -> "Dataset":
        """Exactly ``num_blocks`` blocks of (nearly) equal row counts, in order unless
        ``shuffle``. >>> ds.repartition(5).num_blocks()
        5
        """
        from ._internal import exchange
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"repartition: num_blocks must be an int >= 1, got {num_blocks!r}")
        if shuffle:
            return self._all_to_all(exchange.shuffle_fn(None, num_blocks), "Repartition")
        return self._all_to_all(exchange.repartition_fn(num_blocks), "Repartition")

    def random_shuffle(self, *, seed: int | None = None, num_blocks: int | None = None,
                       **_ignored: Any) -> "Dataset":
        """Rows in a random order (a full shuffle). >>> ds.random_shuffle(seed=42)"""
        from ._internal import exchange
        return self._all_to_all(exchange.shuffle_fn(seed, num_blocks), "RandomShuffle")

    def randomize_block_order(self, *, seed: int | None = None) -> "Dataset":
        """Blocks in a random order (cheap: no data moves). >>> ds.randomize_block_order()"""
        from ._internal import exchange
        return self._all_to_all(exchange.randomize_blocks_fn(seed), "RandomizeBlockOrder")

    def sort(self, key: str | list[str], descending: bool | list[bool] = False) -> "Dataset":
        """Sort by ``key`` (one column or several). >>> ds.sort("id", descending=True)"""
        from ._internal import exchange
        keys = [key] if isinstance(key, str) else list(key)
        if not keys:
            raise ValueError("sort: give at least one key column")
        desc = [descending] * len(keys) if isinstance(descending, bool) else list(descending)
        if len(desc) != len(keys):
            raise ValueError(f"sort: {len(desc)} descending flags for {len(keys)} keys")
        return self._all_to_all(exchange.sort_fn(keys, desc), f"Sort({', '.join(keys)})")

    def groupby(self, key: str | list[str] | None) -> "GroupedData":
        """Group rows by ``key`` for aggregations. >>> ds.groupby("k").count()"""
        from .grouped_data import GroupedData
        return GroupedData(self, key)

    def union(self, *others: "Dataset") -> "Dataset":
        """Rows of this dataset followed by those of ``others``. >>> a.union(b).count()"""
        for other in others:
            if not isinstance(other, Dataset):
                raise TypeError(f"union expects Datasets, got {type(other).__name__}")
        op = Union(inputs=(self._plan, *(o._plan for o in others)))
        return Dataset(op, self._session or next((o._session for o in others), None))

    def zip(self, other: "Dataset") -> "Dataset":
        """Columns of both datasets side by side (same row count; clashing names of
        ``other`` get a ``_1`` suffix). >>> a.zip(b)"""
        if not isinstance(other, Dataset):
            raise TypeError(f"zip expects a Dataset, got {type(other).__name__}")
        return Dataset(Zip(inputs=(self._plan, other._plan)), self._session or other._session)

    def join(self, ds: "Dataset", join_type: str = "inner", num_partitions: int | None = None,
             on: str | Sequence[str] = ("id",), right_on: str | Sequence[str] | None = None,
             left_suffix: str | None = None, right_suffix: str | None = None,
             **_ignored: Any) -> "Dataset":
        """Hash join on key columns: ``inner``, ``left_outer``, ``right_outer``,
        ``full_outer`` (``left``/``right``/``outer`` work too).

        >>> users.join(orders, join_type="left_outer", on=("user_id",))
        """
        from ._internal.join import normalize_join_type
        left_keys = (on,) if isinstance(on, str) else tuple(on)
        right_keys = left_keys if right_on is None else (
            (right_on,) if isinstance(right_on, str) else tuple(right_on))
        if len(left_keys) != len(right_keys) or not left_keys:
            raise ValueError(f"join: on={left_keys} and right_on={right_keys} must name the "
                             "same number (>= 1) of columns")
        op = Join(join_type=normalize_join_type(join_type), left_keys=left_keys,
                  right_keys=right_keys, left_suffix=left_suffix, right_suffix=right_suffix,
                  num_partitions=num_partitions, inputs=(self._plan, ds._plan))
        return Dataset(op, self._session or ds._session)

    # -- global aggregates -----------------------------------------------------------------
    def aggregate(self, *aggs: Any) -> dict[str, Any]:
        """Apply ``ember.data.aggregate`` functions to the whole dataset.

        >>> ds.aggregate(Count(), Mean("x"))
        {'count()': 100, 'mean(x)': 49.5}
        """
        from .grouped_data import GroupedData
        rows = GroupedData(self, None).aggregate(*aggs).take_all()
        return rows[0] if rows else {}

    def _simple_agg(self, cls_name: str, on: Any, ignore_nulls: bool, **kw: Any) -> Any:
        from . import aggregate as A
        cls = getattr(A, cls_name)
        cols = [on] if isinstance(on, str) else list(on) if on is not None else None
        if cols is None:
            raise ValueError(f"{cls_name.lower()}: give the column(s) to aggregate (on=...)")
        result = self.aggregate(*(cls(c, ignore_nulls=ignore_nulls, **kw) for c in cols))
        values = list(result.values()) or [None] * len(cols)
        return values[0] if isinstance(on, str) else dict(zip(result.keys(), values))

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Sum of column ``on`` (None for an empty dataset). >>> ds.sum("id")"""
        return self._simple_agg("Sum", on, ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Minimum of column ``on``. >>> ds.min("id")"""
        return self._simple_agg("Min", on, ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Maximum of column ``on``. >>> ds.max("id")"""
        return self._simple_agg("Max", on, ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Mean of column ``on``. >>> ds.mean("id")"""
        return self._simple_agg("Mean", on, ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1,
            ignore_nulls: bool = True) -> Any:
        """Standard deviation of column ``on`` (``ddof=1``: sample). >>> ds.std("id")"""
        return self._simple_agg("Std", on, ignore_nulls, ddof=ddof)

    def unique(self, column: str) -> list[Any]:
        """Distinct values of ``column``. >>> sorted(ds.unique("k"))"""
        from . import aggregate as A
        return list(self.aggregate(A.Unique(column)).get(f"unique({column})") or [])

    # -- splitting -------------------------------------------------------------------------
    def split(self, n: int, *, equal: bool = False,
              locality_hints: list[Any] | None = None) -> list["MaterializedDataset"]:
        """``n`` materialized parts (``equal``: same row count, dropping the remainder).

        ``locality_hints``: one actor handle (or node id) per part; blocks already on that
        actor's node go to its part whole (sizes are unchanged, order is not kept).

        >>> a, b = ember.data.range(10).split(2)
        >>> a, b = ds.split(2, locality_hints=[trainer0, trainer1])
        """
        from ._internal import split
        return split.split(self, n, equal=equal, locality_hints=locality_hints)

    def split_at_indices(self, indices: list[int]) -> list["MaterializedDataset"]:
        """Parts [0, i0), [i0, i1), ..., [ik, end). >>> ds.split_at_indices([3, 7])"""
        from ._internal import split
        return split.split_at_indices(self, indices)

    def split_proportionately(self, proportions: list[float]) -> list["MaterializedDataset"]:
        """Parts of the given fractions, the rest last. >>> ds.split_proportionately([0.8])"""
        from ._internal import split
        return split.split_proportionately(self, proportions)

    def train_test_split(self, test_size: float | int, *, shuffle: bool = False,
                         seed: int | None = None,
                         **_ignored: Any) -> tuple["MaterializedDataset", "MaterializedDataset"]:
        """(train, test), ``test_size`` a fraction or a row count.

        >>> train, test = ember.data.range(10).train_test_split(test_size=0.3)
        >>> train.count(), test.count()
        (7, 3)
        """
        from ._internal import split
        return split.train_test_split(self, test_size, shuffle=shuffle, seed=seed)

    def streaming_split(self, n: int, *, equal: bool = False,
                        locality_hints: list[Any] | None = None) -> list["DataIterator"]:
        """``n`` iterators over disjoint parts, consumable in parallel from other tasks or
        actors (e.g. one per training worker); every epoch all ``n`` must iterate.

        ``locality_hints``: the node id (or actor handle) of each consumer; each takes
        blocks already on its node first, so less data crosses the network.

        >>> it0, it1 = ds.streaming_split(2, equal=True)
        >>> worker.train.remote(it0)
        """
        from ._internal import split
        return split.streaming_split(self, n, equal=equal, locality_hints=locality_hints)

    # -- execution -------------------------------------------------------------------------
    def _iter_bundles(self) -> Iterator[Any]:
        from ._internal.run import execute

        def keep(stats: DatasetStats) -> None:
            self._last_stats = stats

        return execute(self._plan, self._session, on_stats=keep)

    def materialize(self) -> "MaterializedDataset":
        """Run the plan now and keep every block in the object store.

        >>> ds = ember.data.range(10).map(f).materialize()   # f runs once, here
        """
        from ._internal.bundle import RefBundle
        # Blocks in dataset order (not in the order tasks happened to finish), so
        # splits and take_all of a materialized dataset are deterministic.
        done = sorted(self._iter_bundles(), key=lambda b: b.seq)
        bundles = tuple(RefBundle(b.blocks, (i,)) for i, b in enumerate(done))
        out = MaterializedDataset(InputData(bundles=bundles, label="Materialized"),
                                  self._session)
        out._last_stats = self._last_stats
        return out

    def stats(self) -> str:
        """Per-operator wall time, CPU time, rows and bytes of the last execution."""
        if self._last_stats is None:
            return "Dataset has not been executed yet: consume it (e.g. materialize()) first."
        return self._last_stats.to_string()

    def iterator(self) -> "DataIterator":
        """A ``DataIterator`` over this dataset. >>> it = ds.iterator()"""
        from .iterator import DataIterator
        return DataIterator(self._iter_bundles, name=describe(self._plan),
                            stats_fn=self.stats)

    def iter_rows(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Rows as dicts, streaming. >>> for row in ds.iter_rows(): ..."""
        return self.iterator().iter_rows(**kwargs)

    def iter_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None,
                     _collate_fn: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """Batches of ``batch_size`` rows, streaming (see ``DataIterator.iter_batches``).

        >>> for batch in ds.iter_batches(batch_size=32, batch_format="pandas"): ...
        """
        return self.iterator().iter_batches(
            prefetch_batches=prefetch_batches, batch_size=batch_size, batch_format=batch_format,
            drop_last=drop_last, local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed, _collate_fn=_collate_fn)

    def iter_torch_batches(self, **kwargs: Any) -> Iterator[Any]:
        """Batches as dicts of ``torch.Tensor`` (needs ``ember-data[torch]``).

        >>> for batch in ds.iter_torch_batches(batch_size=32, dtypes=torch.float32): ...
        """
        return self.iterator().iter_torch_batches(**kwargs)

    def take(self, limit: int = 20) -> list[dict[str, Any]]:
        """The first ``limit`` rows. >>> ember.data.range(100).take(2)
        [{'id': 0}, {'id': 1}]
        """
        rows: list[dict[str, Any]] = []
        if limit <= 0:
            return rows
        for row in self.limit(limit).iter_rows():
            rows.append(row)
            if len(rows) >= limit:
                break
        return rows

    def take_all(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every row (error if there are more than ``limit``). >>> ds.take_all()"""
        rows: list[dict[str, Any]] = []
        for row in self.iter_rows():
            rows.append(row)
            if limit is not None and len(rows) > limit:
                raise ValueError(f"The dataset has more than the given limit of {limit} rows.")
        return rows

    def take_batch(self, batch_size: int = 20, *,
                   batch_format: str | None = "default") -> Any:
        """The first ``batch_size`` rows as one batch. >>> ds.take_batch(5)["id"]"""
        from ._internal.batch import block_to_batch, check_batch_format
        from ._internal.block import concat
        from ._internal.run import fetch_blocks
        fmt = check_batch_format(batch_format)
        blocks = list(fetch_blocks(self.limit(batch_size)._iter_bundles()))
        block = concat(blocks)
        if block.num_rows == 0:
            raise ValueError("The dataset is empty.")
        return block_to_batch(block.slice(0, batch_size), fmt)

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows. >>> ds.show(3)"""
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        """Number of rows (from metadata when the plan allows, without reading data).

        >>> ember.data.range(42).count()
        42
        """
        known = _count_from_metadata(self._plan)
        if known is not None:
            return known
        return sum(b.num_rows for b in self._iter_bundles())

    def schema(self, fetch_if_missing: bool = True) -> Schema | None:
        """Column names and types (runs the plan until the first block if needed)."""
        schema = None
        if isinstance(self._plan, InputData):
            from ._internal.block import unify_schemas
            schema = unify_schemas(b.schema() for b in self._plan.bundles)
        elif fetch_if_missing:
            for bundle in self._iter_bundles():
                schema = bundle.schema()
                if schema is not None and bundle.num_rows:
                    break
        return Schema(schema) if schema is not None else None

    def columns(self, fetch_if_missing: bool = True) -> list[str]:
        """Column names. >>> ember.data.range(1).columns()
        ['id']
        """
        schema = self.schema(fetch_if_missing)
        return schema.names if schema is not None else []

    def num_blocks(self) -> int:
        """Blocks once executed. >>> ember.data.range(10).repartition(3).num_blocks()
        3
        """
        return sum(len(b.blocks) for b in self.materialize()._bundles())

    def size_bytes(self) -> int:
        """In-memory size of the blocks once executed. >>> ds.size_bytes()"""
        return sum(b.size_bytes for b in self.materialize()._bundles())

    def input_files(self) -> list[str]:
        """Files the dataset was read from. >>> ds.input_files()"""
        files: dict[str, None] = {}
        for op in _walk(self._plan):
            if isinstance(op, Read):
                for task in op.datasource.get_read_tasks(1):
                    for f in task.metadata.input_files or ():
                        files.setdefault(f, None)
            elif isinstance(op, InputData):
                for bundle in op.bundles:
                    for f in bundle.input_files():
                        files.setdefault(f, None)
        return list(files)

    def to_pandas(self, limit: int | None = None) -> "pandas.DataFrame":
        """All rows as one DataFrame (error past ``limit`` rows). >>> ds.to_pandas()"""
        from ._internal.batch import block_to_batch
        from ._internal.block import concat
        from ._internal.run import fetch_blocks
        blocks = list(fetch_blocks(self._iter_bundles()))
        block = concat(blocks)
        if limit is not None and block.num_rows > limit:
            raise ValueError(f"the dataset has {block.num_rows} rows, more than limit={limit}; "
                             "raise the limit or call ds.limit(n).to_pandas()")
        return block_to_batch(block, "pandas")

    def to_arrow_refs(self) -> list[Any]:
        """Refs to the blocks (``pyarrow.Table``s). >>> ember.get(ds.to_arrow_refs())"""
        return [ref for b in self.materialize()._bundles() for ref in b.refs]

    def to_pandas_refs(self) -> list[Any]:
        """Refs to one DataFrame per block."""
        from ._internal.exchange import convert_refs
        return convert_refs(self.to_arrow_refs(), "pandas", None)

    def to_numpy_refs(self, *, column: str | None = None) -> list[Any]:
        """Refs to one dict of arrays (or one array, for ``column``) per block."""
        from ._internal.exchange import convert_refs
        return convert_refs(self.to_arrow_refs(), "numpy", column)

    # -- writing ---------------------------------------------------------------------------
    def write_datasink(self, datasink: "Datasink", *,
                       ray_remote_args: dict[str, Any] | None = None,
                       concurrency: int | None = None) -> None:
        """Write every block with ``datasink`` (one ``write`` call per write task)."""
        import pickle

        from ._internal.run import fetch_blocks
        from .datasource.datasource import Datasink
        if not isinstance(datasink, Datasink):
            raise TypeError(f"write_datasink expects a Datasink, got {type(datasink).__name__}")
        datasink.on_write_start()
        try:
            plan = Write(datasink=datasink, ray_remote_args=dict(ray_remote_args or {}),
                         concurrency=concurrency, inputs=(self._plan,))
            written = self._with(plan)
            results = [pickle.loads(block.column("write_result")[0].as_py())
                       for block in fetch_blocks(written._iter_bundles())
                       if block.num_rows]
            self._last_stats = written._last_stats
        except Exception as e:
            datasink.on_write_failed(e)
            raise
        datasink.on_write_complete(results)

    def write_parquet(self, path: str, *, ray_remote_args: dict[str, Any] | None = None,
                      concurrency: int | None = None, **kwargs: Any) -> None:
        """Write Parquet files under ``path``. >>> ds.write_parquet("/tmp/out")"""
        from ._internal.datasource.parquet_datasink import ParquetDatasink
        self.write_datasink(ParquetDatasink(path, **kwargs), ray_remote_args=ray_remote_args,
                            concurrency=concurrency)

    def write_csv(self, path: str, *, ray_remote_args: dict[str, Any] | None = None,
                  concurrency: int | None = None, **kwargs: Any) -> None:
        """Write CSV files under ``path``. >>> ds.write_csv("/tmp/out")"""
        from ._internal.datasource.csv_datasink import CSVDatasink
        self.write_datasink(CSVDatasink(path, **kwargs), ray_remote_args=ray_remote_args,
                            concurrency=concurrency)

    def write_json(self, path: str, *, ray_remote_args: dict[str, Any] | None = None,
                   concurrency: int | None = None, **kwargs: Any) -> None:
        """Write JSON-lines files under ``path``. >>> ds.write_json("/tmp/out")"""
        from ._internal.datasource.json_datasink import JSONDatasink
        self.write_datasink(JSONDatasink(path, **kwargs), ray_remote_args=ray_remote_args,
                            concurrency=concurrency)



def _walk(op: LogicalOp) -> list[LogicalOp]:
    from ._internal.logical import walk
    return walk(op)


def _count_from_metadata(op: LogicalOp) -> int | None:
    """Row count without executing, when only metadata is needed (else None)."""
    if isinstance(op, InputData):
        return sum(b.num_rows for b in op.bundles)
    if isinstance(op, MapOp) and op.row_preserving:
        return _count_from_metadata(op.inputs[0])
    if isinstance(op, AllToAll) and op.preserves_rows:
        return _count_from_metadata(op.inputs[0])
    if isinstance(op, Limit):
        below = _count_from_metadata(op.inputs[0])
        return None if below is None else min(below, op.limit)
    if isinstance(op, Union):
        counts = [_count_from_metadata(i) for i in op.inputs]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)
    if isinstance(op, Read) and op.limit is None and op.parallelism is not None:
        tasks = op.datasource.get_read_tasks(max(1, op.parallelism))
        rows = [t.metadata.num_rows for t in tasks]
        if all(r is not None for r in rows):
            return sum(r or 0 for r in rows)
    return None


class MaterializedDataset(Dataset):
    """A dataset whose blocks are computed and held in the object store."""

    def _bundles(self) -> tuple[Any, ...]:
        """The RefBundles of the blocks."""
        assert isinstance(self._plan, InputData)
        return self._plan.bundles

    def __repr__(self) -> str:
        return f"MaterializedDataset(num_blocks={self.num_blocks()}, num_rows={self.count()})"

    def num_blocks(self) -> int:
        return sum(len(b.blocks) for b in self._bundles())

    def materialize(self) -> "MaterializedDataset":
        return self


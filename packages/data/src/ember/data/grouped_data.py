"""``GroupedData``: the result of ``Dataset.groupby(key)``.

>>> ds.groupby("k").count().take_all()                 # [{'k': ..., 'count()': ...}, ...]
>>> ds.groupby(["a", "b"]).mean("v")
>>> ds.groupby("k").map_groups(lambda g: {"k": g["k"][:1], "n": [len(g["k"])]})

Groups come out sorted by key. Rows are range-partitioned by key (sampled boundaries),
so every group is whole inside one partition, and each partition is aggregated by one
task with pyarrow's group-by (or the AggregateFn's own functions).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ._internal.transforms import BatchStage

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["GroupedData"]


class _GroupStage(BatchStage):
    """Calls the UDF once per group of a block sorted by the group keys."""

    def __init__(self, fn: Any, keys: list[str] | None, **kwargs: Any) -> None:
        super().__init__(fn, batch_size=None, **kwargs)
        self.keys = keys

    def apply(self, blocks: Iterator[Any], ctx: Any) -> Iterator[Any]:
        from ._internal.batch import batch_to_block, block_to_batch
        from ._internal.exchange import _group_starts
        self.init()
        for block in blocks:
            if not block.num_rows:
                continue
            if self.keys:
                starts = list(_group_starts(block, self.keys)) + [block.num_rows]
            else:
                starts = [0, block.num_rows]
            for s, e in zip(starts[:-1], starts[1:]):
                batch = block_to_batch(block.slice(int(s), int(e - s)), self.batch_format)
                if self.batch_format in ("default", "numpy"):
                    batch = {k: (v if v.flags.writeable else v.copy()) for k, v in batch.items()}
                out = self._callable(batch, *self.fn_args, **self.fn_kwargs)
                if out is None:
                    raise ValueError(f"{self.name} UDF returned None; it must return a batch "
                                     "(pyarrow.Table, pandas.DataFrame or dict of arrays)")
                yield batch_to_block(out, what=self.name)


class GroupedData:
    """A dataset grouped by key columns (``None``: one group of every row)."""

    def __init__(self, dataset: "Dataset", key: str | Sequence[str] | None) -> None:
        self._dataset = dataset
        if key is None:
            self._keys: list[str] | None = None
        else:
            self._keys = [key] if isinstance(key, str) else list(key)
            if not self._keys:
                raise ValueError("groupby needs at least one key column (or None)")

    def __repr__(self) -> str:
        return f"GroupedData(key={self._keys})"

    def aggregate(self, *aggs: Any) -> "Dataset":
        """One row per group: the keys, then one column per aggregation (by its name)."""
        from ._internal import exchange
        from .aggregate import AggregateFn
        if not aggs:
            raise ValueError("aggregate needs at least one aggregation, e.g. Count()")
        for agg in aggs:
            if not isinstance(agg, AggregateFn):
                raise TypeError(f"expected ember.data.aggregate functions, got {agg!r}")
        names = [a.name for a in aggs]
        if len(set(names)) != len(names):
            raise ValueError(f"aggregations need distinct names (alias_name=...), got {names}")
        label = f"Aggregate({', '.join(names)})"
        return self._dataset._all_to_all(exchange.aggregate_fn(self._keys, list(aggs)), label,
                                         preserves_rows=False)

    def _per_column(self, cls_name: str, on: str | list[str] | None, **kw: Any) -> "Dataset":
        from . import aggregate as A
        cls = getattr(A, cls_name)
        if on is None:
            keys = set(self._keys or [])
            on = [c for c in self._dataset.columns() if c not in keys]
        cols = [on] if isinstance(on, str) else list(on)
        return self.aggregate(*(cls(c, **kw) for c in cols))

    def count(self) -> "Dataset":
        """Rows per group, in column ``count()``."""
        from .aggregate import Count
        return self.aggregate(Count())

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> "Dataset":
        """``sum(col)`` per group."""
        return self._per_column("Sum", on, ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> "Dataset":
        """``min(col)`` per group."""
        return self._per_column("Min", on, ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> "Dataset":
        """``max(col)`` per group."""
        return self._per_column("Max", on, ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> "Dataset":
        """``mean(col)`` per group."""
        return self._per_column("Mean", on, ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1,
            ignore_nulls: bool = True) -> "Dataset":
        """``std(col)`` per group (``ddof=1``: sample standard deviation)."""
        return self._per_column("Std", on, ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(self, fn: Any, *, compute: Any = None, batch_format: str | None = "default",
                   fn_args: Sequence[Any] | None = None, fn_kwargs: dict[str, Any] | None = None,
                   fn_constructor_args: Sequence[Any] | None = None,
                   fn_constructor_kwargs: dict[str, Any] | None = None,
                   num_cpus: float | None = None, num_gpus: float | None = None,
                   concurrency: int | tuple[int, int] | None = None,
                   **ray_remote_args: Any) -> "Dataset":
        """Call ``fn(batch)`` once per group (the whole group in one batch).

        >>> ds.groupby("k").map_groups(lambda g: {"k": g["k"][:1], "total": [g["v"].sum()]})
        """
        from ._internal.batch import check_batch_format
        from ._internal.logical import MapOp
        from ._internal.transforms import MapTransformer
        from .dataset import _compute_for, _fn_name, _remote_args
        fmt = check_batch_format(batch_format)
        pool = _compute_for(fn, compute, concurrency, "map_groups")
        grouped = (self._dataset.sort(self._keys) if self._keys
                   else self._dataset.repartition(1))
        name = f"MapGroups({_fn_name(fn)})"
        stage = _GroupStage(fn, self._keys, batch_format=fmt, fn_args=fn_args or (),
                            fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args or (),
                            fn_constructor_kwargs=fn_constructor_kwargs, name=name)
        return grouped._with(MapOp(transformer=MapTransformer([stage]), compute=pool,
                                   ray_remote_args=_remote_args(num_cpus, num_gpus,
                                                                ray_remote_args),
                                   label=name, inputs=(grouped._plan,)))

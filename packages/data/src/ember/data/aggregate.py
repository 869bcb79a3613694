"""Aggregations for ``Dataset.aggregate`` and ``groupby(...).aggregate`` (Ray's names).

>>> from ember.data.aggregate import Count, Mean, AggregateFn
>>> ds.groupby("k").aggregate(Count(), Mean("v")).take_all()
>>> ds.aggregate(AggregateFn(init=lambda k: 0, accumulate_row=lambda a, r: a + r["v"],
...                          merge=lambda a, b: a + b, name="total"))
{'total': 4950}

An ``AggregateFn`` is computed in two phases: ``accumulate_block`` (or
``accumulate_row``) folds the rows of each block into an accumulator, ``merge`` combines
accumulators, ``finalize`` turns the last one into the result.
"""
from __future__ import annotations

import math
from typing import Any, Callable

__all__ = ["AggregateFn", "AbsMax", "Count", "Max", "Mean", "Min", "Std", "Sum", "Unique"]


class AggregateFn:
    """A user-defined aggregation.

    ``init(key) -> acc``; ``accumulate_row(acc, row) -> acc`` or
    ``accumulate_block(acc, block: pyarrow.Table) -> acc``; ``merge(acc, acc) -> acc``;
    ``finalize(acc) -> value`` (default: the accumulator); ``name`` is the output column.
    """

    def __init__(self, init: Callable[[Any], Any], merge: Callable[[Any, Any], Any],
                 accumulate_row: Callable[[Any, Any], Any] | None = None,
                 accumulate_block: Callable[[Any, Any], Any] | None = None,
                 finalize: Callable[[Any], Any] | None = None,
                 name: str | None = None) -> None:
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("AggregateFn needs exactly one of accumulate_row or "
                             "accumulate_block")
        self.init = init
        self.merge = merge
        self.accumulate_row = accumulate_row
        self._accumulate_block = accumulate_block
        self.finalize = finalize if finalize is not None else (lambda acc: acc)
        self.name = name if name is not None else "AggregateFn()"

    def accumulate_block(self, acc: Any, block: Any) -> Any:
        """Fold a whole block (a ``pyarrow.Table``) into ``acc``."""
        if self._accumulate_block is not None:
            return self._accumulate_block(acc, block)
        from ._internal.block import rows_of
        assert self.accumulate_row is not None
        for row in rows_of(block):
            acc = self.accumulate_row(acc, row)
        return acc

    # For the vectorized group-by path: (column, pyarrow aggregate name, options) or None.
    def _arrow_spec(self) -> tuple[Any, str, Any] | None:
        return None

    def _check_columns(self, names: list[str]) -> None:
        on = getattr(self, "on", None)
        if on is not None and on not in names:
            raise KeyError(f"{self.name}: no column {on!r}; the dataset has {names}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _column(block: Any, on: str) -> Any:
    return block.column(on)


class Count(AggregateFn):
    """Number of rows (``count()``)."""

    def __init__(self, on: str | None = None, ignore_nulls: bool = False,
                 alias_name: str | None = None) -> None:
        self.on = on
        self.ignore_nulls = ignore_nulls

        def block_count(acc: int, block: Any) -> int:
            if on is not None and ignore_nulls:
                return acc + len(_column(block, on)) - _column(block, on).null_count
            return acc + block.num_rows

        super().__init__(init=lambda k: 0, merge=lambda a, b: a + b,
                         accumulate_block=block_count,
                         name=alias_name or (f"count({on})" if on else "count()"))

    def _arrow_spec(self) -> tuple[Any, str, Any] | None:
        import pyarrow.compute as pc
        if self.on is None:
            return ([], "count_all", None)
        return (self.on, "count", pc.CountOptions(mode="only_valid" if self.ignore_nulls
                                                  else "all"))


class _Reduce(AggregateFn):
    """Sum/Min/Max: accumulator ``(value or None, saw_null)``."""

    _arrow_name = ""

    def __init__(self, on: str, ignore_nulls: bool, alias_name: str | None, label: str,
                 block_fn: Callable[[Any], Any], combine: Callable[[Any, Any], Any]) -> None:
        if not isinstance(on, str):
            raise TypeError(f"{label}: on must be a column name, got {on!r}")
        self.on = on
        self.ignore_nulls = ignore_nulls

        def accumulate(acc: tuple[Any, bool], block: Any) -> tuple[Any, bool]:
            col = _column(block, on)
            value, saw_null = acc
            saw_null = saw_null or col.null_count > 0
            if len(col) - col.null_count:
                part = block_fn(col)
                value = part if value is None else combine(value, part)
            return value, saw_null

        def merge(a: tuple[Any, bool], b: tuple[Any, bool]) -> tuple[Any, bool]:
            if a[0] is None:
                return b[0], a[1] or b[1]
            if b[0] is None:
                return a[0], a[1] or b[1]
            return combine(a[0], b[0]), a[1] or b[1]

        def finalize(acc: tuple[Any, bool]) -> Any:
            value, saw_null = acc
            return None if (saw_null and not ignore_nulls) else value

        super().__init__(init=lambda k: (None, False), merge=merge, accumulate_block=accumulate,
                         finalize=finalize, name=alias_name or f"{label}({on})")

    def _arrow_spec(self) -> tuple[Any, str, Any] | None:
        import pyarrow.compute as pc
        return (self.on, self._arrow_name,
                pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1))


class Sum(_Reduce):
    """Sum of a column (None when there is no value)."""

    _arrow_name = "sum"

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        import pyarrow.compute as pc
        super().__init__(on, ignore_nulls, alias_name, "sum",
                         lambda col: pc.sum(col).as_py(), lambda a, b: a + b)


class Min(_Reduce):
    """Minimum of a column."""

    _arrow_name = "min"

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        import pyarrow.compute as pc
        super().__init__(on, ignore_nulls, alias_name, "min",
                         lambda col: pc.min(col).as_py(), min)


class Max(_Reduce):
    """Maximum of a column."""

    _arrow_name = "max"

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        import pyarrow.compute as pc
        super().__init__(on, ignore_nulls, alias_name, "max",
                         lambda col: pc.max(col).as_py(), max)


class AbsMax(_Reduce):
    """Maximum absolute value of a column."""

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        import pyarrow.compute as pc
        super().__init__(on, ignore_nulls, alias_name, "abs_max",
                         lambda col: pc.max(pc.abs(col)).as_py(), max)

    def _arrow_spec(self) -> tuple[Any, str, Any] | None:
        return None


class Mean(AggregateFn):
    """Mean of a column; accumulator ``(sum, count, saw_null)``."""

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        import pyarrow.compute as pc
        self.on = on
        self.ignore_nulls = ignore_nulls

        def accumulate(acc: tuple[float, int, bool], block: Any) -> tuple[float, int, bool]:
            col = _column(block, on)
            n = len(col) - col.null_count
            total = pc.sum(col).as_py() if n else 0
            return acc[0] + total, acc[1] + n, acc[2] or col.null_count > 0

        def finalize(acc: tuple[float, int, bool]) -> Any:
            if acc[1] == 0 or (acc[2] and not ignore_nulls):
                return None
            return acc[0] / acc[1]

        super().__init__(init=lambda k: (0, 0, False),
                         merge=lambda a, b: (a[0] + b[0], a[1] + b[1], a[2] or b[2]),
                         accumulate_block=accumulate, finalize=finalize,
                         name=alias_name or f"mean({on})")

    def _arrow_spec(self) -> tuple[Any, str, Any] | None:
        import pyarrow.compute as pc
        return (self.on, "mean", pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls,
                                                           min_count=1))


class Std(AggregateFn):
    """Standard deviation (``ddof=1``: sample), merged with Chan's parallel algorithm."""

    def __init__(self, on: str, ddof: int = 1, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        import numpy as np
        self.on = on
        self.ddof = ddof
        self.ignore_nulls = ignore_nulls

        def accumulate(acc: tuple[int, float, float, bool], block: Any) -> Any:
            col = _column(block, on)
            values = col.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
            part = (len(values), float(values.mean()) if len(values) else 0.0,
                    float(((values - values.mean()) ** 2).sum()) if len(values) else 0.0,
                    col.null_count > 0)
            return merge(acc, part)

        def merge(a: Any, b: Any) -> Any:
            n = a[0] + b[0]
            if n == 0:
                return (0, 0.0, 0.0, a[3] or b[3])
            delta = b[1] - a[1]
            mean = a[1] + delta * b[0] / n
            m2 = a[2] + b[2] + delta * delta * a[0] * b[0] / n
            return (n, mean, m2, a[3] or b[3])

        def finalize(acc: Any) -> Any:
            n, _, m2, saw_null = acc
            if n - ddof <= 0 or (saw_null and not ignore_nulls):
                return None
            return math.sqrt(m2 / (n - ddof))

        super().__init__(init=lambda k: (0, 0.0, 0.0, False), merge=merge,
                         accumulate_block=accumulate, finalize=finalize,
                         name=alias_name or f"std({on})")

    def _arrow_spec(self) -> tuple[Any, str, Any] | None:
        import pyarrow.compute as pc
        return (self.on, "stddev", pc.VarianceOptions(ddof=self.ddof,
                                                      skip_nulls=self.ignore_nulls,
                                                      min_count=self.ddof + 1))


class Unique(AggregateFn):
    """Distinct values of a column (as a list)."""

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        import pyarrow.compute as pc
        self.on = on

        def accumulate(acc: set[Any], block: Any) -> set[Any]:
            values = pc.unique(_column(block, on)).to_pylist()
            return acc | {v for v in values if not (ignore_nulls and v is None)}

        super().__init__(init=lambda k: set(), merge=lambda a, b: a | b,
                         accumulate_block=accumulate, finalize=lambda acc: list(acc),
                         name=alias_name or f"unique({on})")

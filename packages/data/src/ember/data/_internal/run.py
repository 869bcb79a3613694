"""Running a dataset's plan: the glue between ``Dataset`` and the executor."""
from __future__ import annotations

from typing import Any, Iterator

import ember

from ..context import DataContext
from . import block as B
from .bundle import RefBundle
from .executor import StreamingExecutor
from .logical import InputData, LogicalOp
from .planner import plan as make_plan
from .session import check_session
from .stats import DatasetStats

__all__ = ["BundleStream", "execute", "fetch_blocks", "materialize_bundles"]


class BundleStream:
    """An iterator over an execution's output bundles; ``stop()`` ends it from any thread."""

    def __init__(self, bundles: Iterator[RefBundle],
                 executor: StreamingExecutor | None = None) -> None:
        self._bundles = bundles
        self._executor = executor

    def __iter__(self) -> "BundleStream":
        return self

    def __next__(self) -> RefBundle:
        return next(self._bundles)

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def close(self) -> None:
        close = getattr(self._bundles, "close", None)
        if close is not None:
            close()


def execute(logical: LogicalOp, session: str | None, *,
            on_stats: Any = None) -> BundleStream:
    """Start streaming the output bundles of ``logical`` (blocks stay in the object store).

    ``on_stats(DatasetStats)`` is called at once, with the stats object the executor
    fills in as it runs.
    """
    check_session(session)
    if isinstance(logical, InputData):
        if on_stats is not None:
            on_stats(DatasetStats())
        return BundleStream(iter(logical.bundles))
    ctx = DataContext.get_current()
    cpus = float(ember.cluster_resources().get("CPU", 1.0))
    sink = make_plan(logical, cpus=cpus, ctx=ctx)
    executor = StreamingExecutor(sink, ctx, name=logical.name)
    if on_stats is not None:
        on_stats(executor.stats)
    return BundleStream(executor.iter_bundles(), executor)


def materialize_bundles(logical: LogicalOp, session: str | None,
                        on_stats: Any = None) -> list[RefBundle]:
    return list(execute(logical, session, on_stats=on_stats))


def fetch_blocks(bundles: Iterator[RefBundle]) -> Iterator[B.Block]:
    """The blocks of each bundle, read from the object store one at a time."""
    for bundle in bundles:
        for ref, _ in bundle.blocks:
            yield ember.get(ref)

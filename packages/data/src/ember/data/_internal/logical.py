"""The logical plan: what a Dataset computes, as a DAG of operators (no execution here).

Each ``Dataset`` method appends one node. The optimizer (``optimizer.py``) rewrites the
DAG and the planner (``planner.py``) turns it into physical operators.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .transforms import MapTransformer

__all__ = ["AllToAll", "InputData", "Join", "Limit", "LogicalOp", "MapOp", "Read", "Union",
           "Write", "Zip", "TaskPool", "ActorPool", "walk"]


@dataclass(frozen=True)
class TaskPool:
    """Run a map operator as stateless tasks; ``size`` caps how many run at once."""

    size: int | None = None


@dataclass(frozen=True)
class ActorPool:
    """Run a map operator on a pool of between ``min_size`` and ``max_size`` actors."""

    min_size: int = 1
    max_size: int = 1
    max_tasks_in_flight_per_actor: int = 2


class LogicalOp:
    """A node of the logical plan; ``inputs`` are its upstream nodes."""

    inputs: tuple["LogicalOp", ...] = ()

    @property
    def name(self) -> str:
        return type(self).__name__

    def with_inputs(self, *inputs: "LogicalOp") -> "LogicalOp":
        import dataclasses
        return dataclasses.replace(self, inputs=tuple(inputs))  # type: ignore[type-var]


@dataclass(frozen=True, eq=False)
class InputData(LogicalOp):
    """Blocks that already exist (from_items, from_pandas, a materialized dataset)."""

    bundles: tuple[Any, ...] = ()
    inputs: tuple[LogicalOp, ...] = ()
    label: str = "InputData"

    @property
    def name(self) -> str:
        return self.label


@dataclass(frozen=True, eq=False)
class Read(LogicalOp):
    """Read a Datasource; ``limit`` / projection get pushed in by the optimizer."""

    datasource: Any = None
    parallelism: int = -1
    ray_remote_args: dict[str, Any] = field(default_factory=dict)
    concurrency: int | None = None
    limit: int | None = None
    inputs: tuple[LogicalOp, ...] = ()

    @property
    def name(self) -> str:
        return str(self.datasource.get_name())


@dataclass(frozen=True, eq=False)
class MapOp(LogicalOp):
    """A one-to-one (per block) transformation: map, map_batches, filter, projections, ...

    ``row_preserving``: same rows out as in (map, projections), so a limit can move
    above it. ``projection``: the columns kept, when this is a plain select_columns.
    """

    transformer: MapTransformer = field(default_factory=lambda: MapTransformer([]))
    compute: TaskPool | ActorPool = field(default_factory=TaskPool)
    ray_remote_args: dict[str, Any] = field(default_factory=dict)
    min_rows_per_bundle: int | None = None
    row_preserving: bool = False
    projection: tuple[str, ...] | None = None
    label: str = "Map"
    inputs: tuple[LogicalOp, ...] = ()

    @property
    def name(self) -> str:
        return self.label


@dataclass(frozen=True, eq=False)
class Write(LogicalOp):
    datasink: Any = None
    ray_remote_args: dict[str, Any] = field(default_factory=dict)
    concurrency: int | None = None
    inputs: tuple[LogicalOp, ...] = ()

    @property
    def name(self) -> str:
        return str(self.datasink.get_name())


@dataclass(frozen=True, eq=False)
class Limit(LogicalOp):
    limit: int = 0
    inputs: tuple[LogicalOp, ...] = ()


@dataclass(frozen=True, eq=False)
class AllToAll(LogicalOp):
    """Needs every input block before producing output (shuffle, sort, repartition, ...).

    ``bulk_fn(bundles, ctx) -> bundles`` runs in the driver side of the executor and
    launches its own tasks. ``preserves_rows``: the number of rows is unchanged.
    """

    bulk_fn: Callable[..., Any] = field(default=lambda bundles, ctx: bundles)
    label: str = "AllToAll"
    preserves_rows: bool = True
    num_outputs: int | None = None
    inputs: tuple[LogicalOp, ...] = ()

    @property
    def name(self) -> str:
        return self.label


@dataclass(frozen=True, eq=False)
class Union(LogicalOp):
    inputs: tuple[LogicalOp, ...] = ()


@dataclass(frozen=True, eq=False)
class Zip(LogicalOp):
    inputs: tuple[LogicalOp, ...] = ()


@dataclass(frozen=True, eq=False)
class Join(LogicalOp):
    """Hash join of two inputs on key columns (pyarrow's join in each partition)."""

    join_type: str = "inner"
    left_keys: tuple[str, ...] = ()
    right_keys: tuple[str, ...] = ()
    left_suffix: str | None = None
    right_suffix: str | None = None
    num_partitions: int | None = None
    inputs: tuple[LogicalOp, ...] = ()


def walk(op: LogicalOp) -> list[LogicalOp]:
    """Every node of the DAG under ``op``, inputs before the nodes that use them."""
    seen: dict[int, LogicalOp] = {}

    def visit(node: LogicalOp) -> None:
        if id(node) in seen:
            return
        for parent in node.inputs:
            visit(parent)
        seen[id(node)] = node

    visit(op)
    return list(seen.values())


def describe(op: LogicalOp) -> str:
    """``Read -> Map -> Limit`` style summary of a linear plan (DAGs nested in brackets)."""
    if not op.inputs:
        return op.name
    if len(op.inputs) == 1:
        return f"{describe(op.inputs[0])} -> {op.name}"
    return f"[{', '.join(describe(i) for i in op.inputs)}] -> {op.name}"


def sources(ops: Sequence[LogicalOp]) -> list[LogicalOp]:
    return [op for op in ops if not op.inputs]

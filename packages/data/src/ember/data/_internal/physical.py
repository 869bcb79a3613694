"""Physical operators: what the streaming executor runs (descriptions only, no state).

``planner.py`` builds these from the optimized logical plan; ``executor.py`` keeps
the runtime state of each one (queues, tasks in flight, actors).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .logical import ActorPool, TaskPool
from .transforms import MapTransformer

__all__ = ["AllToAllPhys", "InputBuffer", "LimitPhys", "MapPhys", "PhysicalOp", "UnionPhys",
           "topo_order"]


@dataclass(eq=False)
class PhysicalOp:
    name: str
    inputs: list["PhysicalOp"] = field(default_factory=list)


@dataclass(eq=False)
class InputBuffer(PhysicalOp):
    """A source of ready work items: RefBundles (existing blocks) or ReadTasks."""

    items: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class MapPhys(PhysicalOp):
    """One task (or actor call) per input bundle, running ``transformer`` over it.

    ``min_rows_per_bundle``: small input blocks are grouped until a task has at least
    this many rows (map_batches' batch_size), so batches can span blocks.
    """

    transformer: MapTransformer = field(default_factory=lambda: MapTransformer([]))
    compute: TaskPool | ActorPool = field(default_factory=TaskPool)
    remote_args: dict[str, Any] = field(default_factory=dict)
    min_rows_per_bundle: int | None = None
    is_read: bool = False

    @property
    def num_cpus(self) -> float:
        default = 1.0 if isinstance(self.compute, TaskPool) else 1.0
        value = self.remote_args.get("num_cpus")
        return float(default if value is None else value)

    @property
    def num_gpus(self) -> float:
        return float(self.remote_args.get("num_gpus") or 0)


@dataclass(eq=False)
class LimitPhys(PhysicalOp):
    """Passes through the first ``limit`` rows (slicing the last block), then stops upstream."""

    limit: int = 0


@dataclass(eq=False)
class AllToAllPhys(PhysicalOp):
    """Waits for all of every input, then ``bulk_fn(list of each input's bundles, ctx)``."""

    bulk_fn: Callable[..., Any] = field(default=lambda inputs, ctx: inputs[0])


@dataclass(eq=False)
class UnionPhys(PhysicalOp):
    """Outputs every input's bundles (in input order when order is preserved)."""


def topo_order(sink: PhysicalOp) -> list[PhysicalOp]:
    """Every operator under ``sink``, inputs first; the sink last."""
    seen: dict[int, PhysicalOp] = {}

    def visit(op: PhysicalOp) -> None:
        if id(op) in seen:
            return
        for parent in op.inputs:
            visit(parent)
        seen[id(op)] = op

    visit(sink)
    return list(seen.values())


def describe(sink: PhysicalOp) -> str:
    """``InputBuffer -> ReadRange->MapBatches(f) -> Limit`` (branches in brackets)."""
    def one(op: PhysicalOp) -> str:
        if not op.inputs:
            return op.name
        if len(op.inputs) == 1:
            return f"{one(op.inputs[0])} -> {op.name}"
        return f"[{', '.join(one(i) for i in op.inputs)}] -> {op.name}"
    return one(sink)

"""Logical plan -> physical plan (pure: cluster facts come in as arguments).

``plan(logical, cpus=..., ctx=...)`` optimizes the logical DAG, maps every node to a
physical operator (a read becomes an input buffer of ReadTasks feeding a map
operator that runs them), then fuses chains of map operators so that e.g.
``read -> map_batches -> filter`` runs as one task per input.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from .logical import (ActorPool, AllToAll, InputData, Join, Limit, LogicalOp, MapOp, Read,
                      TaskPool, Union, Write, Zip)
from .optimizer import optimize
from .physical import (AllToAllPhys, InputBuffer, LimitPhys, MapPhys, PhysicalOp, UnionPhys,
                       topo_order)
from .transforms import LimitStage, MapTransformer, ReadStage, WriteStage

__all__ = ["autodetect_parallelism", "can_fuse", "fuse", "plan", "to_physical"]


def plan(logical: LogicalOp, *, cpus: float, ctx: Any) -> PhysicalOp:
    """Optimize, translate and fuse; returns the sink of the physical DAG."""
    return fuse(to_physical(optimize(logical), cpus=cpus, ctx=ctx))


def autodetect_parallelism(parallelism: int, estimated_bytes: int | None, *, cpus: float,
                           ctx: Any) -> int:
    """How many read tasks to ask for (Ray's rule).

    Enough blocks to keep every CPU busy twice over, at least ``read_op_min_num_blocks``
    unless that would make blocks smaller than ``target_min_block_size``, and enough
    that no block exceeds ``target_max_block_size``.

    >>> autodetect_parallelism(-1, 1000, cpus=2, ctx=DataContext())
    4
    """
    if parallelism and parallelism > 0:
        return int(parallelism)
    size = estimated_bytes or 0
    min_safe = max(1, math.ceil(size / ctx.target_max_block_size))
    max_reasonable = max(1, size // ctx.target_min_block_size)
    return int(max(min(ctx.read_op_min_num_blocks, max_reasonable), min_safe,
                   max(1, int(cpus)) * 2))


def to_physical(logical: LogicalOp, *, cpus: float, ctx: Any) -> PhysicalOp:
    memo: dict[int, PhysicalOp] = {}

    def visit(op: LogicalOp) -> PhysicalOp:
        if id(op) not in memo:
            inputs = [visit(i) for i in op.inputs]
            memo[id(op)] = _translate(op, inputs, cpus=cpus, ctx=ctx)
        return memo[id(op)]

    return visit(logical)


def _translate(op: LogicalOp, inputs: list[PhysicalOp], *, cpus: float,
               ctx: Any) -> PhysicalOp:
    if isinstance(op, InputData):
        return InputBuffer(name=op.name, items=list(op.bundles))
    if isinstance(op, Read):
        source = op.datasource
        if op.limit is not None and source.supports_limit_pushdown():
            source = source.apply_limit(op.limit)
        n = autodetect_parallelism(op.parallelism, source.estimate_inmemory_data_size(),
                                   cpus=cpus, ctx=ctx)
        tasks = list(source.get_read_tasks(n))
        stages: list[Any] = [ReadStage()]
        if op.limit is not None:
            stages.append(LimitStage(op.limit))
        buffer = InputBuffer(name="Input", items=tasks)
        return MapPhys(name=op.name, inputs=[buffer], transformer=MapTransformer(stages),
                       compute=TaskPool(op.concurrency), remote_args=dict(op.ray_remote_args),
                       is_read=True)
    if isinstance(op, MapOp):
        return MapPhys(name=op.name, inputs=inputs, transformer=op.transformer,
                       compute=op.compute, remote_args=dict(op.ray_remote_args),
                       min_rows_per_bundle=op.min_rows_per_bundle)
    if isinstance(op, Write):
        distributed = getattr(op.datasink, "supports_distributed_writes", True)
        return MapPhys(name=op.name, inputs=inputs,
                       transformer=MapTransformer([WriteStage(op.datasink)]),
                       compute=TaskPool(op.concurrency), remote_args=dict(op.ray_remote_args),
                       # A sink that cannot write in parallel gets every block in one task.
                       min_rows_per_bundle=None if distributed else 2**62)
    if isinstance(op, Limit):
        return LimitPhys(name=f"Limit[{op.limit}]", inputs=inputs, limit=op.limit)
    if isinstance(op, AllToAll):
        single: Callable[..., Any] = op.bulk_fn
        return AllToAllPhys(name=op.name, inputs=inputs,
                            bulk_fn=lambda ins, c, _f=single: _f(ins[0], c))
    if isinstance(op, Union):
        return UnionPhys(name="Union", inputs=inputs)
    if isinstance(op, Zip):
        from .join import zip_bundles
        return AllToAllPhys(name="Zip", inputs=inputs, bulk_fn=zip_bundles)
    if isinstance(op, Join):
        from .join import join_fn
        return AllToAllPhys(name=f"Join[{op.join_type}]", inputs=inputs,
                            bulk_fn=join_fn(op))
    raise TypeError(f"no physical operator for {type(op).__name__}")


_DEFAULT_ARGS = {"num_cpus": 1}

# The block size a fused read -> ... -> write task reads in (see _bounded_reads).
WRITE_READ_BLOCK_BYTES = 16 * 1024 * 1024


def _normalized(args: dict[str, Any]) -> dict[str, Any]:
    merged = {**_DEFAULT_ARGS, **{k: v for k, v in args.items() if v is not None}}
    return merged


def can_fuse(up: PhysicalOp, down: PhysicalOp, consumers: int) -> bool:
    """Whether ``down`` can run in the same task (or actor call) as ``up``.

    Both must be map operators, ``up`` feeding only ``down``. Task -> task needs equal
    resources; task -> actor pool is allowed for plain (non-read) tasks with default
    resources, as the actor then does both steps. Reads never move into actors, so an
    actor pool can never starve the reads that feed it.
    """
    if not (isinstance(up, MapPhys) and isinstance(down, MapPhys)) or consumers != 1:
        return False
    if any(isinstance(s, WriteStage) for s in up.transformer.stages):
        return False
    if isinstance(up.compute, ActorPool):
        return False
    if isinstance(down.compute, TaskPool):
        return _normalized(up.remote_args) == _normalized(down.remote_args)
    return not up.is_read and _normalized(up.remote_args) == _DEFAULT_ARGS


def fuse(sink: PhysicalOp) -> PhysicalOp:
    """Fuse chains of compatible map operators, bottom-up; returns the new sink."""
    order = topo_order(sink)
    consumers: dict[int, int] = {id(op): 0 for op in order}
    for op in order:
        for parent in op.inputs:
            consumers[id(parent)] += 1
    replaced: dict[int, PhysicalOp] = {}
    for op in order:
        op.inputs = [replaced.get(id(p), p) for p in op.inputs]
        if len(op.inputs) == 1 and can_fuse(op.inputs[0], op, consumers[id(op.inputs[0])]):
            up = op.inputs[0]
            assert isinstance(up, MapPhys) and isinstance(op, MapPhys)
            fused = MapPhys(
                name=f"{up.name}->{op.name}", inputs=up.inputs,
                transformer=_bounded_reads(up.transformer.fused_with(op.transformer)),
                compute=_fused_compute(up.compute, op.compute),
                remote_args=dict(op.remote_args) if isinstance(op.compute, ActorPool)
                else dict(up.remote_args),
                # Inputs are grouped for the larger batch (read tasks by their rows too).
                min_rows_per_bundle=_max_opt(up.min_rows_per_bundle, op.min_rows_per_bundle),
                is_read=up.is_read)
            replaced[id(op)] = fused
            consumers[id(fused)] = consumers[id(op)]
    return replaced.get(id(sink), sink)


def _bounded_reads(transformer: MapTransformer) -> MapTransformer:
    """A task that reads and ends in a write reads blocks of at most
    ``WRITE_READ_BLOCK_BYTES``: no block of it leaves the task, so larger ones would
    only make its memory grow with the rows it reads (each read task reads 1/200th of
    the input, ``read_op_min_num_blocks``)."""
    stages = transformer.stages
    if not (stages and isinstance(stages[0], ReadStage)
            and any(isinstance(s, WriteStage) for s in stages)):
        return transformer
    return MapTransformer([ReadStage(block_bytes=WRITE_READ_BLOCK_BYTES), *stages[1:]])


def _fused_compute(up: TaskPool | ActorPool, down: TaskPool | ActorPool) -> TaskPool | ActorPool:
    if isinstance(down, ActorPool):
        return down
    assert isinstance(up, TaskPool)
    sizes = [s for s in (up.size, down.size) if s is not None]
    return TaskPool(min(sizes) if sizes else None)


def _max_opt(a: int | None, b: int | None) -> int | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None

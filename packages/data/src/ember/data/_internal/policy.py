"""The executor's scheduling policy: which operator may launch work next (pure).

The executor describes each operator as an ``OpView`` and the cluster as a ``Budget``,
and asks ``select_next`` repeatedly until it returns None. The rules, in order:

1. Resources: a task operator needs its CPUs/GPUs free (within what the executor may
   use); an actor-pool operator needs a free slot on one of its actors (the actors hold
   their resources already).
2. Memory: when the blocks the executor holds (queued between operators, waiting for
   the consumer, plus the estimated output of tasks in flight) would exceed the memory
   budget, *source* operators (reads, which only add data) may not launch. Operators
   that consume queued blocks still may: they move data toward the consumer. Sources
   also leave ``reserved`` bytes free: what the idle downstream operators need for
   their next task (its input and output), so the pipeline can always drain.
3. Order: the most downstream eligible operator goes first, so the pipeline drains
   before it fills.
4. Progress: if nothing is running at all and the consumer has nothing to read, the
   most downstream operator that has input runs even over budget: a single block larger
   than the budget must not hang the dataset.

``plan_actor_cpus`` is the reservation that keeps actor pools from starving reads on
small clusters (2 CPUs, a pool of 2 one-CPU actors and a read would otherwise deadlock).

>>> ops = [OpView("Read", ready_inputs=3, is_source=True), OpView("Map", ready_inputs=1)]
>>> select_next(ops, Budget(cpus_free=1, memory_limit=100))
1
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Budget", "OpView", "plan_actor_cpus", "select_next"]


@dataclass(frozen=True)
class OpView:
    """What the policy needs to know about one operator (topological order)."""

    name: str
    ready_inputs: int = 0              # work items it could dispatch now
    running: int = 0                   # its tasks / actor calls in flight
    max_running: int | None = None     # concurrency cap (None: no cap)
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    uses_actors: bool = False
    free_actor_slots: int = 0
    is_source: bool = False            # adds data without consuming queued blocks
    est_output_bytes: float = 0.0      # what one more task is expected to add


@dataclass(frozen=True)
class Budget:
    """Cluster resources the executor may still use, and its memory budget."""

    cpus_free: float = 0.0
    gpus_free: float = 0.0
    memory_limit: float = float("inf")
    memory_used: float = 0.0
    consumer_has_output: bool = False  # blocks are waiting for the consumer
    # Memory kept free for downstream operators that are not running now, so they can
    # always take their next input and write its output within the budget.
    reserved: float = 0.0


def _fits(op: OpView, budget: Budget) -> bool:
    if op.ready_inputs <= 0:
        return False
    if op.max_running is not None and op.running >= op.max_running:
        return False
    if op.uses_actors:
        return op.free_actor_slots > 0
    return (op.cpus_per_task <= budget.cpus_free + 1e-9 and
            op.gpus_per_task <= budget.gpus_free + 1e-9)


def select_next(ops: Sequence[OpView], budget: Budget) -> int | None:
    """Index of the operator to launch one task of next, or None to wait."""
    fitting = [i for i, op in enumerate(ops) if _fits(op, budget)]
    if not fitting:
        return None
    over = budget.memory_used >= budget.memory_limit
    for i in reversed(fitting):
        op = ops[i]
        if not op.is_source:
            return i
        if not over and budget.memory_used + op.est_output_bytes + budget.reserved <= \
                budget.memory_limit:
            return i
    nothing_running = all(op.running == 0 for op in ops)
    if nothing_running and not budget.consumer_has_output:
        return fitting[-1]
    return None


def plan_actor_cpus(total_cpus: float, pools: Sequence[tuple[int, float]], *,
                    task_ops: int, reserve: float = 1.0) -> list[float]:
    """CPUs each actor of each pool should ask for, given ``(min_size, num_cpus)`` per pool.

    If the pools' minimum sizes would take more than ``total_cpus - reserve`` while
    task operators (reads, task maps) also need to run, every actor's request is
    scaled down so they fit and ``reserve`` CPUs stay free for the tasks. Without task
    operators the pools may use every CPU. Requests never go up, only down.

    >>> plan_actor_cpus(2, [(2, 1.0)], task_ops=1)
    [0.5]
    >>> plan_actor_cpus(8, [(2, 1.0)], task_ops=1)
    [1.0]
    """
    wanted = sum(size * cpus for size, cpus in pools)
    if wanted <= 0:
        return [cpus for _, cpus in pools]
    keep = min(reserve, total_cpus / 2) if task_ops else 0.0
    room = max(total_cpus - keep, 0.0)
    if wanted <= room:
        return [cpus for _, cpus in pools]
    scale = room / wanted
    return [_schedulable(cpus * scale) if cpus else 0.0 for _, cpus in pools]


def pool_may_grow(*, total_cpus: float, cpus_used: float, actor_cpus: float,
                  new_actor_cpus: float, task_cpus_needed: float) -> bool:
    """Whether an actor pool may start one more actor of ``new_actor_cpus``.

    ``cpus_used`` is everything the dataset holds now (actors and running tasks),
    ``actor_cpus`` what its actors alone hold, and ``task_cpus_needed`` the largest
    per-task request among the unfinished task operators (reads, task maps). Running
    tasks give their CPUs back when they end; actors keep theirs until the pool
    drains. So a new actor must leave room for one task of every unfinished task
    operator once the running tasks end, or the pool could grab the CPUs a read is
    waiting for and then wait forever on input that read would produce.

    >>> pool_may_grow(total_cpus=2, cpus_used=1, actor_cpus=1, new_actor_cpus=1,
    ...               task_cpus_needed=1)
    False
    >>> pool_may_grow(total_cpus=2, cpus_used=1, actor_cpus=1, new_actor_cpus=1,
    ...               task_cpus_needed=0)
    True
    """
    if new_actor_cpus > total_cpus - cpus_used + 1e-9:
        return False
    return actor_cpus + new_actor_cpus + task_cpus_needed <= total_cpus + 1e-9


def _schedulable(cpus: float) -> float:
    # Ember takes fractional CPUs only below 1 (whole numbers above); round down to
    # 3 decimals so the node's fixed-point accounting never exceeds ours.
    if cpus >= 1:
        return float(math.floor(cpus))
    return max(0.001, math.floor(cpus * 1000) / 1000)

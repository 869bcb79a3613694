"""Logical rewrites (pure functions of the plan): projection and limit pushdown.

- Projection: ``select_columns`` right after a read (possibly with a limit in between)
  becomes part of the read when the datasource supports it, so unused columns are
  never read. Consecutive selections collapse into the last one.
- Limit: a limit moves above operators that keep every row (map, projections),
  consecutive limits merge, and a limit that reaches a read is pushed into it (each
  read task stops after ``limit`` rows; the limit operator itself stays, since it
  is global).

Operator fusion happens after planning, on physical operators (``planner.fuse``).

>>> plan = Limit(limit=5, inputs=(MapOp(row_preserving=True, inputs=(read,)),))
>>> optimize(plan)        # MapOp(Limit(Read(limit=5)))
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from .logical import Limit, LogicalOp, MapOp, Read

__all__ = ["optimize", "push_limits", "push_projections"]

Rule = Callable[[LogicalOp], LogicalOp]


def optimize(plan: LogicalOp) -> LogicalOp:
    """Apply every logical rule, projection first (a limit must not hide a projection)."""
    for rule in (push_projections, push_limits):
        plan = _rewrite(plan, rule)
    return plan


def _rewrite(plan: LogicalOp, rule: Rule) -> LogicalOp:
    """Apply ``rule`` bottom-up to every node, keeping shared nodes shared."""
    memo: dict[int, LogicalOp] = {}

    def visit(op: LogicalOp) -> LogicalOp:
        key = id(op)
        if key not in memo:
            new_inputs = tuple(visit(i) for i in op.inputs)
            node = op if new_inputs == op.inputs else op.with_inputs(*new_inputs)
            memo[key] = _fixpoint(rule, node)
        return memo[key]

    return visit(plan)


def _fixpoint(rule: Rule, node: LogicalOp) -> LogicalOp:
    # Apply until the node stops changing (a pushed limit may meet another).
    for _ in range(1000):
        rewritten = rule(node)
        if rewritten is node:
            return node
        node = rewritten
    return node


def push_projections(op: LogicalOp) -> LogicalOp:
    """select_columns -> read, and select over select -> one select."""
    if not (isinstance(op, MapOp) and op.projection is not None and len(op.inputs) == 1):
        return op
    below = op.inputs[0]
    if isinstance(below, MapOp) and below.projection is not None and \
            set(op.projection) <= set(below.projection):
        # The upper selection alone has the same effect (it errors on the same
        # missing columns only if they were also missing below, which is fine).
        return op.with_inputs(*below.inputs)
    limit: Limit | None = None
    if isinstance(below, Limit):
        limit, below = below, below.inputs[0]
    if isinstance(below, Read) and below.limit is None and \
            below.datasource.supports_projection_pushdown():
        read = dataclasses.replace(
            below, datasource=below.datasource.apply_projection(list(op.projection)))
        return limit.with_inputs(read) if limit is not None else read
    return op


def push_limits(op: LogicalOp) -> LogicalOp:
    """Limit over limit -> min; limit over a row-preserving map -> below it; into reads."""
    if not isinstance(op, Limit):
        return op
    below = op.inputs[0]
    if isinstance(below, Limit):
        return Limit(limit=min(op.limit, below.limit), inputs=below.inputs)
    if isinstance(below, MapOp) and below.row_preserving and \
            len(below.inputs) == 1:
        # The new limit may move further down (or merge with another one).
        return below.with_inputs(_fixpoint(push_limits, Limit(limit=op.limit,
                                                              inputs=below.inputs)))
    if isinstance(below, Read) and (below.limit is None or below.limit > op.limit):
        return op.with_inputs(dataclasses.replace(below, limit=op.limit))
    return op

"""Turn ``scheduling_strategy=`` / ``label_selector=`` options into lease hints."""
from __future__ import annotations

from typing import Any, Mapping

from .protos import ember_pb2 as pb


def hints_from_options(opts: Mapping[str, Any]) -> pb.SchedulingHints | None:
    """None for the default policy; otherwise the hints every lease request carries.

    >>> hints_from_options({"scheduling_strategy": "SPREAD"}).strategy
    'SPREAD'
    """
    from ..util.scheduling_strategies import NodeAffinitySchedulingStrategy
    strategy = opts.get("scheduling_strategy")
    selector = dict(opts.get("label_selector") or {})
    if strategy in (None, "DEFAULT") and not selector:
        return None
    hints = pb.SchedulingHints(label_selector=selector)
    if isinstance(strategy, str):
        hints.strategy = strategy
    elif isinstance(strategy, NodeAffinitySchedulingStrategy):
        hints.affinity_node_id = strategy.node_id
        hints.affinity_soft = strategy.soft
    elif strategy is not None:
        raise TypeError(
            f"unsupported scheduling_strategy {strategy!r}: use 'DEFAULT', 'SPREAD' or an "
            "object from ember.util.scheduling_strategies")
    return hints

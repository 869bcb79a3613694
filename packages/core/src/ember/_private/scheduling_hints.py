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
    if (strategy in (None, "DEFAULT") or _placement_strategy(strategy)) and not selector:
        return None
    hints = pb.SchedulingHints(label_selector=selector)
    if isinstance(strategy, str):
        hints.strategy = strategy
    elif _placement_strategy(strategy):
        pass  # expressed through bundle resources, see placement_from_options
    elif isinstance(strategy, NodeAffinitySchedulingStrategy):
        hints.affinity_node_id = strategy.node_id
        hints.affinity_soft = strategy.soft
    elif strategy is not None:
        raise TypeError(
            f"unsupported scheduling_strategy {strategy!r}: use 'DEFAULT', 'SPREAD' or an "
            "object from ember.util.scheduling_strategies")
    return hints


def _placement_strategy(strategy: Any) -> bool:
    from ..util.scheduling_strategies import PlacementGroupSchedulingStrategy
    return isinstance(strategy, PlacementGroupSchedulingStrategy)


def placement_from_options(opts: Mapping[str, Any]) -> tuple[bytes, int, bool] | None:
    """(group id, bundle index, capture children) when the options name a placement group.

    Accepts ``scheduling_strategy=PlacementGroupSchedulingStrategy(...)`` and
    the older ``placement_group=`` / ``placement_group_bundle_index=`` options.
    """
    from ..util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from .placement_group import flush_pending
    strategy = opts.get("scheduling_strategy")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        flush_pending()     # the group's create must land before work asks for it
        return (strategy.placement_group.id.binary(), strategy.placement_group_bundle_index,
                strategy.placement_group_capture_child_tasks)
    pg = opts.get("placement_group")
    if pg is None or pg == "default":
        return None
    flush_pending()
    checked = PlacementGroupSchedulingStrategy(
        pg, opts.get("placement_group_bundle_index", -1),
        opts.get("placement_group_capture_child_tasks"))
    return (pg.id.binary(), checked.placement_group_bundle_index,
            checked.placement_group_capture_child_tasks)


def in_placement_group(resources: Mapping[str, float], placement: tuple[bytes, int, bool]
                       ) -> dict[str, float]:
    """The task's request rewritten to draw from the group's bundle resources."""
    from .pg_policy import task_resources_in_bundle
    return task_resources_in_bundle(resources, placement[0].hex(), placement[1])

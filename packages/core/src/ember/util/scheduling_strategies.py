"""Scheduling strategies (Ray's ``ray.util.scheduling_strategies``).

Pass one as ``scheduling_strategy=`` to ``@ember.remote`` or ``.options()``;
the strings ``"DEFAULT"`` (pack onto the local node until it is half used, then
spread) and ``"SPREAD"`` (round-robin over nodes) work too.

>>> from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy
>>> node = ember.nodes()[0]["NodeID"]
>>> f.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
"""
from __future__ import annotations

from typing import Any

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]


class PlacementGroupSchedulingStrategy:
    """Run inside a placement group: in bundle ``placement_group_bundle_index``,
    or any bundle with room when it is -1. With ``placement_group_capture_child_tasks``
    the tasks and actors it starts default to the same group.

    >>> pg = ember.util.placement_group([{"CPU": 1}])
    >>> f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    """

    def __init__(self, placement_group: Any, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None) -> None:
        from .._private.placement_group import PlacementGroup
        if not isinstance(placement_group, PlacementGroup):
            raise TypeError(f"PlacementGroupSchedulingStrategy needs a PlacementGroup (from "
                            f"ember.util.placement_group(...)), got "
                            f"{type(placement_group).__name__}")
        index = placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int) or index < -1 \
                or index >= placement_group.bundle_count:
            raise ValueError(f"placement_group_bundle_index={index!r} is out of range for a "
                             f"group of {placement_group.bundle_count} bundles: use -1 (any) "
                             f"or 0..{placement_group.bundle_count - 1}")
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = bool(placement_group_capture_child_tasks)

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"bundle_index={self.placement_group_bundle_index})")


class NodeAffinitySchedulingStrategy:
    """Run on the node with ``node_id``.

    ``soft=False``: only there; if that node is dead or can never fit the
    request, the task fails with TaskUnschedulableError. ``soft=True``: there
    if possible, else wherever the default policy puts it.

    >>> NodeAffinitySchedulingStrategy(node_id=ember.get_runtime_context().get_node_id(),
    ...                                soft=True)
    """

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"NodeAffinitySchedulingStrategy needs a node id string (from "
                             f"ember.nodes()[i]['NodeID']), got {node_id!r}")
        self.node_id = node_id
        self.soft = bool(soft)
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"

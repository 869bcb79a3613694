"""Placement groups (Ray's ``ray.util.placement_group``): reserve bundles of
resources across nodes, all or nothing, then schedule tasks and actors into them.

>>> from ember.util.placement_group import placement_group, remove_placement_group
>>> from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
>>> pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
>>> ember.get(pg.ready())
>>> f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
>>> remove_placement_group(pg)

This module stays light (``ember.util`` imports it eagerly, so that
``ember.util.placement_group`` is the function, as in Ray, even after this
module is imported by name); the implementation in
``ember._private.placement_group`` loads on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._private.placement_group import PlacementGroup, PlacementGroupID

__all__ = ["PlacementGroup", "PlacementGroupID", "get_current_placement_group",
           "get_placement_group", "placement_group", "placement_group_table",
           "remove_placement_group"]


def _impl() -> Any:
    from .._private import placement_group as impl
    return impl


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _max_cpu_fraction_per_node: float = 1.0,
                    _soft_target_node_id: str | None = None,
                    bundle_label_selector: list[dict[str, str]] | None = None
                    ) -> PlacementGroup:
    """Reserve ``bundles`` of resources across the cluster, atomically.

    >>> pg = ember.util.placement_group([{"CPU": 1, "GPU": 1}] * 2, strategy="STRICT_SPREAD")
    >>> pg.wait(30)
    True
    """
    return _impl().placement_group(bundles, strategy, name, lifetime,
                                   _max_cpu_fraction_per_node, _soft_target_node_id,
                                   bundle_label_selector)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Release the group's bundles; tasks and actors running in it are stopped.

    >>> remove_placement_group(pg)
    """
    _impl().remove_placement_group(placement_group)


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """Look a named group up in this job's namespace.

    >>> pg = get_placement_group("trainers")
    """
    return _impl().get_placement_group(placement_group_name)


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """State of one group (a dict), or of every group (id hex -> dict).

    >>> placement_group_table(pg)["state"]
    'CREATED'
    """
    return _impl().placement_group_table(placement_group)


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in, or None.

    >>> get_current_placement_group()
    """
    return _impl().get_current_placement_group()


def __getattr__(name: str) -> Any:
    if name in ("PlacementGroup", "PlacementGroupID"):
        return getattr(_impl(), name)
    raise AttributeError(f"module 'ember.util.placement_group' has no attribute {name!r}")

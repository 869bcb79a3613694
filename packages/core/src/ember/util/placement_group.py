"""Placement groups (Ray's ``ray.util.placement_group``): reserve bundles of
resources across nodes, all or nothing, then schedule tasks and actors into them.

>>> from ember.util.placement_group import placement_group, remove_placement_group
>>> from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
>>> pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
>>> ember.get(pg.ready())
>>> f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
>>> remove_placement_group(pg)
"""
from __future__ import annotations

from .._private.placement_group import (PlacementGroup, PlacementGroupID,
                                        get_current_placement_group, get_placement_group,
                                        placement_group, placement_group_table,
                                        remove_placement_group)

__all__ = ["PlacementGroup", "PlacementGroupID", "get_current_placement_group",
           "get_placement_group", "placement_group", "placement_group_table",
           "remove_placement_group"]

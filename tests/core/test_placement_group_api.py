"""Placement groups from the caller's side, on the one-node, 2-CPU test cluster.

Creating, waiting for, looking up and removing groups; tasks and actors
scheduled into them with PlacementGroupSchedulingStrategy; and the input
checks. Where bundles go is tested without processes in test_pg_policy.py.
Every test removes the groups it made, so the node's 2 CPUs are free again for
the next one.
"""
from __future__ import annotations


import pytest

import ember
from ember.exceptions import ActorDiedError
from ember.testing import wait_for_condition
from ember.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@pytest.fixture
def groups(cluster):
    """Collects the groups a test makes and removes them afterwards, even on failure."""
    made: list[PlacementGroup] = []
    yield made
    for pg in made:
        remove_placement_group(pg)
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2.0, timeout=10,
                       message="the node's CPUs were not released")


def make(groups: list[PlacementGroup], *args, **kwargs) -> PlacementGroup:
    pg = placement_group(*args, **kwargs)
    groups.append(pg)
    return pg


def in_bundle(pg: PlacementGroup, index: int = -1, capture: bool | None = None
              ) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, index, capture)


@ember.remote(num_cpus=1)
def current_group_hex() -> str | None:
    pg = get_current_placement_group()
    return None if pg is None else pg.id.hex()


@ember.remote(num_cpus=1)
def parent_and_child_groups() -> tuple[str | None, str | None]:
    mine = get_current_placement_group()
    child = ember.get(current_group_hex.remote(), timeout=20)
    return (None if mine is None else mine.id.hex()), child


@ember.remote(num_cpus=1)
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n

    def group_hex(self) -> str | None:
        pg = get_current_placement_group()
        return None if pg is None else pg.id.hex()


def node_id() -> str:
    (node,) = ember.nodes()
    return node["NodeID"]


def free_cpus() -> float:
    return ember.available_resources().get("CPU", 0.0)


# ------------------------------------------------------------------ creating and waiting


def test_ready_resolves_to_the_group(groups) -> None:
    pg = make(groups, [{"CPU": 1}])
    ready = ember.get(pg.ready(), timeout=10)
    assert isinstance(ready, PlacementGroup)
    assert ready == pg
    assert ready.bundle_specs == [{"CPU": 1.0}]
    assert ready.strategy == "PACK"


def test_wait_is_true_once_created(groups) -> None:
    pg = make(groups, [{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert pg.wait(10) is True
    assert pg.bundle_count == 2


def test_table_describes_a_created_group(groups) -> None:
    pg = make(groups, [{"CPU": 1}, {"CPU": 0.5}], strategy="PACK", name="described")
    assert pg.wait(10)
    row = placement_group_table(pg)
    assert row["placement_group_id"] == pg.id.hex()
    assert row["name"] == "described"
    assert row["strategy"] == "PACK"
    assert row["state"] == "CREATED"
    assert row["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 0.5}}
    assert row["bundles_to_node_id"] == {0: node_id(), 1: node_id()}
    # The table of every group has the same row under the group's id.
    assert placement_group_table()[pg.id.hex()] == row


def test_group_reserves_cpus_until_removed(groups) -> None:
    assert free_cpus() == 2.0
    pg = make(groups, [{"CPU": 1}])
    assert pg.wait(10)
    wait_for_condition(lambda: free_cpus() == 1.0, timeout=10)
    remove_placement_group(pg)
    wait_for_condition(lambda: free_cpus() == 2.0, timeout=10)
    assert placement_group_table(pg)["state"] == "REMOVED"


# ------------------------------------------------------------------ tasks and actors in a group


def test_task_in_bundle_runs_in_the_group(groups) -> None:
    pg = make(groups, [{"CPU": 1}])
    assert pg.wait(10)
    ref = current_group_hex.options(scheduling_strategy=in_bundle(pg, 0)).remote()
    assert ember.get(ref, timeout=20) == pg.id.hex()
    # Outside any group: neither a plain task nor the driver is in one.
    assert ember.get(current_group_hex.remote(), timeout=20) is None
    assert get_current_placement_group() is None


def test_child_tasks_are_captured_into_the_group(groups) -> None:
    # Bundle 0 holds the parent, bundle 1 is free for its child.
    pg = make(groups, [{"CPU": 1}, {"CPU": 1}])
    assert pg.wait(10)
    ref = parent_and_child_groups.options(
        scheduling_strategy=in_bundle(pg, 0, capture=True)).remote()
    assert ember.get(ref, timeout=30) == (pg.id.hex(), pg.id.hex())


def test_child_tasks_are_not_captured_by_default(groups) -> None:
    pg = make(groups, [{"CPU": 1}])
    assert pg.wait(10)
    ref = parent_and_child_groups.options(scheduling_strategy=in_bundle(pg, 0)).remote()
    # The child runs outside the group, on the node's other CPU.
    assert ember.get(ref, timeout=30) == (pg.id.hex(), None)


def test_actor_in_the_group_dies_when_the_group_is_removed(groups) -> None:
    pg = make(groups, [{"CPU": 1}])
    assert pg.wait(10)
    actor = Counter.options(scheduling_strategy=in_bundle(pg, 0)).remote()
    assert ember.get(actor.incr.remote(), timeout=20) == 1
    assert ember.get(actor.group_hex.remote(), timeout=20) == pg.id.hex()
    remove_placement_group(pg)

    def dead() -> bool:
        try:
            ember.get(actor.incr.remote(), timeout=10)
        except ActorDiedError:
            return True
        return False

    wait_for_condition(dead, timeout=10, message="the actor survived its group's removal")


# ------------------------------------------------------------------ pending groups


def test_strict_spread_wider_than_the_cluster_stays_pending(groups) -> None:
    # Two bundles need two nodes; the cluster has one, though it has 2 CPUs.
    pg = make(groups, [{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(1) is False
    row = placement_group_table(pg)
    assert row["state"] == "PENDING"
    assert row["bundles_to_node_id"] == {}
    assert free_cpus() == 2.0          # nothing reserved
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    assert pg.wait(1) is False


def test_ready_of_a_group_removed_while_pending_raises(groups) -> None:
    pg = make(groups, [{"CPU": 3}])    # more than the node has
    ready = pg.ready()
    remove_placement_group(pg)
    with pytest.raises(RuntimeError, match=f"{pg.id.hex()} was removed before all its bundles"):
        ember.get(ready, timeout=15)


# ------------------------------------------------------------------ names


def test_get_placement_group_by_name(groups) -> None:
    pg = make(groups, [{"CPU": 1}], strategy="SPREAD", name="by-name")
    assert pg.wait(10)
    found = get_placement_group("by-name")
    assert found == pg
    assert found.name == "by-name"
    assert found.strategy == "SPREAD"
    assert found.bundle_specs == [{"CPU": 1.0}]


def test_duplicate_name_is_rejected_until_the_first_is_removed(groups) -> None:
    pg = make(groups, [{"CPU": 1}], name="only-one")
    with pytest.raises(ValueError, match="'only-one' already exists"):
        placement_group([{"CPU": 1}], name="only-one")
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="'only-one'"):
        get_placement_group("only-one")
    again = make(groups, [{"CPU": 1}], name="only-one")
    assert get_placement_group("only-one") == again


def test_unknown_name_is_a_value_error(cluster) -> None:
    with pytest.raises(ValueError, match="'no-such-group'"):
        get_placement_group("no-such-group")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("bundles", "message"), [
    ([], "non-empty list of bundles"),
    ({"CPU": 1}, "non-empty list of bundles"),
    ([{}], "bundle 0 must be a non-empty dict"),
    ([{"CPU": 1}, "CPU"], "bundle 1 must be a non-empty dict"),
    ([{"CPU": -1}], "bundle 0 has an invalid entry 'CPU': -1; amounts must be numbers >= 0"),
    ([{"CPU": "1"}], "amounts must be numbers >= 0"),
    ([{"CPU": True}], "amounts must be numbers >= 0"),
    ([{"CPU": 0}], "reserves nothing: give at least one resource a positive amount"),
])
def test_bad_bundles_are_rejected(cluster, bundles, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        placement_group(bundles)


def test_unknown_strategy_is_rejected_naming_the_valid_ones(cluster) -> None:
    with pytest.raises(ValueError, match="'pack'.*PACK, SPREAD, STRICT_PACK, STRICT_SPREAD"):
        placement_group([{"CPU": 1}], strategy="pack")


def test_unknown_lifetime_is_rejected(cluster) -> None:
    with pytest.raises(ValueError, match="lifetime must be None or 'detached'"):
        placement_group([{"CPU": 1}], lifetime="forever")


@pytest.mark.parametrize("index", [2, -2, 1.0, True])
def test_bundle_index_out_of_range_says_which_are_valid(groups, index) -> None:
    pg = make(groups, [{"CPU": 1}, {"CPU": 1}])
    with pytest.raises(ValueError, match=r"out of range for a group of 2 bundles: "
                                         r"use -1 \(any\) or 0\.\.1"):
        PlacementGroupSchedulingStrategy(pg, index)


def test_bundle_index_out_of_range_in_the_older_options_spelling(groups) -> None:
    pg = make(groups, [{"CPU": 1}, {"CPU": 1}])
    with pytest.raises(ValueError, match=r"out of range for a group of 2 bundles: "
                                         r"use -1 \(any\) or 0\.\.1"):
        current_group_hex.options(placement_group=pg, placement_group_bundle_index=2).remote()


def test_strategy_needs_a_placement_group(cluster) -> None:
    with pytest.raises(TypeError, match="needs a PlacementGroup"):
        PlacementGroupSchedulingStrategy("my-group", 0)


def test_remove_needs_a_placement_group(cluster) -> None:
    with pytest.raises(TypeError, match="expects a PlacementGroup, got str"):
        remove_placement_group("my-group")


def test_bundle_label_selector_and_unsupported_options(cluster):
    from ember.util import placement_group, remove_placement_group
    node_zone = {"zone": "nowhere"}
    pg = placement_group([{"CPU": 1}], bundle_label_selector=[node_zone])
    assert not pg.wait(1)            # no node has that label: it stays pending
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="one dict per bundle"):
        placement_group([{"CPU": 1}, {"CPU": 1}], bundle_label_selector=[{}])
    with pytest.raises(ValueError, match="_max_cpu_fraction_per_node is not supported"):
        placement_group([{"CPU": 1}], _max_cpu_fraction_per_node=0.5)
    ok = placement_group([{"CPU": 1}], bundle_label_selector=[{}])
    assert ok.wait(10)
    remove_placement_group(ok)

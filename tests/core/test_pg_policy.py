"""pg_policy: where a placement group's bundles go, and the resource names they use.

``place`` is a pure function of the bundles, the strategy and the free
resources per node, so every test builds the free resources by hand and checks
the exact node list it returns (or None); no processes or sockets. Node ids are
single letters; ties between nodes break by id.
"""
from __future__ import annotations

import copy
import itertools

import pytest

from ember._private.pg_policy import (
    STRATEGIES,
    bundle_resource_names,
    place,
    task_resources_in_bundle,
)


def cpu(*amounts: float) -> list[dict[str, float]]:
    """One CPU-only bundle per amount."""
    return [{"CPU": float(a)} for a in amounts]


def free(**cpus: float) -> dict[str, dict[str, float]]:
    """CPU-only nodes: node id -> free CPUs."""
    return {node: {"CPU": float(n)} for node, n in cpus.items()}


# ------------------------------------------------------------------ strategies


def test_the_four_ray_strategies() -> None:
    assert STRATEGIES == ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@pytest.mark.parametrize("strategy", ["pack", "Spread", "STRICT", "", "BEST_EFFORT", None])
def test_unknown_strategy_is_rejected_naming_the_valid_ones(strategy: object) -> None:
    with pytest.raises(ValueError) as err:
        place(cpu(1), strategy, free(a=4))  # type: ignore[arg-type]
    message = str(err.value)
    assert repr(strategy) in message
    for valid in STRATEGIES:
        assert valid in message


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_live_nodes_places_nothing(strategy: str) -> None:
    assert place(cpu(1), strategy, {}) is None


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_bundle_one_node(strategy: str) -> None:
    assert place(cpu(1), strategy, free(a=1)) == ["a"]


# ------------------------------------------------------------------ PACK


def test_pack_puts_everything_on_one_node_when_it_has_room() -> None:
    # SPREAD would use both nodes; PACK keeps the group together.
    assert place(cpu(1, 1, 1), "PACK", free(a=4, b=4)) == ["a", "a", "a"]


def test_pack_picks_the_node_with_most_free_resources() -> None:
    assert place(cpu(1, 1), "PACK", free(a=2, b=8, c=4)) == ["b", "b"]
    assert place(cpu(1, 1), "PACK", free(c=4, b=8, a=2)) == ["b", "b"]


def test_pack_ties_on_free_resources_break_by_node_id() -> None:
    assert place(cpu(1, 1), "PACK", free(c=4, b=4, a=3)) == ["b", "b"]


def test_pack_skips_the_roomiest_node_when_the_group_does_not_fit_there() -> None:
    # "a" has the most free in total but no GPU; only "b" holds the whole group.
    available = {"a": {"CPU": 10.0}, "b": {"CPU": 2.0, "GPU": 1.0}}
    assert place([{"CPU": 1}, {"GPU": 1}], "PACK", available) == ["b", "b"]


def test_pack_falls_back_to_best_effort_across_nodes() -> None:
    # Three CPUs fit on no single node: fill the first node, then the next.
    assert place(cpu(1, 1, 1), "PACK", free(a=2, b=2)) == ["a", "a", "b"]


def test_pack_best_effort_prefers_nodes_already_used() -> None:
    # No node holds 7 CPUs. The 3 goes to "a" (most free); a 1 then stays on
    # "a" although "b" has more free, and the rest fill "b".
    assert place(cpu(3, 1, 1, 1, 1), "PACK", free(a=4, b=3)) == ["a", "a", "b", "b", "b"]


def test_pack_best_effort_uses_as_few_nodes_as_it_can() -> None:
    # Fill "b" (most free), then "c"; "a" is never touched.
    assert place(cpu(1, 1, 1, 1, 1), "PACK", free(a=2, b=3, c=3)) == ["b", "b", "b", "c", "c"]


def test_pack_best_effort_places_big_bundles_first() -> None:
    # In the given order the two 1s would fill "a" and leave the 3 nowhere;
    # biggest first finds the fit: 3 on "a", the 1s on "b".
    assert place(cpu(1, 1, 3), "PACK", free(a=3, b=2)) == ["b", "b", "a"]


def test_pack_is_none_when_some_bundle_fits_nowhere() -> None:
    assert place([{"CPU": 1}, {"GPU": 1}], "PACK", free(a=4, b=4)) is None
    assert place(cpu(1, 5), "PACK", free(a=4, b=4)) is None


def test_pack_is_none_when_bundles_fit_alone_but_not_together() -> None:
    assert place(cpu(1, 1, 1), "PACK", free(a=1, b=1)) is None


# ------------------------------------------------------------------ STRICT_PACK


def test_strict_pack_puts_everything_on_the_roomiest_node_that_fits() -> None:
    assert place(cpu(1, 1), "STRICT_PACK", free(a=2, b=8, c=4)) == ["b", "b"]
    available = {"a": {"CPU": 10.0}, "b": {"CPU": 2.0, "GPU": 1.0}}
    assert place([{"CPU": 1}, {"GPU": 1}], "STRICT_PACK", available) == ["b", "b"]


def test_strict_pack_is_none_rather_than_splitting_the_group() -> None:
    # PACK would split this as ["a", "a", "b"].
    assert place(cpu(1, 1, 1), "STRICT_PACK", free(a=2, b=2)) is None
    split = {"a": {"CPU": 1.0}, "b": {"GPU": 1.0}}
    assert place([{"CPU": 1}, {"GPU": 1}], "STRICT_PACK", split) is None
    both = dict(split, c={"CPU": 1.0, "GPU": 1.0})
    assert place([{"CPU": 1}, {"GPU": 1}], "STRICT_PACK", both) == ["c", "c"]


# ------------------------------------------------------------------ STRICT_SPREAD


def test_strict_spread_puts_each_bundle_on_its_own_node() -> None:
    assert place(cpu(1, 1, 1), "STRICT_SPREAD", free(a=4, b=4, c=4)) == ["a", "b", "c"]


def test_strict_spread_docstring_example() -> None:
    assert place(cpu(1, 1), "STRICT_SPREAD", free(a=2, b=1)) == ["a", "b"]


def test_strict_spread_leaves_extra_nodes_unused() -> None:
    assert place(cpu(1, 1), "STRICT_SPREAD", free(a=1, b=1, c=1, d=1)) == ["a", "b"]


def test_strict_spread_with_more_bundles_than_nodes_is_none() -> None:
    # Plenty of CPUs, but two bundles would have to share a node.
    assert place(cpu(1, 1, 1), "STRICT_SPREAD", free(a=8, b=8)) is None


def test_strict_spread_is_none_when_a_bundle_has_no_node_of_its_own() -> None:
    assert place(cpu(1, 1), "STRICT_SPREAD", free(a=4, b=0)) is None
    assert place(cpu(1, 2), "STRICT_SPREAD", free(a=1, b=1)) is None


def test_strict_spread_places_a_big_bundle_on_the_only_node_it_fits() -> None:
    # In the given order the 1 would take "a" and leave the 4 nowhere.
    assert place(cpu(1, 4), "STRICT_SPREAD", free(a=4, b=1)) == ["b", "a"]


def test_strict_spread_gives_bigger_bundles_the_first_pick_of_nodes() -> None:
    # Either way round fits; the biggest bundle is placed first, so it gets "a".
    assert place(cpu(1, 2), "STRICT_SPREAD", free(a=2, b=2)) == ["b", "a"]
    assert place(cpu(2, 1), "STRICT_SPREAD", free(a=2, b=2)) == ["a", "b"]


def test_strict_spread_backtracks_out_of_a_dead_end() -> None:
    # Same-size bundles, so no ordering helps: CPU takes "a" first, then GPU
    # has no node left; backtracking moves CPU to "b".
    available = {"a": {"CPU": 1.0, "GPU": 1.0}, "b": {"CPU": 1.0}}
    assert place([{"CPU": 1}, {"GPU": 1}], "STRICT_SPREAD", available) == ["b", "a"]


def test_strict_spread_backtracks_several_levels() -> None:
    # Only x fits on "a", only y on "b", z anywhere: z must take "c".
    available = {"a": {"x": 1.0, "y": 1.0, "z": 1.0},
                 "b": {"y": 1.0, "z": 1.0},
                 "c": {"z": 1.0}}
    bundles = [{"z": 1}, {"y": 1}, {"x": 1}]
    assert place(bundles, "STRICT_SPREAD", available) == ["c", "b", "a"]


# ------------------------------------------------------------------ SPREAD


def test_spread_uses_distinct_nodes_when_possible() -> None:
    # PACK would put both on "a", which has room for them.
    assert place(cpu(1, 1), "SPREAD", free(a=4, b=1)) == ["a", "b"]


def test_spread_finds_a_distinct_assignment_by_backtracking() -> None:
    available = {"a": {"CPU": 1.0, "GPU": 1.0}, "b": {"CPU": 1.0}}
    assert place([{"CPU": 1}, {"GPU": 1}], "SPREAD", available) == ["b", "a"]


def test_spread_best_effort_with_more_bundles_than_nodes() -> None:
    # Least used node first, then the one with most free: b, a, then b again.
    assert place(cpu(1, 1, 1), "SPREAD", free(a=2, b=4)) == ["b", "a", "b"]


def test_spread_best_effort_when_distinct_nodes_cannot_hold_the_bundles() -> None:
    # Two nodes for two bundles, but only "a" has CPUs: both share "a".
    available = {"a": {"CPU": 2.0}, "b": {"GPU": 1.0}}
    assert place(cpu(1, 1), "SPREAD", available) == ["a", "a"]


def test_spread_best_effort_places_big_bundles_first() -> None:
    # In the given order the 1s would take one CPU on each node and leave
    # the 2 nowhere.
    assert place(cpu(1, 1, 2), "SPREAD", free(a=2, b=2)) == ["b", "b", "a"]


def test_spread_is_none_when_impossible() -> None:
    assert place([{"GPU": 1}], "SPREAD", free(a=4, b=4)) is None
    assert place(cpu(2, 2, 2), "SPREAD", free(a=3, b=3)) is None


# ------------------------------------------------------------------ determinism


CASES = [
    (cpu(1, 1, 1), free(a=2, b=2, c=2)),
    (cpu(2, 1, 1, 1), free(a=2, b=3, c=1)),
    (cpu(1, 1), free(a=4, b=4)),
    ([{"CPU": 1}, {"GPU": 1}], {"a": {"CPU": 1.0, "GPU": 1.0}, "b": {"CPU": 1.0},
                                "c": {"CPU": 1.0, "GPU": 1.0}}),
]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("bundles", "available"), CASES)
def test_result_does_not_depend_on_node_order(strategy: str, bundles: list,
                                              available: dict) -> None:
    expected = place(bundles, strategy, available)
    for order in itertools.permutations(available):
        shuffled = {node: available[node] for node in order}
        assert place(bundles, strategy, shuffled) == expected
        assert place(bundles, strategy, shuffled) == expected


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("bundles", "available"), CASES)
def test_place_does_not_modify_its_inputs(strategy: str, bundles: list,
                                          available: dict) -> None:
    bundles_before, available_before = copy.deepcopy(bundles), copy.deepcopy(available)
    place(bundles, strategy, available)
    assert bundles == bundles_before
    assert available == available_before


# ------------------------------------------------------------------ zero and fractional amounts


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_amount_needs_no_such_resource(strategy: str) -> None:
    # The node has no GPU at all; asking for 0 GPUs still fits.
    assert place([{"CPU": 1, "GPU": 0}], strategy, free(a=1)) == ["a"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_all_zero_bundle_fits_any_node(strategy: str) -> None:
    assert place([{"CPU": 0}], strategy, free(a=0)) == ["a"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_free_is_not_room(strategy: str) -> None:
    assert place(cpu(1), strategy, free(a=0)) is None


def test_fractional_amounts_add_up_despite_float_rounding() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in floats.
    assert place(cpu(0.1, 0.2), "STRICT_PACK", free(a=0.3)) == ["a", "a"]
    assert place(cpu(0.1, 0.2, 0.1), "STRICT_PACK", free(a=0.3)) is None


def test_custom_resources_are_placed_like_cpus() -> None:
    available = {"a": {"CPU": 8.0}, "b": {"CPU": 1.0, "tpu": 4.0}}
    assert place([{"tpu": 2}, {"tpu": 2}], "PACK", available) == ["b", "b"]
    assert place([{"tpu": 2}, {"tpu": 2}], "STRICT_SPREAD", available) is None


# ------------------------------------------------------------------ resource names


def test_bundle_resources_use_rays_names() -> None:
    assert bundle_resource_names({"CPU": 2, "GPU": 1}, "ab", 3) == {
        "CPU_group_3_ab": 2, "CPU_group_ab": 2,
        "GPU_group_3_ab": 1, "GPU_group_ab": 1,
        "bundle_group_3_ab": 1000.0, "bundle_group_ab": 1000.0,
    }


def test_bundle_resources_skip_zero_amounts() -> None:
    assert bundle_resource_names({"CPU": 1, "GPU": 0}, "ab", 0) == {
        "CPU_group_0_ab": 1, "CPU_group_ab": 1,
        "bundle_group_0_ab": 1000.0, "bundle_group_ab": 1000.0,
    }


def test_bundle_resources_always_include_the_bundle_markers() -> None:
    assert bundle_resource_names({}, "cd", 1) == {"bundle_group_1_cd": 1000.0,
                                                 "bundle_group_cd": 1000.0}


def test_task_in_a_given_bundle_asks_for_that_bundles_resources() -> None:
    assert task_resources_in_bundle({"CPU": 1, "custom": 0.5}, "ab", 2) == {
        "CPU_group_2_ab": 1, "custom_group_2_ab": 0.5, "bundle_group_2_ab": 0.001,
    }


def test_task_in_any_bundle_asks_for_the_group_wide_resources() -> None:
    assert task_resources_in_bundle({"CPU": 1}, "ab", -1) == {
        "CPU_group_ab": 1, "bundle_group_ab": 0.001,
    }


def test_task_asking_for_nothing_is_still_pinned_to_the_bundle() -> None:
    assert task_resources_in_bundle({}, "ab", 0) == {"bundle_group_0_ab": 0.001}
    assert task_resources_in_bundle({}, "ab", -1) == {"bundle_group_ab": 0.001}


def test_task_request_skips_zero_amounts() -> None:
    assert task_resources_in_bundle({"CPU": 1, "GPU": 0}, "ab", 0) == {
        "CPU_group_0_ab": 1, "bundle_group_0_ab": 0.001,
    }


@pytest.mark.parametrize("index", [3, -1])
def test_a_task_shaped_like_its_bundle_fits_in_it(index: int) -> None:
    # What a task asks for is exactly what the bundle offers, in the same names.
    shape = {"CPU": 2, "GPU": 1, "memory": 1e9, "unused": 0}
    offered = bundle_resource_names(shape, "ef", 3)
    asked = task_resources_in_bundle(shape, "ef", index)
    assert set(asked) <= set(offered)
    assert all(asked[name] <= offered[name] for name in asked)
    # ... and another group's names are not offered, nor another bundle's.
    assert not set(task_resources_in_bundle(shape, "00", index)) & set(offered)
    assert not set(task_resources_in_bundle(shape, "ef", 4)) & set(offered)


# ------------------------------------------------------------------ label selectors, preference


def test_allowed_nodes_restrict_each_bundle() -> None:
    avail = {"a": {"CPU": 4}, "b": {"CPU": 4}, "c": {"CPU": 4}}
    # PACK would pick any node; the selector allows only b for both bundles.
    assert place([{"CPU": 1}, {"CPU": 1}], "PACK", avail, [{"b"}, {"b"}]) == ["b", "b"]
    # STRICT_SPREAD with bundle 0 limited to c and bundle 1 to {b, c}.
    assert place([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", avail, [{"c"}, {"b", "c"}]) == \
        ["c", "b"]
    # No allowed node can hold it: not placeable.
    assert place([{"CPU": 8}], "PACK", avail, [{"a"}]) is None
    assert place([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", avail, [{"a"}, {"a"}]) is None
    # None entries mean "any node".
    assert place([{"CPU": 1}, {"CPU": 1}], "SPREAD", avail, [None, {"a"}]) == ["b", "a"]


def test_preferred_node_is_tried_first_for_packing() -> None:
    avail = {"a": {"CPU": 8}, "b": {"CPU": 2}}
    assert place([{"CPU": 1}], "PACK", avail) == ["a"]
    assert place([{"CPU": 1}], "PACK", avail, prefer="b") == ["b"]
    assert place([{"CPU": 4}], "STRICT_PACK", avail, prefer="b") == ["a"]  # b too small

"""cluster_policy: where a worker-lease request is served across nodes.

``choose`` is a pure function of the request and the cluster view, so every
test builds a view by hand and checks the exact Decision it returns; no
processes or sockets. Node "a" is the local node unless a test says otherwise.
"""
from __future__ import annotations

import copy
from typing import Mapping

import pytest

from ember._private.cluster_policy import (
    SPREAD_THRESHOLD,
    Ask,
    Decision,
    NodeView,
    choose,
    labels_match,
    utilization,
)


def node(node_id: str, total: dict[str, float], available: dict[str, float] | None = None,
         labels: dict[str, str] | None = None, alive: bool = True) -> NodeView:
    """A node; ``available`` defaults to ``total`` (idle)."""
    return NodeView(node_id, f"10.0.0.{ord(node_id[0])}:7000", dict(total),
                    dict(total if available is None else available), dict(labels or {}), alive)


def cpus(node_id: str, total: float, free: float | None = None, **kw) -> NodeView:
    """A CPU-only node with ``free`` of ``total`` CPUs available."""
    return node(node_id, {"CPU": total}, {"CPU": total if free is None else free}, **kw)


def view(*nodes: NodeView) -> dict[str, NodeView]:
    return {n.node_id: n for n in nodes}


def decide(ask: Ask | Mapping[str, float], *nodes: NodeView, local: str = "a", turn: int = 0
           ) -> Decision:
    if not isinstance(ask, Ask):
        ask = Ask(shape=dict(ask))
    return choose(ask, local, view(*nodes), turn)


def local() -> Decision:
    return Decision("local", "a")


def spill(node_id: str) -> Decision:
    return Decision("spill", node_id)


# ------------------------------------------------------------------ utilization


def test_utilization_of_idle_and_partly_used_nodes() -> None:
    assert utilization(cpus("a", 4)) == 0.0
    assert utilization(cpus("a", 4, free=1)) == 0.75
    assert utilization(cpus("a", 4, free=0)) == 1.0


def test_utilization_is_the_most_used_resource() -> None:
    n = node("a", {"CPU": 8, "GPU": 2, "disk": 10},
             {"CPU": 6, "GPU": 1, "disk": 10})  # CPU 25%, GPU 50%, disk 0%
    assert utilization(n) == 0.5
    n.available["disk"] = 1.0  # custom resources count too: 90% used
    assert utilization(n) == pytest.approx(0.9)


def test_utilization_ignores_accelerator_type_and_memory() -> None:
    n = node("a", {"CPU": 4, "accelerator_type:A100": 1, "memory": 1e9},
             {"CPU": 3, "accelerator_type:A100": 0, "memory": 0})
    assert utilization(n) == 0.25


def test_utilization_ignores_zero_totals() -> None:
    # A zero total would divide by zero, and a 0-of-0 resource is not "used".
    n = node("a", {"CPU": 4, "GPU": 0, "custom": 0.0}, {"CPU": 4})
    assert utilization(n) == 0.0


def test_resource_missing_from_available_counts_as_fully_used() -> None:
    # Protobuf maps carry no zero entries: a GPU absent from ``available`` is taken.
    n = node("a", {"CPU": 4, "GPU": 1}, {"CPU": 4})
    assert utilization(n) == 1.0


# ------------------------------------------------------------------ labels_match


@pytest.mark.parametrize(("want", "have", "matches"), [
    # plain value: equal only; a missing label does not match
    ("us", "us", True),
    ("us", "eu", False),
    ("us", None, False),
    # "!v": anything but v, a missing label included
    ("!us", "eu", True),
    ("!us", "us", False),
    ("!us", None, True),
    # "in(a,b)": one of the set; a missing label does not match
    ("in(us,eu)", "eu", True),
    ("in(us,eu)", "us", True),
    ("in(us,eu)", "ap", False),
    ("in(us,eu)", None, False),
    ("in( us , eu )", "eu", True),
    # "!in(a,b)": none of the set, a missing label included
    ("!in(us,eu)", "ap", True),
    ("!in(us,eu)", "eu", False),
    ("!in(us,eu)", "us", False),
    ("!in(us,eu)", None, True),
    ("!in( us , eu )", "eu", False),
])
def test_label_operators(want: str, have: str | None, matches: bool) -> None:
    labels = {} if have is None else {"zone": have}
    assert labels_match({"zone": want}, labels) is matches


def test_empty_selector_matches_any_node() -> None:
    assert labels_match({}, {}) is True
    assert labels_match({}, {"zone": "us"}) is True


def test_every_key_of_a_selector_must_match() -> None:
    selector = {"zone": "in(us,eu)", "gpu": "!none", "tier": "prod"}
    assert labels_match(selector, {"zone": "us", "gpu": "a100", "tier": "prod"}) is True
    assert labels_match(selector, {"zone": "ap", "gpu": "a100", "tier": "prod"}) is False
    assert labels_match(selector, {"zone": "us", "gpu": "none", "tier": "prod"}) is False
    assert labels_match(selector, {"zone": "us", "gpu": "a100", "tier": "dev"}) is False
    assert labels_match(selector, {"zone": "us", "gpu": "a100"}) is False  # tier missing


def test_labels_are_matched_by_key() -> None:
    # The value "us" under another key does not satisfy zone=us.
    assert labels_match({"zone": "us"}, {"region": "us"}) is False


# ------------------------------------------------------------------ DEFAULT (hybrid)


def test_threshold_is_half() -> None:
    assert SPREAD_THRESHOLD == 0.5


def test_local_preferred_under_threshold_even_when_remote_is_idler() -> None:
    # Local is 25% used, the remote 0%: under the threshold, local still wins.
    assert decide({"CPU": 1}, cpus("a", 4, free=3), cpus("b", 4)) == local()


def test_local_preferred_just_under_threshold() -> None:
    assert decide({"CPU": 1}, cpus("a", 100, free=51), cpus("b", 4)) == local()


def test_spill_when_local_is_exactly_half_used() -> None:
    assert decide({"CPU": 1}, cpus("a", 4, free=2), cpus("b", 4, free=3)) == spill("b")


def test_spill_to_least_utilized_node_when_local_is_busy() -> None:
    nodes = (cpus("a", 4, free=1),                 # 75%
             cpus("b", 4, free=2),                 # 50%
             cpus("c", 4, free=3),                 # 25%
             cpus("d", 8, free=4))                 # 50%
    assert decide({"CPU": 1}, *nodes) == spill("c")


def test_spill_skips_idler_nodes_that_cannot_fit_now() -> None:
    nodes = (cpus("a", 4, free=1),                 # 75%, cannot fit 2 now
             cpus("b", 2, free=1.5),               # 25%, cannot fit 2 now
             cpus("c", 8, free=4))                 # 50%, fits
    assert decide({"CPU": 2}, *nodes) == spill("c")


def test_spill_when_local_is_under_threshold_but_cannot_fit_now() -> None:
    # Local is only 25% used but 4 CPUs are not free there right now.
    assert decide({"CPU": 4}, cpus("a", 4, free=3), cpus("b", 8, free=1),
                  cpus("c", 8, free=6)) == spill("c")


def test_busy_local_stays_when_it_is_the_least_utilized_fit() -> None:
    assert decide({"CPU": 1}, cpus("a", 4, free=2), cpus("b", 4, free=1)) == local()


def test_local_wins_utilization_ties() -> None:
    # All 75% used: the smallest id ("b") would win on ids alone; locality decides.
    assert decide({"CPU": 1}, cpus("b", 4, free=1), cpus("c", 4, free=1),
                  cpus("z", 4, free=1), local="z") == Decision("local", "z")


def test_remote_utilization_ties_break_by_node_id() -> None:
    # Local cannot fit now; "c" is listed first but "b" has the smaller id.
    assert decide({"CPU": 2}, cpus("a", 4, free=1), cpus("c", 4, free=3),
                  cpus("b", 4, free=3)) == spill("b")


def test_nothing_fits_now_queues_locally_when_local_can_ever_fit() -> None:
    # Nobody has 4 free CPUs; "b" is idler but local could hold it eventually.
    assert decide({"CPU": 4}, cpus("a", 4, free=0), cpus("b", 8, free=3)) == local()


def test_nothing_fits_now_and_local_never_can_goes_to_least_utilized_feasible() -> None:
    nodes = (cpus("a", 2),                         # idle, but only 2 CPUs
             cpus("b", 8, free=0),                 # 100%
             cpus("d", 8, free=1),                 # 87.5%
             cpus("c", 8, free=1))                 # 87.5%, smaller id than d
    assert decide({"CPU": 4}, *nodes) == spill("c")


def test_infeasible_everywhere() -> None:
    assert decide({"CPU": 16}, cpus("a", 4), cpus("b", 8)) == Decision(
        "infeasible",
        message="no live node can ever hold {'CPU': 16}; it waits until one joins")


def test_feasibility_needs_every_resource_of_the_shape() -> None:
    ask = {"CPU": 1, "GPU": 1}
    assert decide(ask, cpus("a", 4), node("b", {"CPU": 4, "GPU": 1})) == spill("b")
    assert decide(ask, cpus("a", 4), cpus("b", 4)).kind == "infeasible"


def test_zero_amounts_in_the_shape_are_not_required() -> None:
    assert decide({"CPU": 1, "GPU": 0}, cpus("a", 4)) == local()


def test_fractional_amounts_tolerate_float_rounding() -> None:
    # 0.1 * 6 == 0.6000000000000001 > 0.6 free: rounding must not make it "not fit now"
    # (which would spill it to "b").
    assert 0.1 * 6 > 0.6
    assert decide({"CPU": 0.1 * 6}, cpus("a", 1, free=0.6), cpus("b", 1)) == local()


def test_local_missing_from_the_view_spills() -> None:
    assert decide({"CPU": 1}, cpus("b", 4), local="a") == spill("b")


# ------------------------------------------------------------------ dead nodes


def test_dead_idle_node_is_never_spilled_to() -> None:
    assert decide({"CPU": 1}, cpus("a", 4, free=1), cpus("b", 4, alive=False)) == local()


def test_dead_node_is_not_the_queue_target_when_nothing_fits_now() -> None:
    nodes = (cpus("a", 2), cpus("b", 8, free=3, alive=False), cpus("c", 8, free=0))
    assert decide({"CPU": 4}, *nodes) == spill("c")


def test_only_dead_nodes_can_hold_it_is_infeasible() -> None:
    assert decide({"CPU": 8}, cpus("a", 4), cpus("b", 8, alive=False)) == Decision(
        "infeasible",
        message="no live node can ever hold {'CPU': 8}; it waits until one joins")


def test_dead_local_node_is_not_chosen() -> None:
    assert decide({"CPU": 1}, cpus("a", 4, alive=False), cpus("b", 4, free=1)) == spill("b")


# ------------------------------------------------------------------ SPREAD


def spread(shape: Mapping[str, float], *nodes: NodeView, turn: int, local: str = "a",
           **kw) -> Decision:
    return decide(Ask(shape=dict(shape), strategy="SPREAD", **kw), *nodes, local=local, turn=turn)


def test_spread_round_robins_over_nodes_sorted_by_id() -> None:
    nodes = (cpus("c", 4), cpus("a", 4), cpus("b", 4))  # listed out of order
    got = [spread({"CPU": 1}, *nodes, turn=t) for t in range(6)]
    assert got == [local(), spill("b"), spill("c"), local(), spill("b"), spill("c")]


def test_spread_ignores_current_availability() -> None:
    # "b" is full and "c" is idle; the turn decides, not the free resources.
    nodes = (cpus("a", 4, free=4), cpus("b", 4, free=0), cpus("c", 4, free=4))
    assert spread({"CPU": 1}, *nodes, turn=1) == spill("b")
    assert spread({"CPU": 1}, *nodes, turn=0) == local()  # local under threshold or not


def test_spread_skips_nodes_that_can_never_hold_it() -> None:
    nodes = (node("a", {"CPU": 4, "GPU": 1}), cpus("b", 4), node("c", {"CPU": 4, "GPU": 1}))
    got = [spread({"GPU": 1}, *nodes, turn=t) for t in range(4)]
    assert got == [local(), spill("c"), local(), spill("c")]


def test_spread_skips_dead_nodes() -> None:
    nodes = (cpus("a", 4), cpus("b", 4, alive=False), cpus("c", 4))
    got = [spread({"CPU": 1}, *nodes, turn=t) for t in range(4)]
    assert got == [local(), spill("c"), local(), spill("c")]


def test_spread_large_turn_wraps() -> None:
    nodes = (cpus("a", 4), cpus("b", 4), cpus("c", 4))
    assert spread({"CPU": 1}, *nodes, turn=3 * 1000 + 2) == spill("c")


def test_spread_infeasible() -> None:
    assert spread({"CPU": 8}, cpus("a", 4), cpus("b", 4), turn=0) == Decision(
        "infeasible",
        message="no live node can ever hold {'CPU': 8}; it waits until one joins")


# ------------------------------------------------------------------ node affinity


def affine(shape: Mapping[str, float], target: str, soft: bool, *nodes: NodeView,
           **kw) -> Decision:
    return decide(Ask(shape=dict(shape), affinity_node_id=target, affinity_soft=soft, **kw), *nodes)


@pytest.mark.parametrize("soft", [False, True])
def test_affinity_to_the_live_local_node(soft: bool) -> None:
    # Local is busy and "b" idle: the default policy would spill, affinity does not.
    assert affine({"CPU": 1}, "a", soft, cpus("a", 4, free=1), cpus("b", 4)) == local()


@pytest.mark.parametrize("soft", [False, True])
def test_affinity_to_a_live_remote_node(soft: bool) -> None:
    # Local is idle: the default policy would stay, affinity spills.
    assert affine({"CPU": 1}, "b", soft, cpus("a", 4), cpus("b", 4)) == spill("b")


@pytest.mark.parametrize("soft", [False, True])
def test_affinity_to_a_feasible_node_ignores_its_current_load(soft: bool) -> None:
    assert affine({"CPU": 2}, "b", soft, cpus("a", 4), cpus("b", 4, free=0)) == spill("b")


def test_hard_affinity_to_dead_node_fails_naming_node_and_fix() -> None:
    got = affine({"CPU": 1}, "b", False, cpus("a", 4), cpus("b", 4, alive=False))
    assert got == Decision("fail", message=(
        "NodeAffinitySchedulingStrategy(node_id='b', soft=False): that node is not alive. "
        "Use soft=True to fall back to other nodes, or pick a live node from ember.nodes()"))


def test_hard_affinity_to_unknown_node_fails() -> None:
    got = affine({"CPU": 1}, "nope", False, cpus("a", 4))
    assert got.kind == "fail" and got.node_id == ""
    assert "node_id='nope'" in got.message
    assert "is not alive" in got.message
    assert "soft=True" in got.message


def test_hard_affinity_to_node_that_cannot_hold_it_fails() -> None:
    got = affine({"GPU": 1}, "b", False, node("a", {"CPU": 4, "GPU": 1}), cpus("b", 4))
    assert got == Decision("fail", message=(
        "NodeAffinitySchedulingStrategy(node_id='b', soft=False): that node cannot hold "
        "{'GPU': 1}. Use soft=True to fall back to other nodes, or pick a live node from "
        "ember.nodes()"))


def test_soft_affinity_to_dead_node_uses_default_policy() -> None:
    # Local busy, "c" the least used live node: exactly what DEFAULT picks.
    nodes = (cpus("a", 4, free=1), cpus("b", 4, alive=False), cpus("c", 4, free=3))
    assert affine({"CPU": 1}, "b", True, *nodes) == spill("c")
    assert affine({"CPU": 1}, "b", True, cpus("a", 4), cpus("b", 4, alive=False)) == local()


def test_soft_affinity_to_unknown_node_uses_default_policy() -> None:
    assert affine({"CPU": 1}, "nope", True, cpus("a", 4)) == local()


def test_soft_affinity_to_node_that_cannot_hold_it_uses_default_policy() -> None:
    nodes = (node("a", {"CPU": 4, "GPU": 1}), cpus("b", 4), node("c", {"CPU": 4, "GPU": 2}))
    assert affine({"GPU": 1}, "b", True, *nodes) == local()
    nodes = (cpus("a", 4), cpus("b", 4), node("c", {"CPU": 4, "GPU": 2}))
    assert affine({"GPU": 1}, "b", True, *nodes) == spill("c")


def test_soft_affinity_with_no_feasible_node_is_infeasible() -> None:
    got = affine({"GPU": 1}, "b", True, cpus("a", 4), cpus("b", 4))
    assert got == Decision(
        "infeasible", message="no live node can ever hold {'GPU': 1}; it waits until one joins")


# ------------------------------------------------------------------ label selectors


def labelled() -> tuple[NodeView, ...]:
    return (cpus("a", 4, labels={"zone": "us", "gpu": "none"}),
            cpus("b", 4, labels={"zone": "eu", "gpu": "a100"}),
            cpus("c", 4, labels={"zone": "ap", "gpu": "h100"}),
            cpus("d", 4, labels={"gpu": "a100"}))


def candidates(selector: dict[str, str]) -> list[str]:
    """The nodes SPREAD rotates over under ``selector``, in order."""
    nodes = labelled()
    return [spread({"CPU": 1}, *nodes, turn=t, label_selector=selector).node_id
            for t in range(len(nodes))]


@pytest.mark.parametrize(("selector", "expected"), [
    ({}, ["a", "b", "c", "d"]),
    ({"zone": "eu"}, ["b", "b", "b", "b"]),
    ({"zone": "!eu"}, ["a", "c", "d", "a"]),          # d has no zone: matches "!eu"
    ({"zone": "in(us,ap)"}, ["a", "c", "a", "c"]),
    ({"zone": "!in(us,ap)"}, ["b", "d", "b", "d"]),
    ({"gpu": "a100", "zone": "!eu"}, ["d", "d", "d", "d"]),
    ({"gpu": "!none", "zone": "in(eu,ap)"}, ["b", "c", "b", "c"]),
])
def test_label_selector_restricts_candidates(selector: dict[str, str],
                                             expected: list[str]) -> None:
    assert candidates(selector) == expected


def test_label_selector_excludes_an_idle_local_node() -> None:
    ask = Ask(shape={"CPU": 1}, label_selector={"zone": "eu"})
    assert decide(ask, *labelled()) == spill("b")


def test_label_selector_keeps_local_when_it_matches() -> None:
    ask = Ask(shape={"CPU": 1}, label_selector={"zone": "in(us,eu)"})
    assert decide(ask, *labelled()) == local()


def test_label_selector_applies_in_default_policy_spill_choice() -> None:
    # Local is busy; "c" is idlest but excluded, so it goes to "b".
    nodes = (cpus("a", 4, free=1, labels={"zone": "us"}),
             cpus("b", 4, free=2, labels={"zone": "us"}),
             cpus("c", 4, labels={"zone": "eu"}))
    ask = Ask(shape={"CPU": 1}, label_selector={"zone": "us"})
    assert decide(ask, *nodes) == spill("b")


def test_no_node_with_matching_labels_is_infeasible_naming_the_labels() -> None:
    ask = Ask(shape={"CPU": 1}, label_selector={"zone": "mars", "gpu": "!none"})
    assert decide(ask, *labelled()) == Decision("infeasible", message=(
        "no live node with labels {'zone': 'mars', 'gpu': '!none'} can ever hold "
        "{'CPU': 1}; it waits until one joins"))


def test_matching_node_that_cannot_hold_it_is_infeasible() -> None:
    ask = Ask(shape={"CPU": 8}, label_selector={"zone": "eu"})
    nodes = (cpus("a", 16, labels={"zone": "us"}), cpus("b", 4, labels={"zone": "eu"}))
    got = decide(ask, *nodes)
    assert got.kind == "infeasible"
    assert "{'zone': 'eu'}" in got.message


def test_dead_node_with_matching_labels_is_not_a_candidate() -> None:
    ask = Ask(shape={"CPU": 1}, label_selector={"zone": "eu"})
    nodes = (cpus("a", 4, labels={"zone": "us"}),
             cpus("b", 4, labels={"zone": "eu"}, alive=False))
    assert decide(ask, *nodes).kind == "infeasible"


# ------------------------------------------------------------------ spilled requests


def test_spilled_request_stays_on_a_busy_local_node() -> None:
    # Unspilled, this would go to idle "b" (see the next assertion).
    nodes = (cpus("a", 4, free=1), cpus("b", 4))
    assert decide(Ask(shape={"CPU": 1}, spilled=True), *nodes) == local()
    assert decide(Ask(shape={"CPU": 1}), *nodes) == spill("b")


def test_spilled_request_queues_locally_when_it_cannot_fit_now() -> None:
    nodes = (cpus("a", 4, free=0), cpus("b", 4))
    assert decide(Ask(shape={"CPU": 2}, spilled=True), *nodes) == local()


def test_spilled_spread_request_is_not_rotated_again() -> None:
    nodes = (cpus("a", 4), cpus("b", 4))
    ask = Ask(shape={"CPU": 1}, strategy="SPREAD", spilled=True)
    assert [decide(ask, *nodes, turn=t) for t in range(2)] == [local(), local()]


def test_spilled_request_moves_on_when_local_cannot_ever_hold_it() -> None:
    nodes = (cpus("a", 2), cpus("b", 8, free=0), cpus("c", 8, free=1))
    assert decide(Ask(shape={"CPU": 4}, spilled=True), *nodes) == spill("c")


def test_spilled_request_moves_on_when_local_labels_do_not_match() -> None:
    nodes = (cpus("a", 4, labels={"zone": "us"}), cpus("b", 4, labels={"zone": "eu"}))
    ask = Ask(shape={"CPU": 1}, label_selector={"zone": "eu"}, spilled=True)
    assert decide(ask, *nodes) == spill("b")


def test_spilled_request_moves_on_when_local_is_dead() -> None:
    nodes = (cpus("a", 4, alive=False), cpus("b", 4))
    assert decide(Ask(shape={"CPU": 1}, spilled=True), *nodes) == spill("b")


def test_spilled_hard_affinity_still_goes_to_its_node() -> None:
    nodes = (cpus("a", 4), cpus("b", 4))
    ask = Ask(shape={"CPU": 1}, affinity_node_id="b", spilled=True)
    assert decide(ask, *nodes) == spill("b")


# ------------------------------------------------------------------ purity


def test_choose_does_not_modify_its_inputs() -> None:
    nodes = view(cpus("a", 4, free=1, labels={"zone": "us"}), cpus("b", 4, free=3),
                 cpus("c", 4, alive=False))
    before = copy.deepcopy(nodes)
    for ask in (Ask(shape={"CPU": 1}), Ask(shape={"CPU": 1}, strategy="SPREAD"),
                Ask(shape={"CPU": 9}), Ask(shape={"CPU": 1}, affinity_node_id="c")):
        choose(ask, "a", nodes, 1)
    assert nodes == before


def test_same_inputs_give_same_decision() -> None:
    nodes = (cpus("a", 4, free=1), cpus("c", 4, free=3), cpus("b", 4, free=3))
    first = decide({"CPU": 1}, *nodes)
    assert first == spill("b")
    assert all(decide({"CPU": 1}, *nodes) == first for _ in range(5))

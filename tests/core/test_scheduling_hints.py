"""scheduling_strategy= / label_selector= options -> SchedulingHints, and
NodeAffinitySchedulingStrategy's own validation. Pure: no cluster is started."""
from __future__ import annotations

from typing import Any

import pytest

from ember._private.protos import ember_pb2 as pb
from ember._private.scheduling_hints import hints_from_options
from ember.util import scheduling_strategies
from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

# ------------------------------------------------------------------ hints_from_options


@pytest.mark.parametrize("opts", [
    {},
    {"scheduling_strategy": None},
    {"scheduling_strategy": "DEFAULT"},
    {"label_selector": {}},
    {"label_selector": None},
    {"scheduling_strategy": "DEFAULT", "label_selector": {}},
    {"num_cpus": 2, "name": "f"},  # unrelated options
])
def test_default_policy_needs_no_hints(opts: dict[str, Any]) -> None:
    assert hints_from_options(opts) is None


def test_spread() -> None:
    assert hints_from_options({"scheduling_strategy": "SPREAD"}) == pb.SchedulingHints(
        strategy="SPREAD")


def test_spread_with_label_selector() -> None:
    hints = hints_from_options({"scheduling_strategy": "SPREAD",
                                "label_selector": {"zone": "in(us,eu)"}})
    assert hints == pb.SchedulingHints(strategy="SPREAD", label_selector={"zone": "in(us,eu)"})


def test_label_selector_alone_makes_hints() -> None:
    hints = hints_from_options({"label_selector": {"zone": "us", "gpu": "!none"}})
    assert hints == pb.SchedulingHints(label_selector={"zone": "us", "gpu": "!none"})
    assert hints.strategy == ""  # the node manager reads "" as DEFAULT


def test_default_strategy_with_label_selector() -> None:
    hints = hints_from_options({"scheduling_strategy": "DEFAULT",
                                "label_selector": {"zone": "us"}})
    assert hints == pb.SchedulingHints(strategy="DEFAULT", label_selector={"zone": "us"})


@pytest.mark.parametrize("soft", [False, True])
def test_node_affinity(soft: bool) -> None:
    strategy = NodeAffinitySchedulingStrategy("node-1", soft=soft)
    hints = hints_from_options({"scheduling_strategy": strategy})
    assert hints == pb.SchedulingHints(affinity_node_id="node-1", affinity_soft=soft)
    assert hints.strategy == ""


def test_node_affinity_with_label_selector() -> None:
    strategy = NodeAffinitySchedulingStrategy("node-1", soft=True)
    hints = hints_from_options({"scheduling_strategy": strategy,
                                "label_selector": {"zone": "!in(ap)"}})
    assert hints == pb.SchedulingHints(affinity_node_id="node-1", affinity_soft=True,
                                       label_selector={"zone": "!in(ap)"})


def test_hints_survive_the_wire() -> None:
    strategy = NodeAffinitySchedulingStrategy("node-1", soft=True)
    hints = hints_from_options({"scheduling_strategy": strategy,
                                "label_selector": {"zone": "us"}})
    assert hints is not None
    request = pb.LeaseRequest(resources={"CPU": 1}, hints=hints)
    back = pb.LeaseRequest.FromString(request.SerializeToString()).hints
    assert (back.affinity_node_id, back.affinity_soft, dict(back.label_selector)) == (
        "node-1", True, {"zone": "us"})


def test_label_selector_is_copied() -> None:
    selector = {"zone": "us"}
    hints = hints_from_options({"label_selector": selector})
    selector["zone"] = "eu"
    assert hints is not None and dict(hints.label_selector) == {"zone": "us"}


class _NotAStrategy:
    pass


@pytest.mark.parametrize("strategy", [
    42,
    _NotAStrategy(),
    {"node_id": "node-1", "soft": True},  # a dict is not a strategy object
])
def test_unsupported_strategy_is_a_type_error(strategy: object) -> None:
    with pytest.raises(TypeError, match=r"unsupported scheduling_strategy .*'DEFAULT', "
                                        r"'SPREAD' or an object from "
                                        r"ember\.util\.scheduling_strategies"):
        hints_from_options({"scheduling_strategy": strategy})


def test_type_error_names_the_bad_value() -> None:
    with pytest.raises(TypeError) as info:
        hints_from_options({"scheduling_strategy": 42})
    assert "42" in str(info.value)


# ------------------------------------------------------------------ NodeAffinitySchedulingStrategy


def test_affinity_strategy_fields() -> None:
    s = NodeAffinitySchedulingStrategy(node_id="abc123", soft=False)
    assert (s.node_id, s.soft) == ("abc123", False)
    assert (s._spill_on_unavailable, s._fail_on_unavailable) == (False, False)
    s = NodeAffinitySchedulingStrategy("abc123", True, _spill_on_unavailable=True,
                                       _fail_on_unavailable=True)
    assert (s.node_id, s.soft) == ("abc123", True)
    assert (s._spill_on_unavailable, s._fail_on_unavailable) == (True, True)


@pytest.mark.parametrize(("soft", "expected"), [(1, True), (0, False), ("", False),
                                                 ("yes", True), (None, False)])
def test_affinity_soft_is_coerced_to_bool(soft: object, expected: bool) -> None:
    s = NodeAffinitySchedulingStrategy("abc123", soft=soft)  # type: ignore[arg-type]
    assert s.soft is expected


@pytest.mark.parametrize("node_id", ["", None, 123, b"abc123", ["abc123"]])
def test_affinity_needs_a_node_id_string(node_id: object) -> None:
    with pytest.raises(ValueError, match=r"NodeAffinitySchedulingStrategy needs a node id "
                                         r"string \(from ember\.nodes\(\)\[i\]\['NodeID'\]\), "
                                         r"got "):
        NodeAffinitySchedulingStrategy(node_id, soft=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(("node_id", "shown"), [("", r"got ''$"), (None, r"got None$"),
                                                 (b"abc", r"got b'abc'$")])
def test_affinity_error_shows_the_bad_value(node_id: object, shown: str) -> None:
    # repr, so an empty id is visible as '' rather than as nothing at all
    with pytest.raises(ValueError, match=shown):
        NodeAffinitySchedulingStrategy(node_id, soft=True)  # type: ignore[arg-type]


def test_affinity_soft_is_required() -> None:
    # As in Ray: the caller must say whether falling back to other nodes is allowed.
    with pytest.raises(TypeError):
        NodeAffinitySchedulingStrategy("abc123")  # type: ignore[call-arg]


def test_affinity_repr() -> None:
    assert repr(NodeAffinitySchedulingStrategy("abc123", soft=1)) == (  # type: ignore[arg-type]
        "NodeAffinitySchedulingStrategy(node_id='abc123', soft=True)")


def test_module_exports() -> None:
    assert "NodeAffinitySchedulingStrategy" in scheduling_strategies.__all__

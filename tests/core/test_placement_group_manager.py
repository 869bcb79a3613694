"""The control service's placement-group manager against fake node managers:
how many calls a placement and a removal cost, and what they carry."""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from ember._private.placement_group_manager import PlacementGroupManager
from ember._private.protos import ember_pb2 as pb


class FakeNodes:
    """Node managers as the manager sees them: each call recorded and answered."""

    def __init__(self, nodes: dict[str, dict[str, float]]) -> None:
        self.infos = {nid: pb.NodeInfo(node_id=nid, alive=True, ip="127.0.0.1", port=i + 1,
                                       available=res, total=res)
                      for i, (nid, res) in enumerate(nodes.items())}
        self.calls: list[tuple[str, str, pb.BundleRequest]] = []
        self.refuse: set[bytes] = set()     # groups whose prepare fails
        self.lock = threading.Lock()
        self.cancel_gate = threading.Event()    # cleared: CancelBundles calls block
        self.cancel_gate.set()

    def list(self) -> list[pb.NodeInfo]:
        return list(self.infos.values())

    def answer(self, node: pb.NodeInfo, method: str, request: pb.BundleRequest) -> Any:
        with self.lock:
            self.calls.append((node.node_id, method, request))
        if method == "CancelBundles":
            assert self.cancel_gate.wait(30)
        node_info = pb.NodeInfo(node_id=node.node_id, alive=True,
                                available={"CPU": 1.0}, total={"CPU": 4.0, "marker": 1.0})
        reply = pb.BundleReply(ok=request.pg_id not in self.refuse, node=node_info)
        if method == "PrepareBundles":
            reply.batch.extend(pb.BundleReply(ok=r.pg_id not in self.refuse)
                               for r in request.batch)
        return reply

    def of(self, method: str) -> list[tuple[str, pb.BundleRequest]]:
        with self.lock:
            return [(n, r) for n, m, r in self.calls if m == method]


@pytest.fixture
def setup():
    made: list[PlacementGroupManager] = []

    def make(nodes: dict[str, dict[str, float]]):
        fake = FakeNodes(nodes)
        noted: list[pb.NodeInfo] = []

        class Manager(PlacementGroupManager):
            def _call(self, node: pb.NodeInfo, method: str, request: Any) -> Any:
                reply = fake.answer(node, method, request)
                noted.append(reply.node)      # as the real _call hands it on
                return reply

        mgr = Manager("", fake.list, on_resources=noted.append)
        made.append(mgr)
        return mgr, fake, noted

    yield make
    for mgr in made:
        mgr.stop()


def spec(strategy: str = "PACK", bundles: int = 1) -> pb.PlacementGroupSpec:
    return pb.PlacementGroupSpec(pg_id=os.urandom(14), strategy=strategy,
                                 bundles=[pb.Bundle(index=i, resources={"CPU": 1.0})
                                          for i in range(bundles)])


def state(mgr: PlacementGroupManager, pg_id: bytes, after: int = 0) -> pb.PlacementGroupInfo:
    return mgr.get(pb.PlacementGroupRequest(pg_id=pg_id, after_version=after, timeout=5))


def wait_created(mgr: PlacementGroupManager, pg_id: bytes) -> pb.PlacementGroupInfo:
    info = state(mgr, pg_id)
    deadline = time.monotonic() + 30
    while info.state == "PENDING" and time.monotonic() < deadline:
        info = state(mgr, pg_id, info.version)
    return info


def test_groups_on_one_node_are_reserved_together_in_one_call(setup) -> None:
    mgr, fake, _ = setup({"n1": {"CPU": 8.0}})
    mgr._wake.clear()
    with mgr._cond:   # hold placement back until every group is known
        specs = [spec() for _ in range(5)]
        for s in specs:
            mgr.create(s)
    for s in specs:
        assert wait_created(mgr, s.pg_id).state == "CREATED"
    prepares = fake.of("PrepareBundles")
    committed = [r.pg_id for _, req in prepares for r in req.batch if r.commit]
    assert sorted(committed) == sorted(s.pg_id for s in specs)
    assert len(prepares) < len(specs)     # batched: fewer calls than groups
    assert fake.of("CommitBundles") == []  # one node: no second phase


def test_reply_resources_are_recorded(setup) -> None:
    mgr, fake, noted = setup({"n1": {"CPU": 8.0}})
    s = spec()
    mgr.create(s)
    assert wait_created(mgr, s.pg_id).state == "CREATED"
    assert any(n.node_id == "n1" and n.total.get("marker") == 1.0 for n in noted)


def test_a_refused_group_stays_pending_while_the_rest_are_created(setup) -> None:
    mgr, fake, _ = setup({"n1": {"CPU": 8.0}})
    bad, good = spec(), spec()
    fake.refuse.add(bad.pg_id)
    with mgr._cond:
        mgr.create(bad)
        mgr.create(good)
    assert wait_created(mgr, good.pg_id).state == "CREATED"
    assert state(mgr, bad.pg_id).state == "PENDING"


def test_group_over_two_nodes_prepares_then_commits_on_each(setup) -> None:
    mgr, fake, _ = setup({"n1": {"CPU": 2.0}, "n2": {"CPU": 2.0}})
    s = spec("STRICT_SPREAD", bundles=2)
    mgr.create(s)
    info = wait_created(mgr, s.pg_id)
    assert info.state == "CREATED"
    assert {b.node_id for b in info.bundles} == {"n1", "n2"}
    assert sorted(n for n, r in fake.of("PrepareBundles") if r.pg_id == s.pg_id) == ["n1", "n2"]
    assert not any(r.commit for _, r in fake.of("PrepareBundles"))
    assert sorted(n for n, r in fake.of("CommitBundles")) == ["n1", "n2"]


def test_removal_answers_before_the_nodes_cancel_and_cancels_are_batched(setup) -> None:
    mgr, fake, _ = setup({"n1": {"CPU": 8.0}})
    specs = [spec() for _ in range(4)]
    for s in specs:
        mgr.create(s)
    for s in specs:
        assert wait_created(mgr, s.pg_id).state == "CREATED"
    fake.cancel_gate.clear()
    for s in specs:
        mgr.remove(s.pg_id)       # returns although no node has cancelled yet
        assert state(mgr, s.pg_id).state == "REMOVED"
    fake.cancel_gate.set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and \
            len({r.pg_id for _, c in fake.of("CancelBundles") for r in c.batch}) < len(specs):
        time.sleep(0.01)
    cancels = fake.of("CancelBundles")
    assert {r.pg_id for _, c in cancels for r in c.batch} == {s.pg_id for s in specs}
    assert {n for n, _ in cancels} == {"n1"}
    # The first call may be under way while the rest are removed: at most two.
    assert len(cancels) <= 2


def test_a_retried_create_is_the_same_group(setup) -> None:
    """A create retried after a lost reply (control-service restart) must not make a
    second group or reserve its bundles twice."""
    mgr, fake, _ = setup({"n1": {"CPU": 8.0}})
    s = spec()
    first = mgr.create(s)
    assert wait_created(mgr, s.pg_id).state == "CREATED"
    again = mgr.create(s)
    assert again.found and again.pg_id == first.pg_id and again.state == "CREATED"
    reserved = [r.pg_id for _, req in fake.of("PrepareBundles") for r in req.batch]
    assert reserved.count(s.pg_id) == 1

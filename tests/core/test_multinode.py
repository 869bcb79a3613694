"""Multi-node integration tests (issue #4): scheduling, objects, placement groups and actors
on a real three-node ``Cluster`` on loopback.

The nodes (one CPU each, so "busy" is easy to arrange):

* ``a``: the head, where the driver attaches; resource ``node_a``, label ``zone=a``
* ``b``: resource ``node_b``, label ``zone=b``
* ``c``: resource ``node_c``, label ``zone=c``

Every node also has ``slot: 2`` (a custom resource for placement-group packing tests).
Tests leave the cluster idle (no held CPUs, no groups, no live actors) for the next one.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import numpy as np
import pytest

import ember
from ember.cluster_utils import Cluster, ClusterNode
from ember.exceptions import TaskUnschedulableError
from ember.testing import connected_cluster, shm_files, wait_for_condition
from ember.util.placement_group import (placement_group, placement_group_table,
                                        remove_placement_group)
from ember.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                              PlacementGroupSchedulingStrategy)

# 5_000_000 int64 = 40 MB: past the first 8 MiB chunk the rest crosses over the range
# socket (object_stream.py); over gRPC (TLS) it would be 4 parallel ranges (over 32 MiB).
BIG = 5_000_000
BIG_SUM = BIG * (BIG - 1) // 2


@dataclass
class Nodes:
    cluster: Cluster
    a: ClusterNode
    b: ClusterNode
    c: ClusterNode

    @property
    def all(self) -> list[ClusterNode]:
        return [self.a, self.b, self.c]

    def name(self, node_id: str) -> str:
        for letter, node in (("a", self.a), ("b", self.b), ("c", self.c)):
            if node.node_id == node_id:
                return letter
        return f"?{node_id}"


@pytest.fixture(scope="module")
def nodes():
    head = {"num_cpus": 1, "resources": {"node_a": 100, "slot": 2}, "labels": {"zone": "a"}}
    others = [{"num_cpus": 1, "resources": {f"node_{x}": 100, "slot": 2}, "labels": {"zone": x}}
              for x in "bc"]
    with connected_cluster(head, others) as (cluster, (b, c)):
        assert ember.get_runtime_context().get_node_id() == cluster.head_node.node_id
        yield Nodes(cluster, cluster.head_node, b, c)


def _node_resources() -> dict[str, dict]:
    from ember._private import worker_state
    from ember._private.protos import ember_pb2 as pb
    core = worker_state.require_core()
    return {n.node_id: {"total": dict(n.total), "available": dict(n.available)}
            for n in core.gcs.GetNodes(pb.Empty(), timeout=10).nodes if n.alive}


def _idle() -> bool:
    """Each of the three nodes has its whole CPU and slots free, and no group resources
    exist (nodes a test adds and removes itself do not count)."""
    for n in _node_resources().values():
        if "slot" not in n["total"]:
            continue
        if n["available"].get("CPU") != 1 or n["available"].get("slot") != 2:
            return False
        if any("_group_" in k for k in n["total"]):
            return False
    return True


@pytest.fixture
def idle(nodes):
    """Start from (and leave) an idle cluster."""
    wait_for_condition(_idle, timeout=15, message=f"cluster not idle: {_node_resources()}")
    yield nodes
    wait_for_condition(_idle, timeout=15, message=f"cluster not idle: {_node_resources()}")


@ember.remote
def where() -> str:
    return ember.get_runtime_context().get_node_id()


@ember.remote
def sleep_where(seconds: float) -> str:
    time.sleep(seconds)
    return ember.get_runtime_context().get_node_id()


@ember.remote
def produce(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


@ember.remote
def consume(arr: np.ndarray) -> tuple[int, int, str]:
    return int(arr.sum()), int(arr.size), ember.get_runtime_context().get_node_id()


@ember.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self, by: int = 1) -> int:
        self.n += by
        return self.n

    def node(self) -> str:
        return ember.get_runtime_context().get_node_id()


@ember.remote
def call_actor(handle, times: int) -> tuple[list[int], str]:
    out = [ember.get(handle.incr.remote(), timeout=30) for _ in range(times)]
    return out, ember.get_runtime_context().get_node_id()


def _on(letter: str) -> dict:
    return {"resources": {f"node_{letter}": 1}}


# ------------------------------------------------------------------ placing tasks

def test_custom_resource_picks_the_node(idle):
    refs = {x: where.options(**_on(x)).remote() for x in "abc"}
    got = {x: ember.get(r, timeout=60) for x, r in refs.items()}
    assert got == {"a": idle.a.node_id, "b": idle.b.node_id, "c": idle.c.node_id}


@pytest.mark.parametrize("soft", [False, True])
def test_node_affinity(idle, soft):
    for node in (idle.c, idle.b, idle.a):
        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=soft)
        got = ember.get(where.options(scheduling_strategy=strategy).remote(), timeout=60)
        assert idle.name(got) == idle.name(node.node_id)


def test_node_affinity_soft_falls_back_and_hard_fails(idle):
    unknown = "ff" * 14
    soft = NodeAffinitySchedulingStrategy(unknown, soft=True)
    assert ember.get(where.options(scheduling_strategy=soft).remote(), timeout=60) in \
        {n.node_id for n in idle.all}
    hard = NodeAffinitySchedulingStrategy(unknown, soft=False)
    with pytest.raises(TaskUnschedulableError, match="not alive"):
        ember.get(where.options(scheduling_strategy=hard).remote(), timeout=60)
    # A node too small for the request is the same as no node for hard affinity.
    hard_b = NodeAffinitySchedulingStrategy(idle.b.node_id, soft=False)
    with pytest.raises(TaskUnschedulableError):
        ember.get(where.options(scheduling_strategy=hard_b, num_cpus=2).remote(), timeout=60)


def test_node_affinity_to_a_dead_node(idle):
    cluster = idle.cluster
    gone = cluster.add_node(num_cpus=1, labels={"zone": "gone"})
    try:
        cluster.wait_for_nodes(timeout=30)
        assert ember.get(where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            gone.node_id, soft=False)).remote(), timeout=60) == gone.node_id
    finally:
        cluster.remove_node(gone)         # graceful: the node says it is leaving
    wait_for_condition(lambda: not any(n["Alive"] for n in ember.nodes()
                                       if n["NodeID"] == gone.node_id), timeout=15,
                       message="the removed node is still listed alive")
    soft = NodeAffinitySchedulingStrategy(gone.node_id, soft=True)
    assert ember.get(where.options(scheduling_strategy=soft).remote(), timeout=60) in \
        {n.node_id for n in idle.all}
    hard = NodeAffinitySchedulingStrategy(gone.node_id, soft=False)
    with pytest.raises(TaskUnschedulableError):
        ember.get(where.options(scheduling_strategy=hard).remote(), timeout=60)


def test_label_selector(idle):
    got = ember.get([where.options(label_selector={"zone": "b"}).remote() for _ in range(3)],
                    timeout=60)
    assert [idle.name(g) for g in got] == ["b", "b", "b"]
    got = ember.get([where.options(label_selector={"zone": "in(a,c)"}, **_on("c")).remote()],
                    timeout=60)
    assert [idle.name(g) for g in got] == ["c"]
    # The driver's own node is the hybrid policy's first choice: excluding it must win.
    got = ember.get([sleep_where.options(label_selector={"zone": "!a"}).remote(0.2)
                     for _ in range(4)], timeout=60)
    assert {idle.name(g) for g in got} <= {"b", "c"}, [idle.name(g) for g in got]


def test_spread_uses_every_node(idle):
    refs = [sleep_where.options(scheduling_strategy="SPREAD").remote(0.5) for _ in range(6)]
    got = ember.get(refs, timeout=60)
    assert {idle.name(g) for g in got} == {"a", "b", "c"}, [idle.name(g) for g in got]


def test_default_policy_spills_when_the_local_node_is_busy(idle):
    # One CPU per node, a warm worker on each: three concurrent one-CPU tasks run at once
    # only if they use all three nodes.
    # Long enough that a worker starting on a loaded 2-core machine still beats
    # the first task's end (else the task would rightly take node a's freed worker).
    start = time.monotonic()
    got = ember.get([sleep_where.remote(3.0) for _ in range(3)], timeout=60)
    took = time.monotonic() - start
    assert {idle.name(g) for g in got} == {"a", "b", "c"}, [idle.name(g) for g in got]
    assert took < 2 * 3.0 + 5, took


def _node_status(node: ClusterNode):
    from ember._private import worker_state
    from ember._private.protos import ember_pb2 as pb
    core = worker_state.require_core()
    return core.node_manager_stub(node.address).GetStatus(pb.Empty(), timeout=10)


def test_default_policy_spills_while_the_local_worker_starts(idle):
    # Leave the driver's node without an idle worker: kill its workers.
    manager = idle.a.procs[-1].pid
    workers = [p for p in idle.a.all_processes() if p not in {pr.pid for pr in idle.a.procs}]
    assert workers, "node a should have a worker by now"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    wait_for_condition(lambda: _node_status(idle.a).num_workers == 0, timeout=15,
                       message=f"node manager {manager} did not notice its workers died")
    # Long enough that a worker starting elsewhere on a loaded machine beats the
    # first task's end (else the second rightly takes node a's freed worker).
    got = ember.get([sleep_where.remote(3.0) for _ in range(2)], timeout=60)
    assert len({idle.name(g) for g in got}) == 2, [idle.name(g) for g in got]


# ------------------------------------------------------------------ objects

def test_object_moves_between_nodes_and_to_the_driver(idle):
    ref = produce.options(**_on("b")).remote(BIG)
    total, size, node = ember.get(consume.options(**_on("c")).remote(ref), timeout=60)
    assert (total, size, idle.name(node)) == (BIG_SUM, BIG, "c")
    arr = ember.get(ref, timeout=60)
    assert arr.dtype == np.int64 and arr.shape == (BIG,)
    assert int(arr.sum()) == BIG_SUM and arr[12345] == 12345 and arr[-1] == BIG - 1


def test_driver_put_consumed_on_another_node(idle):
    data = np.random.default_rng(7).integers(0, 1 << 20, size=BIG, dtype=np.int64)
    ref = ember.put(data)
    for x in "bc":
        total, size, node = ember.get(consume.options(**_on(x)).remote(ref), timeout=60)
        assert (total, size, idle.name(node)) == (int(data.sum()), BIG, x)


def test_object_read_by_two_other_nodes_at_once(idle):
    ref = produce.options(**_on("a")).remote(BIG)
    outs = ember.get([consume.options(**_on(x)).remote(ref) for x in "bc"], timeout=60)
    assert [(t, s, idle.name(n)) for t, s, n in outs] == [(BIG_SUM, BIG, "b"),
                                                            (BIG_SUM, BIG, "c")]


def test_object_locations_list_every_copy(idle):
    from ember.experimental import get_object_locations
    ref = produce.options(**_on("b")).remote(BIG)
    ember.wait([ref], timeout=60)
    where = get_object_locations([ref])[ref]
    assert [idle.name(n) for n in where["node_ids"]] == ["b"]
    assert where["object_size"] >= BIG * 8
    assert ember.get(consume.options(**_on("c")).remote(ref), timeout=60)[0] == BIG_SUM
    # The pull to c is reported to the owner (AddObjectLocation) right after it lands.
    wait_for_condition(lambda: sorted(idle.name(n) for n in get_object_locations(
        [ref])[ref]["node_ids"]) == ["b", "c"], timeout=15)


def test_freed_object_leaves_no_files_on_any_node(idle):
    before = {x: set(shm_files(n.shm_prefix)) for x, n in zip("abc", idle.all)}
    ref = produce.options(**_on("b")).remote(BIG)
    assert ember.get(consume.options(**_on("c")).remote(ref), timeout=60)[0] == BIG_SUM
    arr = ember.get(ref, timeout=60)            # a copy on the driver's node (a)
    assert int(arr.sum()) == BIG_SUM
    new = {x: set(shm_files(n.shm_prefix)) - before[x] for x, n in zip("abc", idle.all)}
    assert all(new.values()), f"expected a copy on every node, new files: {new}"
    del arr, ref

    def left() -> dict[str, list[str]]:
        return {x: sorted(new[x] & set(shm_files(n.shm_prefix)))
                for x, n in zip("abc", idle.all)}

    try:
        wait_for_condition(lambda: not any(left().values()), timeout=15)
    except RuntimeError:
        pytest.fail(f"shared-memory copies outlived the last ref: {left()}")


# ------------------------------------------------------------------ placement groups

def test_strict_spread_puts_each_bundle_on_its_own_node(idle):
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    try:
        assert pg.wait(30)
        table = placement_group_table(pg)
        assert table["state"] == "CREATED"
        placed = table["bundles_to_node_id"]
        assert sorted(placed) == [0, 1, 2]
        assert set(placed.values()) == {n.node_id for n in idle.all}
        refs = [where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i))
                .remote() for i in range(3)]
        assert ember.get(refs, timeout=60) == [placed[i] for i in range(3)]
    finally:
        remove_placement_group(pg)


def test_strict_pack_that_cannot_fit_stays_pending_and_reserves_nothing(idle):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    try:
        assert pg.wait(2) is False
        table = placement_group_table(pg)
        assert table["state"] == "PENDING" and table["bundles_to_node_id"] == {}
        assert _idle(), _node_resources()
        # Every node's whole CPU can still be taken: nothing is half-reserved.
        refs = [sleep_where.options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n.node_id, soft=False)).remote(0.5) for n in idle.all]
        assert ember.get(refs, timeout=60) == [n.node_id for n in idle.all]
        assert placement_group_table(pg)["state"] == "PENDING"
    finally:
        remove_placement_group(pg)


def test_pack_fits_on_one_node_when_it_can(idle):
    pg = placement_group([{"slot": 1}, {"slot": 1}], strategy="PACK")
    pg2 = placement_group([{"slot": 2}, {"slot": 1}], strategy="PACK")
    try:
        assert pg.wait(30) and pg2.wait(30)
        placed = placement_group_table(pg)["bundles_to_node_id"]
        assert len(placed) == 2 and len(set(placed.values())) == 1, placed
        # Too big for any one node: PACK (unlike STRICT_PACK) spreads it out.
        placed2 = placement_group_table(pg2)["bundles_to_node_id"]
        assert len(placed2) == 2 and len(set(placed2.values())) == 2, placed2
    finally:
        remove_placement_group(pg)
        remove_placement_group(pg2)


def test_removing_a_group_frees_its_resources(idle):
    pg = placement_group([{"CPU": 1}, {"CPU": 1, "slot": 1}], strategy="SPREAD")
    assert pg.wait(30)
    placed = placement_group_table(pg)["bundles_to_node_id"]
    assert len(set(placed.values())) == 2
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 1, timeout=10,
                       message=f"bundles did not take their CPUs: {ember.available_resources()}")
    assert any("_group_" in k for k in ember.cluster_resources())
    remove_placement_group(pg)
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 3
                       and ember.available_resources().get("slot") == 6
                       and not any("_group_" in k for k in ember.cluster_resources()),
                       timeout=15, message=f"not freed: {ember.available_resources()}")
    assert placement_group_table(pg)["state"] == "REMOVED"


# ------------------------------------------------------------------ actors

def test_actor_on_another_node_called_from_driver_and_a_third_node(idle):
    actor = Counter.options(**_on("b")).remote()
    try:
        assert ember.get(actor.node.remote(), timeout=60) == idle.b.node_id
        assert ember.get([actor.incr.remote() for _ in range(3)], timeout=30) == [1, 2, 3]
        calls, node = ember.get(call_actor.options(**_on("c")).remote(actor, 3), timeout=60)
        assert (calls, idle.name(node)) == ([4, 5, 6], "c")
        assert ember.get(actor.incr.remote(), timeout=30) == 7
    finally:
        ember.kill(actor)


def test_actor_in_a_placement_group_bundle(idle):
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    try:
        assert pg.wait(30)
        placed = placement_group_table(pg)["bundles_to_node_id"]
        actors = [Counter.options(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(
            pg, i)).remote() for i in (2, 1)]
        assert ember.get([a.node.remote() for a in actors], timeout=60) == [placed[2], placed[1]]
        assert ember.get([a.incr.remote(5) for a in actors], timeout=30) == [5, 5]
        for a in actors:
            ember.kill(a)
    finally:
        remove_placement_group(pg)


def test_driver_owned_actor_handle_used_from_other_nodes(idle):
    actor = Counter.remote()             # placed by the default policy
    try:
        home = ember.get(actor.node.remote(), timeout=60)
        others = [x for x, n in zip("abc", idle.all) if n.node_id != home]
        outs = ember.get([call_actor.options(**_on(x)).remote(actor, 2) for x in others],
                         timeout=60)
        assert [idle.name(n) for _, n in outs] == others
        assert sorted(v for calls, _ in outs for v in calls) == [1, 2, 3, 4]
        for calls, _ in outs:                # each caller's calls run in order
            assert calls == sorted(calls)
        assert ember.get(actor.incr.remote(), timeout=30) == 5
    finally:
        ember.kill(actor)

"""Lineage reconstruction (issue #5): objects whose every copy died with their node are
rebuilt by their owner re-running the tasks that made them, within ``max_retries``.

Each test places work on a node of its own (a custom resource only that node, and its
replacement, offers), waits for the result *without* fetching it (so the only copy is on
that node), kills the node with SIGKILL, and checks what ``get`` does. Executions are
counted in a file, to prove a task really ran again. The control service declares a
silent node dead after ``EMBER_NODE_TIMEOUT_S``, set low here.
"""
from __future__ import annotations

import os
import time

import pytest

import ember
from ember.cluster_utils import Cluster
from ember.exceptions import (ObjectLostError, ObjectReconstructionFailedError,
                              ObjectReconstructionFailedLineageEvictedError,
                              ObjectReconstructionFailedMaxAttemptsExceededError,
                              WorkerCrashedError)
from ember.testing import connected_cluster, wait_for_condition

NODE_TIMEOUT_S = "3"
BIG = 300_000            # bytes: above the 100 KiB inline limit, so values go to shared memory


def _runs(path) -> int:
    try:
        with open(path) as f:
            return f.read().count("\n")
    except FileNotFoundError:
        return 0


@ember.remote
def produce(path, fill: int = 1) -> bytes:
    with open(path, "a") as f:
        f.write("run\n")
    return bytes([fill]) * BIG


@ember.remote
def add_one(data: bytes, path) -> bytes:
    with open(path, "a") as f:
        f.write("run\n")
    return bytes((b + 1) % 256 for b in data[:16]) + data[16:]


@ember.remote
def total(data: bytes, gate) -> int:
    return sum(data[:100])


@ember.remote
def wait_for_file(path) -> bool:
    while not os.path.exists(path):
        time.sleep(0.05)
    return True


@ember.remote
def sleep_then_return(path, seconds: float) -> str:
    with open(path, "a") as f:
        f.write("run\n")
    time.sleep(seconds)
    return "done"


@ember.remote
def first_byte_of_borrowed(refs: list) -> int:
    return ember.get(refs[0])[0]


@ember.remote
class Maker:
    def make(self) -> bytes:
        return b"\x07" * BIG


@pytest.fixture(scope="module")
def cluster():
    """A head with one CPU; each test adds (and kills) nodes of its own."""
    with connected_cluster({"num_cpus": 1},
                           env={"EMBER_NODE_TIMEOUT_S": NODE_TIMEOUT_S}) as (cluster, _):
        yield cluster


@pytest.fixture
def add_node(cluster):
    """``add_node(resource)``: a one-CPU node offering ``resource``; those still
    alive are removed after the test, so the shared cluster stays small."""
    added = []

    def add(resource: str):
        added.append(_node(cluster, resource))
        return added[-1]

    yield add
    for node in added:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)


def _node(cluster: Cluster, resource: str):
    node = cluster.add_node(num_cpus=1, resources={resource: 1})
    cluster.wait_for_nodes(timeout=30)
    return node


def _ready_remotely(*refs) -> None:
    """Wait until the refs are computed, without pulling a copy to the driver's node."""
    ready, _ = ember.wait(list(refs), num_returns=len(refs), timeout=120, fetch_local=False)
    assert len(ready) == len(refs)


def test_lost_object_is_rebuilt_by_rerunning_its_task(cluster, add_node, tmp_path):
    node = add_node("lost1")
    runs = tmp_path / "runs"
    ref = produce.options(resources={"lost1": 1}).remote(str(runs), 5)
    _ready_remotely(ref)
    assert _runs(runs) == 1
    cluster.remove_node(node, allow_graceful=False)
    add_node("lost1")                 # where the task can run again
    assert ember.get(ref, timeout=120) == b"\x05" * BIG
    assert _runs(runs) == 2
    # The rebuilt copy is an ordinary object again: read twice, no third run.
    assert ember.get(ref, timeout=60) == b"\x05" * BIG
    assert _runs(runs) == 2


def test_chain_rebuilds_a_freed_input_first(cluster, add_node, tmp_path):
    node = add_node("lost2")
    runs_a, runs_b = tmp_path / "a", tmp_path / "b"
    a = produce.options(resources={"lost2": 1}).remote(str(runs_a), 1)
    b = add_one.options(resources={"lost2": 1}).remote(a, str(runs_b))
    del a                                   # a's value is freed once b is done...
    _ready_remotely(b)
    assert (_runs(runs_a), _runs(runs_b)) == (1, 1)
    cluster.remove_node(node, allow_graceful=False)
    add_node("lost2")
    value = ember.get(b, timeout=120)       # ...but its lineage is kept: a runs again first
    assert value[:16] == b"\x02" * 16 and len(value) == BIG
    assert (_runs(runs_a), _runs(runs_b)) == (2, 2)


def test_lost_argument_of_a_waiting_task_is_rebuilt(cluster, add_node, tmp_path):
    node = add_node("lost3")
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    data = produce.options(resources={"lost3": 1}).remote(str(runs), 3)
    _ready_remotely(data)
    # Resolved now (its only copy is on the node), but it waits for the gate to run.
    waiting = total.remote(data, wait_for_file.remote(str(gate)))
    try:
        cluster.remove_node(node, allow_graceful=False)
        add_node("lost3")
    finally:
        gate.write_text("go")               # never leave the head's CPU held
    assert ember.get(waiting, timeout=120) == 300
    assert _runs(runs) == 2


def test_no_retries_left_raises_max_attempts_exceeded(cluster, add_node, tmp_path):
    node = add_node("lost4")
    runs = tmp_path / "runs"
    ref = produce.options(resources={"lost4": 1}, max_retries=0).remote(str(runs))
    _ready_remotely(ref)
    cluster.remove_node(node, allow_graceful=False)
    with pytest.raises(ObjectReconstructionFailedMaxAttemptsExceededError,
                       match="max_retries") as info:
        ember.get(ref, timeout=120)
    assert isinstance(info.value, ObjectLostError)
    assert _runs(runs) == 1
    with pytest.raises(ObjectReconstructionFailedMaxAttemptsExceededError):
        ember.get(ref, timeout=30)          # the object now holds the error


def test_actor_results_are_not_rebuilt(cluster, add_node):
    node = add_node("lost5")
    maker = Maker.options(resources={"lost5": 1}).remote()
    ref = maker.make.remote()
    _ready_remotely(ref)
    cluster.remove_node(node, allow_graceful=False)
    with pytest.raises(ObjectReconstructionFailedError,
                       match=r"returned by Maker\.make: objects returned by actor calls are not "
                             "rebuilt"):
        ember.get(ref, timeout=120)


def test_borrower_get_asks_the_owner_to_rebuild(cluster, add_node, tmp_path):
    node = add_node("lost10")
    runs = tmp_path / "runs"
    ref = produce.options(resources={"lost10": 1}).remote(str(runs), 9)
    _ready_remotely(ref)
    cluster.remove_node(node, allow_graceful=False)
    add_node("lost10")
    # The task borrows ref (nested in a list) and gets it: its owner, the driver, rebuilds it.
    assert ember.get(first_byte_of_borrowed.remote([ref]), timeout=120) == 9
    assert _runs(runs) == 2


def test_task_on_a_dying_node_is_retried_elsewhere(cluster, add_node, tmp_path):
    node = add_node("lost6")
    runs = tmp_path / "runs"
    ref = sleep_then_return.options(resources={"lost6": 1}).remote(str(runs), 3)
    wait_for_condition(lambda: _runs(runs) == 1, timeout=60, message="the task never started")
    cluster.remove_node(node, allow_graceful=False)
    add_node("lost6")
    assert ember.get(ref, timeout=120) == "done"
    assert _runs(runs) == 2


def test_task_on_a_dying_node_without_retries_fails_promptly(cluster, add_node, tmp_path):
    node = add_node("lost7")
    runs = tmp_path / "runs"
    ref = sleep_then_return.options(resources={"lost7": 1}, max_retries=0).remote(
        str(runs), 600)
    wait_for_condition(lambda: _runs(runs) == 1, timeout=60, message="the task never started")
    cluster.remove_node(node, allow_graceful=False)
    # Not a hang: the broken connection to its worker fails it (no GetTimeoutError).
    with pytest.raises(WorkerCrashedError):
        ember.get(ref, timeout=60)


def test_lineage_is_released_with_the_refs(cluster):
    from ember._private import worker_state
    recovery = worker_state.require_core().recovery
    table = recovery.table
    inputs = [produce.remote(os.devnull) for _ in range(3)]
    outputs = [add_one.remote(x, os.devnull) for x in inputs]
    maker = Maker.remote()
    made = maker.make.remote()
    tasks = [r.task_id() for r in inputs + outputs]
    assert all(t in table for t in tasks)
    # An actor call's objects are never rebuilt: no lineage, only its name for the error.
    assert made.task_id() not in table and made.task_id() in recovery._actor_calls
    del inputs                              # pinned by their consumers' lineage
    assert len(ember.get(outputs)) == 3 and len(ember.get(made)) == BIG
    assert all(t in table for t in tasks)
    del outputs, made
    wait_for_condition(lambda: not any(t in table for t in tasks), timeout=30,
                       message=lambda: f"{sum(t in table for t in tasks)} lineage entries left")


# ---------------------------------------------------------------- own clusters


@pytest.fixture
def own_cluster(monkeypatch):
    """A cluster private to one test (its driver settings differ), not yet connected."""
    if ember.is_initialized():
        ember.shutdown()
    for key in ("EMBER_CLUSTER_TOKEN", "EMBER_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EMBER_NODE_TIMEOUT_S", NODE_TIMEOUT_S)
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 1})
    try:
        yield cluster
    finally:
        if ember.is_initialized():
            ember.shutdown()
        cluster.shutdown()


def test_evicted_lineage_raises_lineage_evicted(own_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_MAX_LINEAGE_BYTES", "2000")   # room for a few task specs
    node = _node(own_cluster, "lost8")
    own_cluster.connect()
    runs = tmp_path / "runs"
    ref = produce.options(resources={"lost8": 1}).remote(str(runs))
    _ready_remotely(ref)
    # Newer lineage pushes the oldest (ref's task) out of the bound.
    assert ember.get([total.remote(b"x" * 200, None) for _ in range(10)]) == [120 * 100] * 10
    own_cluster.remove_node(node, allow_graceful=False)
    _node(own_cluster, "lost8")
    with pytest.raises(ObjectReconstructionFailedLineageEvictedError,
                       match="EMBER_MAX_LINEAGE_BYTES"):
        ember.get(ref, timeout=120)
    assert _runs(runs) == 1


def test_lost_put_object_says_put_objects_cannot_be_rebuilt(own_cluster, monkeypatch):
    from ember._private import api
    node = _node(own_cluster, "lost9")
    # The driver attaches to that node (not the head), so its put lands there and dies
    # with it while the driver, the owner, lives on.
    monkeypatch.setattr(api, "_pick_local_node", lambda nodes, head: next(
        n for n in nodes if n.node_id == node.node_id))
    own_cluster.connect()
    ref = ember.put(b"\x01" * BIG)
    own_cluster.remove_node(node, allow_graceful=False)
    with pytest.raises(ObjectReconstructionFailedError,
                       match=f"created by ember.put and its only copy was on node "
                             f"{node.node_id}") as info:
        ember.get(ref, timeout=120)
    assert "put objects cannot be rebuilt" in str(info.value)

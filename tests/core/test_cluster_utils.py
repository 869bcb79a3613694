"""ember.cluster_utils.Cluster: several real nodes on one machine (issue #4, cluster lifecycle)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import ember
from ember.cluster_utils import Cluster
from ember.testing import pid_alive, shm_files, wait_for_condition


@pytest.fixture
def cluster_factory(fresh, monkeypatch):
    monkeypatch.delenv("EMBER_CLUSTER_TOKEN", raising=False)
    monkeypatch.delenv("EMBER_ADDRESS", raising=False)
    made: list[Cluster] = []

    def make(**kw):
        c = Cluster(shutdown_at_exit=False, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()


def test_three_nodes_with_resources_and_labels(cluster_factory):
    cluster = cluster_factory(initialize_head=True, connect=True,
                              head_node_args={"num_cpus": 1, "labels": {"role": "head"}})
    head = cluster.head_node
    accel = cluster.add_node(num_cpus=1, resources={"accel": 2}, labels={"zone": "b"})
    big = cluster.add_node(num_cpus=2, labels={"zone": "c"})
    cluster.wait_for_nodes(timeout=30)
    assert cluster.address == cluster.gcs_address == head.gcs_address
    assert [n.node_id for n in cluster.list_all_nodes()][0] == head.node_id
    assert {n.node_id for n in cluster.list_all_nodes()} == {head.node_id, accel.node_id,
                                                              big.node_id}
    assert accel.unique_id == accel.node_id and accel.ip == "127.0.0.1"
    assert accel.address.startswith("127.0.0.1:") and accel.address != big.address

    by_id = {n["NodeID"]: n for n in ember.nodes()}
    assert set(by_id) == {head.node_id, accel.node_id, big.node_id}
    assert all(n["Alive"] for n in by_id.values())
    assert by_id[head.node_id]["Labels"] == {"role": "head"}
    assert by_id[accel.node_id]["Labels"] == {"zone": "b"}
    assert by_id[accel.node_id]["Resources"]["accel"] == 2
    assert by_id[big.node_id]["Resources"]["CPU"] == 2
    assert f"{by_id[accel.node_id]['NodeManagerAddress']}:" \
           f"{by_id[accel.node_id]['NodeManagerPort']}" == accel.address
    assert ember.cluster_resources()["CPU"] == 4
    # The driver attached to the head (a node on this machine).
    assert ember.get_runtime_context().get_node_id() == head.node_id

    @ember.remote(resources={"accel": 1})
    def where():
        return ember.get_runtime_context().get_node_id()

    assert ember.get(where.remote(), timeout=60) == accel.node_id

    pids = [p for n in cluster.list_all_nodes() for p in n.all_processes()]
    cluster.shutdown()
    assert not ember.is_initialized()
    wait_for_condition(lambda: not any(pid_alive(p) for p in pids), timeout=10)
    assert cluster.list_all_nodes() == []


@pytest.mark.parametrize("graceful", [True, False])
def test_remove_node_stops_its_processes(cluster_factory, graceful):
    cluster = cluster_factory(initialize_head=True, head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    wait_for_condition(lambda: len(node.all_processes()) >= 2, timeout=20,
                       message="the node's prestarted worker did not start")
    pids = node.all_processes()
    head_pids = cluster.head_node.all_processes()
    with open(os.path.join(node.shm_dir, node.shm_prefix + "leftover"), "wb") as f:
        f.write(b"x")       # a file a killed node manager could leave behind
    cluster.remove_node(node, allow_graceful=graceful)
    assert not any(pid_alive(p) for p in pids)
    assert shm_files(node.shm_prefix) == []
    # The rest of the cluster is untouched.
    assert all(pid_alive(p) for p in head_pids)
    assert cluster.list_all_nodes() == [cluster.head_node]
    cluster.wait_for_nodes(timeout=5)
    with pytest.raises(ValueError, match="not a node of this cluster"):
        cluster.remove_node(node)


def test_bad_arguments_start_nothing(cluster_factory):
    with pytest.raises(ValueError, match="initialize_head"):
        Cluster(connect=True, shutdown_at_exit=False)
    cluster = cluster_factory()
    with pytest.raises(TypeError, match="nmu_cpus"):
        cluster.add_node(nmu_cpus=1)
    with pytest.raises(ValueError, match="num_cpus"):
        cluster.add_node(num_cpus=-1)
    with pytest.raises(ValueError, match="labels"):
        cluster.add_node(labels={"zone": 1})
    assert cluster.head_node is None and cluster.list_all_nodes() == []
    with pytest.raises(RuntimeError, match="add_node"):
        cluster.address


_OWNER = textwrap.dedent("""
    from ember.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    print("PIDS", *[p for n in c.list_all_nodes() for p in n.all_processes()], flush=True)
    import time; time.sleep(600)
""")


def test_nodes_die_with_the_process_that_made_them():
    proc = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items()
                                 if k != "EMBER_CLUSTER_TOKEN"})
    try:
        pids: list[int] = []
        for line in proc.stdout:
            if line.startswith("PIDS"):
                pids = [int(p) for p in line.split()[1:]]
                break
        assert len(pids) >= 3      # control service + two node managers (+ workers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for_condition(lambda: not any(pid_alive(p) for p in pids), timeout=15,
                           message="cluster nodes outlived the process that created them")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_head_retries_when_its_port_is_taken_first(cluster_factory, monkeypatch):
    """The control service's port is picked before it binds; losing that race is retried."""
    import socket

    from ember._private import node as node_mod
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    picks = iter([busy.getsockname()[1]])
    real = node_mod.free_port
    monkeypatch.setattr(node_mod, "free_port", lambda ip="127.0.0.1": next(picks, None) or real(ip))
    try:
        cluster = cluster_factory(initialize_head=True)
        assert cluster.address != f"127.0.0.1:{busy.getsockname()[1]}"
        cluster.wait_for_nodes(timeout=10)
    finally:
        busy.close()


def test_driver_needs_a_node_on_its_own_machine(cluster_factory, monkeypatch):
    cluster = cluster_factory(initialize_head=True, head_node_args={"num_cpus": 1})
    from ember._private import node as node_mod
    # Pretend the cluster's only node lives on another machine.
    monkeypatch.setattr(node_mod, "is_local_ip", lambda ip: False)
    with pytest.raises(ConnectionError, match="ember start --address="):
        ember.init(address=cluster.address)
    assert not ember.is_initialized()


def _alive_ids() -> set[str]:
    return {n["NodeID"] for n in ember.nodes() if n["Alive"]}


def test_removed_nodes_are_declared_dead_and_their_actors_move(cluster_factory, monkeypatch):
    # A short heartbeat timeout so a killed node is noticed quickly.
    monkeypatch.setenv("EMBER_NODE_TIMEOUT_S", "1.5")
    cluster = cluster_factory(initialize_head=True, connect=True,
                              head_node_args={"num_cpus": 1})
    graceful = cluster.add_node(num_cpus=1)
    crashed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.wait_for_nodes(timeout=30)

    @ember.remote(max_restarts=1, max_task_retries=1)
    class Where:
        def node(self):
            return ember.get_runtime_context().get_node_id()

    from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    actor = Where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        crashed.node_id, soft=True)).remote()
    assert ember.get(actor.node.remote(), timeout=30) == crashed.node_id

    cluster.remove_node(graceful)            # says goodbye: dead at once
    wait_for_condition(lambda: graceful.node_id not in _alive_ids(), timeout=3)
    cluster.remove_node(crashed, allow_graceful=False)   # silent: heartbeat timeout
    wait_for_condition(lambda: crashed.node_id not in _alive_ids(), timeout=10)
    # The actor is restarted on a node that is still alive.
    assert ember.get(actor.node.remote(), timeout=30) == cluster.head_node.node_id

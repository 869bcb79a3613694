"""The control service survives kill -9 (issue #5, fault tolerance).

Real clusters: the control service process is SIGKILLed. Meanwhile actors and
running tasks keep working (their calls go worker to worker); after it is back,
restarted by its supervisor or by hand, it has its state back (named and
detached actors, KV, placement groups, nodes) and drivers and nodes carry on.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import ember
import pytest
from ember.cluster_utils import Cluster
from ember.experimental import internal_kv
from ember.testing import control_service_pid, wait_for_condition

GRACE_S = 3.0


@pytest.fixture
def restart_env(monkeypatch):
    """A short reconnect grace, so a driver that never comes back is noticed quickly."""
    monkeypatch.setenv("EMBER_GCS_RESTART_GRACE_S", str(GRACE_S))
    if ember.is_initialized():
        ember.shutdown()
    yield
    ember.shutdown()


@pytest.fixture
def cluster(restart_env):
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    yield c
    c.shutdown()


@ember.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def inc(self) -> int:
        self.n += 1
        return self.n

    def pid(self) -> int:
        return os.getpid()


@ember.remote
def wait_for_file(started: str, release: str) -> str:
    with open(started, "w"):
        pass
    while not os.path.exists(release):
        time.sleep(0.05)
    return "finished"


@ember.remote
def double(x: int) -> int:
    return 2 * x


def run_driver(address: str, token: str, code: str, *, wait: bool = True
               ) -> subprocess.Popen | subprocess.CompletedProcess:
    """Another driver process connected to ``address`` running ``code`` (ember imported)."""
    env = dict(os.environ, EMBER_CLUSTER_TOKEN=token)
    script = f"import ember\nember.init(address={address!r}, namespace='ft')\n{code}"
    if not wait:
        return subprocess.Popen([sys.executable, "-c", script], env=env,
                                stdout=subprocess.PIPE, text=True)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def check_recovered(address: str, token: str, keeper_calls: int) -> None:
    """What must hold once the control service is back (this driver connected)."""
    keeper = ember.get_actor("keeper")
    assert ember.get(keeper.inc.remote(), timeout=60) == keeper_calls + 1
    assert internal_kv._internal_kv_get("config") == b"v1"
    assert ember.get(double.remote(21), timeout=60) == 42           # new tasks
    fresh = Counter.remote()                                         # new actors
    assert ember.get(fresh.inc.remote(), timeout=60) == 1
    assert all(n["Alive"] for n in ember.nodes())
    # A new driver connects and sees the same state.
    out = run_driver(address, token, (
        "k = ember.get_actor('keeper')\n"
        "print('calls', ember.get(k.inc.remote()))\n"
        "from ember.experimental import internal_kv\n"
        "print('kv', internal_kv._internal_kv_get('config'))\n"))
    assert out.returncode == 0, out.stderr
    assert f"calls {keeper_calls + 2}" in out.stdout and "kv b'v1'" in out.stdout


def test_work_goes_on_while_it_is_down_and_state_survives_explicit_restart(cluster, tmp_path):
    cluster.add_node(num_cpus=1)
    cluster.connect(namespace="ft")
    keeper = Counter.options(name="keeper", lifetime="detached").remote()
    plain = Counter.remote()
    assert ember.get([keeper.inc.remote(), plain.inc.remote()], timeout=60) == [1, 1]
    internal_kv._internal_kv_put("config", b"v1")
    pg = ember.util.placement_group([{"CPU": 1}], name="reserved")
    assert pg.wait(60)
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    running = wait_for_file.remote(started, release)
    wait_for_condition(lambda: os.path.exists(started), timeout=60)

    # No supervisor to bring it back: it stays down until restarted by hand.
    cluster.kill_control_service(allow_restart=False)
    time.sleep(1.0)
    assert cluster.head_node.control_service_pid() is None
    # Actor calls and tasks already running do not need it.
    assert ember.get(keeper.inc.remote(), timeout=30) == 2
    assert ember.get(plain.inc.remote(), timeout=30) == 2
    with open(release, "w"):
        pass
    assert ember.get(running, timeout=30) == "finished"

    cluster.restart_control_service()
    check_recovered(cluster.address, cluster.head_node.token, keeper_calls=2)
    table = ember.util.placement_group_table(pg)
    assert table["state"] == "CREATED" and table["name"] == "reserved"
    assert ember.get(double.options(placement_group=pg).remote(1), timeout=60) == 2
    cluster.wait_for_nodes()
    # This driver reconnected, so its own actor outlives the reconnect grace.
    time.sleep(GRACE_S + 2)
    assert ember.get(plain.inc.remote(), timeout=30) == 3


def test_embedded_cluster_restarts_it_automatically(restart_env):
    info = ember.init(num_cpus=2, namespace="ft")
    keeper = Counter.options(name="keeper", lifetime="detached").remote()
    plain = Counter.remote()
    assert ember.get([keeper.inc.remote(), plain.inc.remote()], timeout=60) == [1, 1]
    internal_kv._internal_kv_put("config", b"v1")
    actor_pid = ember.get(plain.pid.remote(), timeout=60)

    killed = control_service_pid()
    os.kill(killed, signal.SIGKILL)
    assert ember.get(plain.inc.remote(), timeout=30) == 2
    wait_for_condition(lambda: control_service_pid() not in (None, killed), timeout=60,
                       message="the supervisor restarted the control service")
    from ember._private import api
    check_recovered(info["address"], api._cluster.token, keeper_calls=1)
    # The same worker hosts the actor: it was not restarted, only found again.
    assert ember.get(plain.pid.remote(), timeout=30) == actor_pid
    time.sleep(GRACE_S + 2)
    assert ember.get(plain.inc.remote(), timeout=30) == 3


def test_driver_that_died_meanwhile_loses_its_actors_after_the_grace(cluster):
    cluster.connect(namespace="ft")
    other = run_driver(cluster.address, cluster.head_node.token, (
        "import sys, time\n"
        "@ember.remote\n"
        "class A:\n"
        "    def ping(self): return 'pong'\n"
        "temp = A.options(name='temp').remote()\n"
        "stay = A.options(name='stay', lifetime='detached').remote()\n"
        "ember.get([temp.ping.remote(), stay.ping.remote()])\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"), wait=False)
    try:
        assert other.stdout.readline().strip() == "ready"
        cluster.kill_control_service(allow_restart=False)
        other.kill()                 # that driver dies while nobody is watching
        other.wait()
        cluster.restart_control_service()
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    temp = ember.get_actor("temp")   # still there: its driver has the grace to come back

    def temp_gone() -> bool:
        try:
            ember.get_actor("temp")
        except ValueError:
            return True
        return False

    wait_for_condition(temp_gone, timeout=60, message="the dead driver's actor was stopped")
    with pytest.raises(ember.exceptions.ActorDiedError):
        ember.get(temp.ping.remote(), timeout=30)
    assert ember.get(ember.get_actor("stay").ping.remote(), timeout=30) == "pong"


def test_worker_death_while_it_is_down_is_reported_after_restart(cluster):
    cluster.connect(namespace="ft")
    phoenix = Counter.options(max_restarts=1).remote()
    old_pid = ember.get(phoenix.pid.remote(), timeout=60)
    cluster.kill_control_service(allow_restart=False)
    os.kill(old_pid, signal.SIGKILL)     # its node manager's report has to wait
    time.sleep(1.0)
    cluster.restart_control_service()

    def restarted() -> bool:
        return ember.get(phoenix.pid.remote(), timeout=30) != old_pid

    wait_for_condition(restarted, timeout=60, message="the actor restarted elsewhere")
    assert ember.get(phoenix.inc.remote(), timeout=30) == 1     # a fresh constructor


def test_nodes_register_again_with_a_control_service_that_lost_its_state(cluster):
    worker = cluster.add_node(num_cpus=1)
    cluster.kill_control_service(allow_restart=False)
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(cluster.session_dir, "control.sqlite" + suffix)
        if os.path.exists(path):
            os.unlink(path)
    cluster.restart_control_service()
    # Their heartbeats get NOT_FOUND, and they register again.
    cluster.wait_for_nodes(timeout=60)
    cluster.connect(namespace="ft")
    assert {n["NodeID"] for n in ember.nodes() if n["Alive"]} == {
        cluster.head_node.node_id, worker.node_id}
    assert ember.get(double.remote(2), timeout=60) == 4


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_the_head_processes_are_forked_by_the_supervisor_and_outlive_it(cluster):
    from ember._private.process_util import ProcessHandle, process_name
    head = cluster.head_node
    supervisor, manager = head.procs[0], head.procs[1]
    # One interpreter imports for both: the node manager and the control service
    # are the supervisor's forks, named apart (their command line is its).
    assert isinstance(manager, ProcessHandle)
    assert "ember._private.node_manager_main" in manager.args
    assert process_name(manager.pid) == "ember-nm" and _parent(manager.pid) == supervisor.pid
    gcs = head.control_service_pid()
    assert process_name(gcs) == "ember-gcs" and _parent(gcs) == supervisor.pid
    cluster.connect(namespace="ft")
    counter = Counter.remote()
    assert ember.get(counter.inc.remote(), timeout=60) == 1

    supervisor.kill()
    supervisor.wait()
    # Neither child depends on it: the node keeps serving, the control service
    # keeps answering (unsupervised now).
    assert manager.poll() is None and head.control_service_pid() is None
    assert os.path.exists(f"/proc/{gcs}") and process_name(gcs) == "ember-gcs"
    assert ember.get(counter.inc.remote(), timeout=30) == 2
    assert len(ember.get([wait_for_file.remote(*[os.devnull] * 2)], timeout=60)) == 1
    internal_kv._internal_kv_put("after", b"1")
    assert internal_kv._internal_kv_get("after") == b"1"
    ember.shutdown()
    cluster.shutdown()
    # Gone with the cluster, though its parent was gone before.
    wait_for_condition(lambda: manager.poll() is not None, timeout=30,
                       message="the head's node manager stopped with the cluster")
    wait_for_condition(lambda: not os.path.exists(f"/proc/{gcs}") or
                       process_name(gcs) != "ember-gcs", timeout=30,
                       message="the orphaned control service stopped with the cluster")

"""The `ember` command line builds, shows and tears down a cluster (issue #4, cluster lifecycle).

Every test runs with its own EMBER_TMPDIR, so `ember stop` here only sees the
clusters this test started, and the check for leftovers looks at processes
whose command line or environment names that directory.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

import ember
from ember.testing import ember_processes, wait_for_condition

CLI = [sys.executable, "-m", "ember._private.cli"]


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch):
    """An EMBER_TMPDIR private to the test, for this process and the CLI it runs."""
    root = str(tmp_path)
    monkeypatch.setenv("EMBER_TMPDIR", root)
    for var in ("EMBER_CLUSTER_TOKEN", "EMBER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    yield root
    # Whatever happened, stop what this test started.
    if ember_processes([root]):
        subprocess.run(CLI + ["stop", "--force"], env=dict(os.environ), capture_output=True,
                       timeout=60)
    assert ember_processes([root]) == []


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"ember, version {ember.__version__}"


def test_two_node_cluster_start_status_connect_stop(tmpdir_env, fresh, monkeypatch):
    root = tmpdir_env
    head = run("start", "--head", "--port", "0", "--node-ip-address", "127.0.0.1",
               "--num-cpus", "1")
    assert head.returncode == 0, head.stderr
    address = re.search(r'ember\.init\(address="([\d.]+:\d+)"\)', head.stdout).group(1)
    token = re.search(rf"ember start --address={re.escape(address)} --token=(\w+)",
                      head.stdout).group(1)
    assert f"ember start --address={address}\n" in head.stdout   # same machine: no token
    (session,) = [d for d in os.listdir(os.path.join(root, "ember")) if d.startswith("session_2")]
    session_dir = os.path.join(root, "ember", session)
    assert os.stat(os.path.join(session_dir, "token")).st_mode & 0o777 == 0o600
    with open(os.path.join(session_dir, "token")) as f:
        assert f.read() == token
    assert os.path.realpath(os.path.join(root, "ember", "session_latest")) == session_dir

    # The CLI has exited; its processes live on, detached in their own sessions.
    head_pids = ember_processes([root])
    assert len(head_pids) >= 2
    assert all(os.getsid(p) != os.getsid(0) for p in head_pids)

    # Joining from another machine (no local session): the token is needed, and checked.
    elsewhere = dict(os.environ, EMBER_TMPDIR=os.path.join(root, "elsewhere"))
    missing = run("start", "--address", address, "--num-cpus", "1", env=elsewhere)
    assert missing.returncode != 0 and "--token" in missing.stderr, missing.stderr
    wrong = run("start", "--address", address, "--num-cpus", "1", "--token", "0" * 48,
                env=elsewhere)
    assert wrong.returncode != 0 and "rejected the cluster token" in wrong.stderr, wrong.stderr
    assert sorted(ember_processes([root])) == sorted(head_pids)

    # Same machine: the token is found in the session directory.
    join = run("start", "--address", address, "--num-cpus", "1", "--labels", '{"zone": "b"}')
    assert join.returncode == 0, join.stderr

    # A driver finds the cluster by "auto" and by EMBER_ADDRESS, and sees both nodes.
    ember.init(address="auto")
    try:
        nodes = ember.nodes()
        assert len(nodes) == 2 and all(n["Alive"] for n in nodes)
        assert ember.cluster_resources()["CPU"] == 2
        assert sorted(n["Labels"].get("zone", "") for n in nodes) == ["", "b"]

        @ember.remote
        def f(x):
            return x + 1

        assert ember.get(f.remote(1), timeout=30) == 2
    finally:
        ember.shutdown()
    monkeypatch.setenv("EMBER_CLUSTER_TOKEN", "0" * 48)
    with pytest.raises(ConnectionError, match="rejected the cluster token"):
        ember.init(address=address)
    monkeypatch.delenv("EMBER_CLUSTER_TOKEN")
    monkeypatch.setenv("EMBER_ADDRESS", address)
    ember.init()
    assert ember.cluster_resources()["CPU"] == 2
    ember.shutdown()
    monkeypatch.delenv("EMBER_ADDRESS")

    status = run("status")
    assert status.returncode == 0, status.stderr
    for n in nodes:
        assert n["NodeID"][:8] in status.stdout
    assert "2 alive" in status.stdout
    assert re.search(r"^CPU +[\d.]+/2$", status.stdout, re.M), status.stdout
    assert "Demands" in status.stdout

    running = ember_processes([root])
    assert len(running) > len(head_pids)
    stop = run("stop")
    assert stop.returncode == 0, stop.stderr
    assert "Stopped" in stop.stdout
    assert ember_processes([root]) == []
    assert not os.path.lexists(os.path.join(root, "ember", "session_latest"))
    # Nothing left to find.
    with pytest.raises(ConnectionError, match="ember start --head"):
        ember.init(address="auto")
    again = run("stop")
    assert again.returncode == 0 and "No Ember processes" in again.stdout
    assert run("status").returncode != 0


def test_block_stays_in_foreground_and_stops_on_sigterm(tmpdir_env):
    root = tmpdir_env
    proc = subprocess.Popen(CLI + ["start", "--head", "--port", "0", "--num-cpus", "1",
                                   "--block"], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        for line in proc.stdout:
            if "Running in the foreground" in line:
                break
        assert proc.poll() is None
        assert len(ember_processes([root])) >= 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    wait_for_condition(lambda: ember_processes([root]) == [], timeout=10,
                       message="a blocking `ember start` left processes behind")


@pytest.mark.parametrize("args, message", [
    (["--head", "--resources", "{not json"], "not valid JSON"),
    (["--head", "--resources", '["a"]'], "JSON object"),
    (["--head", "--labels", '{"zone": 1}'], "--labels"),
    (["--head", "--num-cpus=-1"], "-1"),
    (["--head", "--object-store-memory", "0"], "--object-store-memory"),
    (["--head", "--object-store-memory", "1.5"], "--object-store-memory"),
    (["--head", "--address", "127.0.0.1:1"], "exactly one of --head"),
    ([], "exactly one of --head"),
    (["--address", "nonsense"], "HOST:PORT"),
    (["--head", "--node-ip-address", "203.0.113.7"], "not an address of this machine"),
    (["--head", "--node-ip-address", "0.0.0.0"], "not an address other nodes can reach"),
    (["--head", "--token", "has space"], "--token"),
])
def test_bad_start_arguments(tmpdir_env, args, message):
    out = run("start", "--port", "0", *args) if "--head" in args else run("start", *args)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert ember_processes([tmpdir_env]) == []


def test_port_in_use_and_unreachable_address(tmpdir_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run("start", "--head", "--port", str(port), "--num-cpus", "1")
        assert out.returncode != 0 and "already in use" in out.stderr, out.stderr
    nowhere = f"127.0.0.1:{_free_port()}"
    out = run("start", "--address", nowhere, "--token", "abc", "--num-cpus", "1")
    assert out.returncode != 0 and "could not reach" in out.stderr, out.stderr
    assert ember_processes([tmpdir_env]) == []
    assert not os.path.exists(os.path.join(tmpdir_env, "ember", "session_latest"))


def test_auto_without_a_cluster_is_a_clear_error(tmpdir_env, fresh):
    with pytest.raises(ConnectionError, match='address="auto" found no running'):
        ember.init(address="auto")
    out = run("status")
    assert out.returncode != 0 and "ember start --head" in out.stderr


def test_status_table_counts_used_resources_and_demands():
    from ember._private.cli import render_status
    from ember._private.protos import ember_pb2 as pb
    head = pb.NodeInfo(node_id="a" * 28, ip="127.0.0.1", port=1000, alive=True, start_time=1,
                       total={"CPU": 2, "GPU": 1, "accel": 4}, labels={"zone": "a"})
    other = pb.NodeInfo(node_id="b" * 28, ip="127.0.0.1", port=1001, alive=True, start_time=2,
                        total={"CPU": 1}, available={"CPU": 1})
    dead = pb.NodeInfo(node_id="c" * 28, ip="127.0.0.1", port=1002, alive=False, start_time=3,
                       total={"CPU": 8})
    # Zero quantities are left out of resource maps: CPU fully used on the head.
    head_status = pb.NodeStatus(node=pb.NodeInfo(available={"GPU": 1, "accel": 1}),
                                num_workers=3, pending_leases=2,
                                infeasible=["{CPU: 16} (task big)"])
    text = render_status("127.0.0.1:6379", [other, dead, head],
                         {head.node_id: head_status}, head_id=head.node_id)
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("aaaaaaaa (head)"))
    assert "2/2" in row and "0/1" in row and "accel 3/4" in row and "zone=a" in row
    assert "ALIVE (unreachable)" in next(line for line in lines if line.startswith("bbbbbbbb"))
    assert "DEAD" in next(line for line in lines if line.startswith("cccccccc"))
    assert "2 alive, 1 dead" in text
    demand = next(line for line in lines if line.startswith("aaaaaaaa") and "{CPU: 16}" in line)
    assert " 2 " in demand
    # Totals count live nodes only; the unreachable node's figures come from the node table.
    assert re.search(r"^CPU +2/3$", text, re.M), text


@ember.remote
class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def inc(self) -> int:
        self.n += 1
        return self.n


def test_start_head_again_restores_a_cluster_whose_control_service_died(tmpdir_env, fresh):
    from ember._private import node as node_mod
    from ember._private.process_util import process_name
    from ember.experimental import internal_kv
    port = _free_port()
    head = run("start", "--head", "--port", str(port), "--num-cpus", "1")
    assert head.returncode == 0, head.stderr
    address = f"127.0.0.1:{port}"
    ember.init(address=address, namespace="cli")
    keeper = _Counter.options(name="keeper", lifetime="detached").remote()
    assert ember.get(keeper.inc.remote(), timeout=60) == 1
    internal_kv._internal_kv_put("config", b"v1")
    ember.shutdown()

    # SIGKILL the supervisor, then the control service: nothing restarts it.
    session = os.path.realpath(os.path.join(tmpdir_env, "ember", "session_latest"))
    (supervisor,) = [r for r in node_mod.registered_processes(session) if r.role == "gcs"]
    (gcs,) = [p for p in node_mod.descendants(supervisor.pid)
              if process_name(p) == "ember-gcs"]
    for pid in (supervisor.pid, gcs):
        os.kill(pid, signal.SIGKILL)
    wait_for_condition(lambda: not node_mod.pid_alive(gcs), timeout=10)

    again = run("start", "--head", "--port", str(port), "--num-cpus", "1")
    assert again.returncode == 0, again.stderr
    assert "control service restarted" in again.stdout and session in again.stdout
    ember.init(address=address, namespace="cli")
    assert ember.get(ember.get_actor("keeper").inc.remote(), timeout=60) == 2
    assert internal_kv._internal_kv_get("config") == b"v1"
    assert len(ember.nodes()) == 1 and ember.nodes()[0]["Alive"]
    ember.shutdown()
    # Running again now is the usual "port in use" error, not a second restart.
    busy = run("start", "--head", "--port", str(port), "--num-cpus", "1")
    assert busy.returncode != 0 and "already in use" in busy.stderr, busy.stderr


def test_object_store_memory_caps_the_store_and_stop_removes_spill_files(tmpdir_env, fresh):
    import glob

    import numpy as np

    from ember._private import worker_state
    from ember._private.protos import ember_pb2 as pb

    def status():
        return worker_state.core.node_manager.GetStatus(pb.Empty(), timeout=30)

    spill_files = os.path.join(tmpdir_env, "ember", "session_*", "spill", "*", "*")
    head = run("start", "--head", "--port", "0", "--num-cpus", "1",
               "--object-store-memory", str(64 << 20))
    assert head.returncode == 0, head.stderr
    ember.init(address="auto", log_to_driver=False)
    try:
        assert status().store_capacity_bytes == 64 << 20
        refs = [ember.put(np.full(2 << 20, i)) for i in range(6)]     # 16 MiB each
        wait_for_condition(lambda: status().store_num_spilled >= 1, timeout=30)
        assert glob.glob(spill_files)
        assert [int(ember.get(r)[0]) for r in refs] == list(range(6))
    finally:
        ember.shutdown()
    assert run("stop").returncode == 0
    assert glob.glob(spill_files) == []


def test_head_serves_the_dashboard_and_stop_ends_it(tmpdir_env, fresh):
    import json
    import urllib.error
    import urllib.request

    pytest.importorskip("uvicorn")
    head = run("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "0")
    assert head.returncode == 0, head.stderr
    url, token = re.search(r"dashboard: (http://127\.0\.0\.1:\d+) .*first visit: \1/\?token="
                           r"(\w+)\)", head.stdout).groups()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "/api/cluster", timeout=30)
    assert refused.value.code == 401
    request = urllib.request.Request(url + "/api/cluster",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert json.loads(reply.read())["nodes_alive"] == 1
    # A driver connecting later is told where it is.
    ctx = ember.init(address="auto", log_to_driver=False)
    assert f"http://{ctx.dashboard_url}" == url
    ember.shutdown()
    assert run("stop").returncode == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(request, timeout=5)
    head = run("start", "--head", "--port", "0", "--num-cpus", "1", "--include-dashboard",
               "false")
    assert head.returncode == 0 and "dashboard:" not in head.stdout, head.stdout
    assert run("stop").returncode == 0

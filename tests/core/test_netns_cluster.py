"""A three-node cluster where every node is its own Linux network namespace.

Each node gets its own network stack and address (10.123.0.1-3 on a bridge in a
fourth, "hub", namespace) and its own loopback: a process that binds or
advertises 127.0.0.1 where it should use the node's address is unreachable from
the other nodes, so this proves that nothing assumes a loopback address shared
by all nodes. Each namespace also gets its own EMBER_TMPDIR, so the joining
nodes find no local session of the head and need ``--token``, as on another
machine. (The file system, /dev/shm and pids stay shared: each node still uses
its own shared-memory prefix, so objects cross nodes through ReadObject.)

    ns1 10.123.0.1   head (`ember start --head --node-ip-address 10.123.0.1`), driver
    ns2 10.123.0.2   `ember start --address 10.123.0.1:P --token T --node-ip-address 10.123.0.2`
    ns3 10.123.0.3   `ember start --address 10.123.0.1:P --token T` (address from the route)

The driver (a separate interpreter in ns1) checks: three live nodes with those
addresses; a task pinned to each node (custom resource ``n<i>``) reports that
node's id and a worker address on that node's IP; a ~20 MiB NumPy array made on
node 3 is read on node 2 and by the driver with the exact checksum; an actor on
node 2 is called from a task on node 3. While the driver is still connected, the
test lists every listening socket of every Ember process of this cluster
(/proc/<pid>/net/tcp*, which shows the process's own namespace) and requires
each to be on its node's address.

Needs root and `ip netns`; skipped otherwise. Run with:

    .venv/bin/python -m pytest -m slow tests/core/test_netns_cluster.py -q
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from ember._private.process_util import process_name
from ember.testing import ember_processes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SUBNET = "10.123.0"
PORT = 6379           # each namespace has its own port space: no clash between runs
CLI = [sys.executable, "-m", "ember._private.cli"]


# ---------------------------------------------------------------- helpers

def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({out.returncode}): "
                           f"{out.stderr.strip() or out.stdout.strip()}")
    return out


def _ns_env(root: str) -> dict[str, str]:
    env = dict(os.environ)
    env["EMBER_TMPDIR"] = root
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("EMBER_CLUSTER_TOKEN", "EMBER_ADDRESS"):
        env.pop(var, None)
    return env


def _in_ns(ns: str, argv: list[str], root: str,
           timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=timeout, env=_ns_env(root))



def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _hex_to_addr(hexaddr: str) -> str:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc/net/tcp6: four little-endian 32-bit words
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        if raw[:12] == b"\0" * 10 + b"\xff\xff":    # IPv4-mapped (gRPC binds IPv4 so)
            ip = socket.inet_ntop(socket.AF_INET, raw[12:])
        else:
            ip = socket.inet_ntop(socket.AF_INET6, raw)
    return f"{ip}:{int(port, 16)}"


def listening_sockets(pid: int) -> list[str]:
    """``ip:port`` of every TCP socket ``pid`` listens on, read in its own namespace."""
    inodes = set()
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    out = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:   # 0A = LISTEN
                out.append(_hex_to_addr(fields[1]))
    return out


def _netns_of(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/net")
    return None


def _tail(path: str, n: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"<{e}>"


# ---------------------------------------------------------------- the cluster

class NetnsCluster:
    """Namespaces, their network and the Ember nodes in them.

    ``stop()`` then ``delete_network()`` undo all of it."""

    def __init__(self, base: str) -> None:
        tag = f"emb{os.getpid()}"
        self.hub = f"{tag}-hub"
        self.ns = {i: f"{tag}-n{i}" for i in (1, 2, 3)}
        self.ip = {i: f"{SUBNET}.{i}" for i in (1, 2, 3)}
        self.root = {i: os.path.join(base, f"n{i}") for i in (1, 2, 3)}
        self.created: list[str] = []
        self.address = f"{self.ip[1]}:{PORT}"
        self.token = ""
        self.outputs: dict[str, str] = {}
        for r in self.root.values():
            os.makedirs(r, exist_ok=True)

    # ------------------------------------------------------------ network
    def create_network(self) -> None:
        for name in (self.hub, *self.ns.values()):
            # A namespace of this name can only be left over from a dead run whose
            # pid was ours: names carry the pid of a live pytest.
            _ip("netns", "del", name, check=False)
            _ip("netns", "add", name)
            self.created.append(name)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, ns in self.ns.items():
            # Both ends are created inside namespaces: nothing in the root namespace.
            _ip("-n", self.hub, "link", "add", f"p{i}", "type", "veth",
                "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", self.hub, "link", "set", f"p{i}", "up")
            _ip("-n", ns, "addr", "add", f"{self.ip[i]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def check_network(self) -> None:
        """ns2 and ns3 reach a listener on 10.123.0.1 in ns1, but not one on ns1's loopback."""
        port = PORT + 1
        serve = (f"import socket\n"
                 f"s = socket.create_server(('{self.ip[1]}', {port}))\n"
                 f"lo = socket.create_server(('127.0.0.1', {port}))\n"
                 f"s.settimeout(30)\n"
                 f"print('up', flush=True)\n"
                 f"for _ in range(2): s.accept()[0].close()\n")
        probe_code = (f"import socket\n"
                      f"socket.create_connection(('{self.ip[1]}', {port}), 10).close()\n"
                      f"try:\n"
                      f"    socket.create_connection(('127.0.0.1', {port}), 2)\n"
                      f"    print('loopback shared')\n"
                      f"except OSError:\n"
                      f"    print('loopback private')\n")
        server = subprocess.Popen(["ip", "netns", "exec", self.ns[1], sys.executable, "-c", serve],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "up"
            for i in (2, 3):
                probe = _in_ns(self.ns[i], [sys.executable, "-c", probe_code], self.root[i], 30)
                assert probe.returncode == 0, f"ns{i} cannot reach {self.ip[1]}: {probe.stderr}"
                assert probe.stdout.strip() == "loopback private", probe.stdout
            server.wait(10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

    # ------------------------------------------------------------ ember
    def start(self) -> None:
        head = _in_ns(self.ns[1], CLI + [
            "start", "--head", "--node-ip-address", self.ip[1], "--port", str(PORT),
            "--num-cpus", "1", "--resources", '{"n1": 1}'], self.root[1])
        self.outputs["head"] = head.stdout + head.stderr
        assert head.returncode == 0, f"head failed to start:\n{self.outputs['head']}"
        tokens = [t for t in glob.glob(os.path.join(self.root[1], "ember", "session_*", "token"))
                  if not os.path.islink(os.path.dirname(t))]     # not session_latest
        assert len(tokens) == 1, tokens
        with open(tokens[0]) as f:
            self.token = f.read().strip()
        assert f"--token={self.token}" in head.stdout      # what the head tells users to run
        for i in (2, 3):
            argv = CLI + ["start", "--address", self.address, "--token", self.token,
                          "--num-cpus", "1", "--resources", json.dumps({f"n{i}": 1})]
            if i == 2:
                argv += ["--node-ip-address", self.ip[i]]
            # ns3: no --node-ip-address, the node takes its address on the route to the head.
            out = _in_ns(self.ns[i], argv, self.root[i])
            self.outputs[f"node{i}"] = out.stdout + out.stderr
            assert out.returncode == 0, f"node {i} failed to join:\n{self.outputs[f'node{i}']}"
            assert f"at {self.ip[i]}:" in out.stdout, out.stdout

    def logs(self) -> str:
        parts = [f"--- `ember start` output ({k}) ---\n{v}" for k, v in self.outputs.items()]
        for i, root in self.root.items():
            for path in sorted(glob.glob(os.path.join(root, "ember", "session_*", "logs", "*"))):
                text = _tail(path, 25)
                if text.strip():
                    parts.append(f"--- ns{i}: {os.path.relpath(path, root)} ---\n{text}")
        return "\n".join(parts)

    def _shm_prefixes(self) -> set[tuple[str, str]]:
        found = set()
        for root in self.root.values():
            for path in glob.glob(os.path.join(root, "ember", "session_*", "procs", "*")):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    with open(path) as f:
                        rec = json.load(f)
                    if rec.get("shm_dir") and rec.get("shm_prefix"):
                        found.add((rec["shm_dir"], rec["shm_prefix"]))
        return found

    def stop(self) -> list[str]:
        """`ember stop` in each namespace, then SIGKILL whatever of ours is left.

        Returns a description of every process `ember stop` left behind (empty when
        it did its job)."""
        roots = list(self.root.values())
        shm = self._shm_prefixes()
        for i in (3, 2, 1):
            if self.ns[i] in self.created:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    out = _in_ns(self.ns[i], CLI + ["stop", "--grace-period", "5"],
                                 self.root[i], timeout=60)
                    self.outputs[f"stop{i}"] = out.stdout + out.stderr
        left = ember_processes(roots)
        report = [f"{pid}: {_cmdline(pid)}" for pid in left]
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while ember_processes(roots) and time.monotonic() < deadline:
            time.sleep(0.1)
        for shm_dir, prefix in shm:
            for path in glob.glob(os.path.join(shm_dir, prefix + "*")):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return report

    def delete_network(self) -> None:
        # Deleting a namespace destroys the veth ends in it (and so their peers).
        for name in reversed(self.created):
            _ip("netns", "del", name, check=False)
        self.created.clear()


@pytest.fixture
def netns_cluster(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("needs the `ip` command (iproute2) to create network namespaces")
    cluster = NetnsCluster(str(tmp_path))
    leftovers: list[str] = []
    try:
        try:
            cluster.create_network()
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot build the namespace network here: {e}")
        cluster.check_network()
        cluster.start()
        yield cluster
    finally:
        try:
            leftovers = cluster.stop()
        finally:
            cluster.delete_network()
    assert not leftovers, ("`ember stop` left these processes running (killed now):\n"
                           + "\n".join(leftovers))


# ---------------------------------------------------------------- the driver

DRIVER = r'''
import hashlib, json, os, sys, time
import numpy as np
import ember
from ember._private import worker_state

address, out_path, release_path = sys.argv[1:4]
ember.init(address=address)     # token: found in this namespace's session directory

def where():
    c = worker_state.core
    return {"node_id": c.node_id, "address": c.address, "nm": c.node_manager_address,
            "pid": os.getpid()}

result = {"driver": where()}
deadline = time.monotonic() + 30
while True:
    nodes = ember.nodes()
    if sum(n["Alive"] for n in nodes) >= 3 or time.monotonic() > deadline:
        break
    time.sleep(0.2)
result["nodes"] = [{"id": n["NodeID"], "ip": n["NodeManagerAddress"],
                    "port": n["NodeManagerPort"], "alive": n["Alive"],
                    "resources": n["Resources"]} for n in nodes]

@ember.remote
def whereami():
    return where()

result["pinned"] = {f"n{i}": ember.get(whereami.options(resources={f"n{i}": 1}).remote(),
                                       timeout=120) for i in (1, 2, 3)}

# ~20 MiB made on node 3, read on node 2 and by the driver (node 1).
N = 20 * 1024 * 1024 // 8

@ember.remote(resources={"n3": 1})
def produce(seed):
    return {"where": where(), "arr": np.random.default_rng(seed).standard_normal(N)}

@ember.remote(resources={"n2": 1})
def consume(obj):
    arr = obj["arr"]
    return {"where": where(), "made_on": obj["where"], "nbytes": arr.nbytes,
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}

expected = hashlib.sha256(np.random.default_rng(7).standard_normal(N).tobytes()).hexdigest()
ref = produce.remote(7)
t0 = time.monotonic()
consumed = ember.get(consume.remote(ref), timeout=120)
t1 = time.monotonic()
obj = ember.get(ref, timeout=120)
t2 = time.monotonic()
result["object"] = {"expected": expected, "consumed": consumed, "made_on": obj["where"],
                    "driver_sha256": hashlib.sha256(obj["arr"].tobytes()).hexdigest(),
                    "driver_nbytes": obj["arr"].nbytes,
                    "consume_s": t1 - t0, "driver_get_s": t2 - t1}
del obj

# An actor on node 2, called from a task on node 3 (and from the driver on node 1).
@ember.remote(num_cpus=0, resources={"n2": 0.5})
class Counter:
    def __init__(self):
        self.n = 0
    def incr(self, k):
        self.n += k
        return {"n": self.n, "where": where()}

@ember.remote(resources={"n3": 1})
def call_actor(counter):
    return {"replies": [ember.get(counter.incr.remote(k), timeout=60) for k in (1, 2, 3)],
            "where": where()}

counter = Counter.remote()
result["actor"] = {"from_task": ember.get(call_actor.remote(counter), timeout=120),
                   "from_driver": ember.get(counter.incr.remote(10), timeout=60)}

with open(out_path + ".tmp", "w") as f:
    json.dump(result, f)
os.replace(out_path + ".tmp", out_path)
# Stay connected (actor alive) while the test inspects the listening sockets.
deadline = time.monotonic() + 120
while not os.path.exists(release_path) and time.monotonic() < deadline:
    time.sleep(0.1)
ember.shutdown()
print("driver done")
'''


def _run_driver(cluster: NetnsCluster,
                tmp_path) -> tuple[dict, dict[int, tuple[str, str, list[str]]]]:
    """Run the driver in ns1; while it is connected, collect every Ember process's listeners."""
    out_path = str(tmp_path / "driver.json")
    release = str(tmp_path / "driver.release")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", cluster.ns[1], sys.executable, str(script), cluster.address,
         out_path, release],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ns_env(cluster.root[1]))
    listeners: dict[int, tuple[str, str, list[str]]] = {}   # pid -> cmdline, netns, sockets
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(out_path) and proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the driver produced no result within 300 s")
            time.sleep(0.1)
        if os.path.exists(out_path):
            # `ip netns exec` execs the driver: proc.pid is the driver.
            for pid in ember_processes(list(cluster.root.values())) + [proc.pid]:
                socks = listening_sockets(pid)
                if socks:
                    # A forked process (control service, worker) keeps its parent's
                    # command line; its name (comm) says what it is.
                    role = f"{_cmdline(pid)} [{process_name(pid)}]"
                    listeners[pid] = (role, _netns_of(pid) or "", socks)
        with open(release, "w"):
            pass
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0 or not os.path.exists(out_path):
        raise AssertionError(f"driver failed (exit {proc.returncode}):\n{stdout}\n{stderr}\n"
                             f"{cluster.logs()}")
    with open(out_path) as f:
        return json.load(f), listeners


def test_three_nodes_in_three_network_namespaces(netns_cluster, tmp_path):
    c = netns_cluster
    result, listeners = _run_driver(c, tmp_path)
    context = f"\ndriver result: {json.dumps(result, indent=1)}"

    # Three live nodes, each advertising its own namespace's address.
    alive = [n for n in result["nodes"] if n["alive"]]
    assert len(alive) == 3, context
    node_of = {}     # "n<i>" -> node id
    for i in (1, 2, 3):
        match = [n for n in alive if n["resources"].get(f"n{i}")]
        assert len(match) == 1, context
        assert match[0]["ip"] == c.ip[i], context
        node_of[f"n{i}"] = match[0]["id"]

    # The driver attached to the head (its machine's node) and listens on ns1's address.
    assert result["driver"]["node_id"] == node_of["n1"], context
    assert result["driver"]["address"].startswith(f"{c.ip[1]}:"), context

    # A task pinned to each node ran there, in a worker listening on that node's address.
    for i in (1, 2, 3):
        w = result["pinned"][f"n{i}"]
        assert w["node_id"] == node_of[f"n{i}"], context
        assert w["address"].startswith(f"{c.ip[i]}:"), context
        assert w["nm"].startswith(f"{c.ip[i]}:"), context

    # The 20 MiB object: made on node 3, read exactly on node 2 and by the driver.
    o = result["object"]
    assert o["made_on"]["node_id"] == node_of["n3"], context
    assert o["consumed"]["made_on"]["node_id"] == node_of["n3"], context
    assert o["consumed"]["where"]["node_id"] == node_of["n2"], context
    assert o["consumed"]["nbytes"] == o["driver_nbytes"] == 20 * 1024 * 1024, context
    assert o["consumed"]["sha256"] == o["expected"], context
    assert o["driver_sha256"] == o["expected"], context

    # The actor on node 2, called from a task on node 3 and from the driver.
    a = result["actor"]
    assert a["from_task"]["where"]["node_id"] == node_of["n3"], context
    replies = a["from_task"]["replies"]
    assert [r["n"] for r in replies] == [1, 3, 6], context
    assert {r["where"]["node_id"] for r in replies} == {node_of["n2"]}, context
    assert all(r["where"]["address"].startswith(f"{c.ip[2]}:") for r in replies), context
    assert a["from_driver"]["n"] == 16, context

    # Every server of every Ember process listens on its own node's address only.
    expected_ip = {}
    for i, ns in c.ns.items():
        inode = os.stat(f"/run/netns/{ns}").st_ino
        expected_ip[f"net:[{inode}]"] = c.ip[i]
    bad = []
    for pid, (cmd, netns, socks) in sorted(listeners.items()):
        want = expected_ip.get(netns, f"? (not a node namespace: {netns})")
        if "ember._private.dashboard" in cmd:
            # The dashboard stays on loopback unless --dashboard-host says otherwise
            # (Ray's default too): it is the one server a head address does not move.
            want = "127.0.0.1"
        for s in socks:
            if s.rsplit(":", 1)[0] != want:
                bad.append(f"pid {pid} listens on {s} (its node's address is {want}): {cmd}")
    assert listeners, "found no listening Ember process"
    assert not bad, "\n".join(bad) + context
    roles = " ".join(cmd for cmd, _, _ in listeners.values())
    for role in ("[ember-gcs]", "node_manager_main", "[ember-worker]"):
        assert role in roles, roles

"""Every RPC needs the cluster token; without it nothing runs (issue #2 s.2)."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import grpc
import pytest

import ember
import ember.testing
from ember._private import node as node_mod
from ember._private.protos import ember_pb2 as pb
from ember._private.protos import ember_pb2_grpc as pbg
from ember.exceptions import AuthenticationError


@pytest.mark.parametrize("token", [None, "wrong"])
def test_calls_without_the_token_are_refused(cluster, token):
    core = ember._private.worker_state.core
    md = None if token is None else (("ember-token", token),)
    targets = [
        (pbg.ControlServiceStub, core.gcs_address,
         lambda s: s.KVPut(pb.KVRequest(ns="x", key=b"k", value=b"v"), metadata=md, timeout=5)),
        (pbg.NodeManagerStub, core.node_manager_address,
         lambda s: s.RequestWorkerLease(pb.LeaseRequest(resources={"CPU": 1}), metadata=md,
                                        timeout=5)),
        (pbg.CoreWorkerStub, core.address,
         lambda s: s.GetObject(pb.GetObjectRequest(object_id=b"x"), metadata=md, timeout=5)),
    ]
    for stub_cls, address, call in targets:
        with grpc.insecure_channel(address) as chan:
            with pytest.raises(grpc.RpcError) as info:
                call(stub_cls(chan))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nothing changed: the KV write did not happen.
    reply = core.gcs.KVGet(pb.KVRequest(ns="x", key=b"k"), timeout=5)
    assert not reply.found


def test_servers_listen_on_loopback(cluster):
    import psutil

    core = ember._private.worker_state.core
    for address in (core.gcs_address, core.node_manager_address, core.address):
        assert address.startswith("127.0.0.1:")
    # Every listening socket of every process of the cluster (gRPC, HTTP endpoints,
    # whatever is added later), and of this driver.
    ember.get([ember.remote(lambda: 1).remote() for _ in range(2)], timeout=60)
    listening = []
    for pid in ember.testing.cluster_processes() + [os.getpid()]:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [(pid, c.laddr) for c in conns if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 4, listening

    def v4(ip: str) -> str:       # gRPC listens on a dual-stack socket: ::ffff:127.0.0.1
        addr = ipaddress.ip_address(ip)
        return str(getattr(addr, "ipv4_mapped", None) or addr)

    assert all(v4(laddr.ip) == "127.0.0.1" for _, laddr in listening), listening


def test_token_file_is_private(cluster):
    import os
    import stat
    session = ember.testing.session_dir()
    mode = stat.S_IMODE(os.stat(os.path.join(session, "token")).st_mode)
    assert mode == 0o600


def test_a_wrong_token_raises_authentication_error_without_echoing_it(cluster):
    core = ember._private.worker_state.core
    wrong = "f" * len(core.token)
    with pytest.raises(AuthenticationError) as info:
        node_mod.query_nodes(core.gcs_address, wrong)
    assert isinstance(info.value, ConnectionError)        # what callers caught before
    assert "rejected the cluster token" in str(info.value)
    assert wrong not in str(info.value) and core.token not in str(info.value)


def test_the_token_is_not_in_status_logs_command_lines_or_reprs(cluster):
    core = ember._private.worker_state.core
    token = core.token

    @ember.remote
    def noisy():
        import logging
        logging.getLogger("ember").warning("a worker log line")
        print("a worker print")
        return os.getpid()

    worker_pid = ember.get(noisy.remote(), timeout=60)
    # Refused calls are logged nowhere with the token either.
    with grpc.insecure_channel(core.gcs_address) as chan:
        with pytest.raises(grpc.RpcError):
            pbg.ControlServiceStub(chan).GetNodes(pb.Empty(), metadata=(("ember-token", "x"),),
                                                  timeout=5)
    status = subprocess.run([sys.executable, "-m", "ember._private.cli", "status", "--address",
                             core.gcs_address], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items()
                                 if k != "EMBER_CLUSTER_TOKEN"})
    assert status.returncode == 0, status.stderr
    assert core.gcs_address in status.stdout and token not in status.stdout + status.stderr
    logs = os.path.join(ember.testing.session_dir(), "logs")
    files = [os.path.join(d, f) for d, _, names in os.walk(logs) for f in names]
    assert files
    for path in files:
        with open(path, "rb") as f:
            assert token.encode() not in f.read(), path
    # /proc/<pid>/cmdline is world-readable; the token travels in the environment,
    # which only the owner can read.
    pids = ember.testing.cluster_processes()
    assert worker_pid in pids and len(pids) >= 3
    for pid in pids + [os.getpid()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            environ_mode = os.stat(f"/proc/{pid}/environ").st_mode
        except FileNotFoundError:
            continue          # exited meanwhile
        assert token.encode() not in cmdline, (pid, cmdline)
        assert environ_mode & 0o077 == 0, (pid, oct(environ_mode))
    from ember._private import api
    assert token not in repr(api._cluster)

"""TLS for every connection of a cluster (EMBER_TLS_CERT/KEY/CA, `ember start --tls-*`).

Certificates are made in the test with the ``openssl`` command
(``ember.testing.make_tls_certs``): a cluster CA and a certificate it signed
for 127.0.0.1, and an unrelated "rogue" CA with its own certificate.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap

import grpc
import pytest

import ember
from ember._private import node as node_mod
from ember._private import rpc, tls
from ember._private.protos import ember_pb2 as pb
from ember._private.protos import ember_pb2_grpc as pbg
from ember.cluster_utils import Cluster
from ember.testing import ember_processes, make_tls_certs

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl command to make certificates")

CLI = [sys.executable, "-m", "ember._private.cli"]
TLS_VARS = (tls.CERT_ENV, tls.KEY_ENV, tls.CA_ENV, tls.SERVER_NAME_ENV)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    root = tmp_path_factory.mktemp("certs")
    return {"cluster": make_tls_certs(str(root / "cluster")),
            "rogue": make_tls_certs(str(root / "rogue"), name="rogue")}


def _use(mp: pytest.MonkeyPatch, cert: str | None, key: str | None, ca: str | None) -> None:
    for var, value in ((tls.CERT_ENV, cert), (tls.KEY_ENV, key), (tls.CA_ENV, ca)):
        if value is None:
            mp.delenv(var, raising=False)
        else:
            mp.setenv(var, value)


def _env_without_tls() -> dict:
    return {k: v for k, v in os.environ.items() if k not in TLS_VARS}


# ---------------------------------------------------------------- configuration

def test_config_errors_name_the_variable_and_the_fix(certs, tmp_path):
    c, r = certs["cluster"], certs["rogue"]
    assert tls.config_from({}) is None
    cases = [
        ({tls.CERT_ENV: c["cert"]}, "EMBER_TLS_KEY is not set"),
        ({tls.KEY_ENV: c["key"]}, "EMBER_TLS_CERT is not set"),
        ({tls.CA_ENV: c["ca"]}, "EMBER_TLS_CERT and EMBER_TLS_KEY are not set"),
        ({tls.CERT_ENV: str(tmp_path / "nope.pem"), tls.KEY_ENV: c["key"]},
         "EMBER_TLS_CERT=.*nope.pem: cannot read it"),
        ({tls.CERT_ENV: c["cert"], tls.KEY_ENV: r["key"]}, "key belongs to the certificate"),
        ({tls.CERT_ENV: c["cert"], tls.KEY_ENV: c["key"], tls.CA_ENV: c["key"]},
         "EMBER_TLS_CA=.* holds no usable PEM certificate"),
        ({tls.SERVER_NAME_ENV: "ember"}, "EMBER_TLS_SERVER_NAME is set but TLS is not"),
    ]
    for env, message in cases:
        with pytest.raises(ValueError, match=message):
            tls.config_from(env)
    cfg = tls.config_from({tls.CERT_ENV: c["cert"], tls.KEY_ENV: c["key"], tls.CA_ENV: c["ca"]})
    assert cfg.mutual and cfg.trusted == open(c["ca"], "rb").read()
    assert "BEGIN" not in repr(cfg)        # key material stays out of reprs and logs
    plain = tls.config_from({tls.CERT_ENV: c["cert"], tls.KEY_ENV: c["key"]})
    assert not plain.mutual and plain.trusted == open(c["cert"], "rb").read()


def test_exposure_warning_only_for_plaintext_on_a_network_address(certs):
    cfg = tls.config_from({tls.CERT_ENV: certs["cluster"]["cert"],
                           tls.KEY_ENV: certs["cluster"]["key"]})
    for ip in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert tls.exposure_warning(ip, None) is None
    assert "10.1.2.3 without TLS" in tls.exposure_warning("10.1.2.3", None)
    assert tls.exposure_warning("10.1.2.3", cfg) is None


def test_verdicts_say_what_to_change(certs):
    cfg = tls.config_from({tls.CERT_ENV: certs["cluster"]["cert"],
                           tls.KEY_ENV: certs["cluster"]["key"]})
    assert tls.verdict("h:1", None, "h2") is None and tls.verdict("h:1", cfg, "h2") is None
    assert "uses TLS and this process does not" in tls.verdict("h:1", None, "closed")
    assert "refused this process's client certificate" in tls.verdict("h:1", cfg, "closed")
    assert "does not speak TLS" in tls.verdict("h:1", cfg, "not-tls")
    assert "did not verify" in tls.verdict("h:1", cfg, "bad-server-cert", "x")
    assert tls.verdict("h:1", None, "unknown") is None


def test_cli_rejects_unusable_tls_flags(certs, tmp_path):
    env = {**_env_without_tls(), "EMBER_TMPDIR": str(tmp_path)}
    out = subprocess.run(CLI + ["start", "--head", "--port", "0", "--num-cpus", "1",
                                "--tls-cert", certs["cluster"]["cert"]],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "EMBER_TLS_KEY is not set" in out.stderr, out.stderr
    assert ember_processes([str(tmp_path)]) == []


# ---------------------------------------------------------------- a bare server, no CA

def test_without_a_ca_clients_trust_only_the_cluster_certificate(certs):
    """TLS without EMBER_TLS_CA: encrypted; a client trusts the cluster certificate
    itself, so a server with another certificate is not believed."""
    token = rpc.new_token()
    c, r = certs["cluster"], certs["rogue"]
    with pytest.MonkeyPatch.context() as mp:
        _use(mp, c["cert"], c["key"], None)
        server = rpc.make_server(token, max_workers=2)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "t.T", {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}),))
        port = rpc.bind(server, "127.0.0.1", 0)
        server.start()
        address = f"127.0.0.1:{port}"
        try:
            with rpc.channel(address) as chan:
                echo = chan.unary_unary("/t.T/Echo")
                assert echo(b"hi", metadata=rpc.metadata(token), timeout=10) == b"hi"
                with pytest.raises(grpc.RpcError) as info:   # TLS does not replace the token
                    echo(b"hi", timeout=10)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            tls.check_transport(address)
            # Plaintext client: refused at the transport, told why.
            _use(mp, None, None, None)
            with rpc.channel(address) as chan:
                with pytest.raises(grpc.RpcError) as info:
                    chan.unary_unary("/t.T/Echo")(b"hi", metadata=rpc.metadata(token), timeout=5)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(tls.TlsError, match="uses TLS and this process does not"):
                tls.check_transport(address)
            # A client whose own certificate is another one does not believe this server.
            _use(mp, r["cert"], r["key"], None)
            with pytest.raises(tls.TlsError, match="did not verify"):
                tls.check_transport(address)
        finally:
            server.stop(0)


# ---------------------------------------------------------------- a mutual-TLS cluster

@pytest.fixture(scope="module")
def tls_cluster(certs):
    if ember.is_initialized():
        ember.shutdown()
    c = certs["cluster"]
    with pytest.MonkeyPatch.context() as mp:
        _use(mp, c["cert"], c["key"], c["ca"])
        mp.delenv(tls.SERVER_NAME_ENV, raising=False)
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "resources": {"near": 1}})
        try:
            far = cluster.add_node(num_cpus=1, resources={"far": 1})
            cluster.wait_for_nodes()
            cluster.connect()
            yield cluster, far
        finally:
            ember.shutdown()
            cluster.shutdown()


@ember.remote
def _make(n):
    import numpy as np
    return np.ones(n, dtype=np.uint8)


@ember.remote
def _total(a):
    return int(a.sum())


def test_tasks_and_large_objects_cross_nodes_over_tls(tls_cluster):
    cluster, far = tls_cluster
    size = 48 << 20                       # above object_transfer's parallel-range threshold
    ref = _make.options(resources={"far": 1}).remote(size)
    assert ember.get(_total.options(resources={"near": 1}).remote(ref), timeout=120) == size
    assert ember.get(ref, timeout=120).nbytes == size        # to the driver, on the head
    # Every server really is TLS-only: a plaintext connection is closed unanswered,
    # a TLS one gets an HTTP/2 answer.
    core = ember._private.worker_state.core
    cfg = tls.load()
    for address in (cluster.address, cluster.head_node.address, far.address, core.address):
        assert tls.probe(address, None) == ("closed", ""), address
        assert tls.probe(address, cfg) == ("h2", ""), address


def test_plaintext_clients_are_refused_with_a_clear_error(tls_cluster):
    cluster, far = tls_cluster
    core = ember._private.worker_state.core
    for address in (cluster.address, far.address, core.address):
        with grpc.insecure_channel(address) as chan:
            with pytest.raises(grpc.RpcError) as info:
                pbg.ControlServiceStub(chan).KVPut(
                    pb.KVRequest(ns="tls_test", key=b"k", value=b"v"),
                    metadata=rpc.metadata(core.token), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not core.gcs.KVGet(pb.KVRequest(ns="tls_test", key=b"k"), timeout=5).found
    # A driver without TLS settings (its token found in the session directory).
    script = textwrap.dedent(f"""
        import ember
        try:
            ember.init(address={cluster.address!r})
        except ConnectionError as e:
            print("REFUSED", type(e).__name__, e)
        else:
            print("CONNECTED")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_env_without_tls(), timeout=120)
    assert "REFUSED TlsError" in out.stdout, out.stdout + out.stderr
    assert "the cluster uses TLS and this process does not" in out.stdout
    assert core.token not in out.stdout + out.stderr


def test_client_certificates_not_signed_by_the_ca_are_refused(tls_cluster, certs):
    cluster, _ = tls_cluster
    core = ember._private.worker_state.core
    c, r = certs["cluster"], certs["rogue"]
    read = lambda p: open(p, "rb").read()  # noqa: E731
    # Trusts the cluster's CA (so the server checks out) but presents a rogue certificate.
    rogue = grpc.ssl_channel_credentials(read(c["ca"]), read(r["key"]), read(r["cert"]))
    anonymous = grpc.ssl_channel_credentials(read(c["ca"]))       # TLS, but no certificate
    for creds in (rogue, anonymous):
        with grpc.secure_channel(cluster.address, creds) as chan:
            with pytest.raises(grpc.RpcError) as info:
                pbg.ControlServiceStub(chan).KVPut(
                    pb.KVRequest(ns="tls_test", key=b"k", value=b"v"),
                    metadata=rpc.metadata(core.token), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not core.gcs.KVGet(pb.KVRequest(ns="tls_test", key=b"k"), timeout=5).found
    with pytest.MonkeyPatch.context() as mp:
        _use(mp, r["cert"], r["key"], c["ca"])
        with pytest.raises(tls.TlsError, match="refused this process's client certificate"):
            node_mod.query_nodes(cluster.address, core.token)
        _use(mp, c["cert"], c["key"], r["ca"])       # verifying the server with another CA
        with pytest.raises(tls.TlsError, match="did not verify against EMBER_TLS_CA"):
            node_mod.query_nodes(cluster.address, core.token)
        # The right certificates but the wrong token: TLS does not replace the token.
        _use(mp, c["cert"], c["key"], c["ca"])
        with pytest.raises(ember.exceptions.AuthenticationError, match="rejected the cluster"):
            node_mod.query_nodes(cluster.address, "0" * len(core.token))


@ember.remote
class _Where:
    def push_port(self):
        return ember._private.worker_state.core.push_port


def test_framed_push_tasks_speak_only_tls(tls_cluster, certs):
    """The framed PushTasks port (transports/framed.py) of a TLS cluster: actor calls
    cross it encrypted; a plaintext client, or a TLS client whose certificate the CA
    did not sign, is closed unanswered even with the right token."""
    import socket
    import ssl

    from ember._private.transports import frames, framed

    core = ember._private.worker_state.core
    actor = _Where.options(resources={"far": 1}).remote()
    port = ember.get(actor.push_port.remote(), timeout=60)
    assert ember.get([actor.push_port.remote() for _ in range(20)], timeout=60) == [port] * 20
    conn = core.actors._actors[actor._actor_id.binary()].conn
    assert isinstance(conn.call, framed.FramedPushCall)     # the calls above went framed
    probe = pb.TaskBatch(tasks=[pb.TaskSpec(task_id=os.urandom(24), function_id=os.urandom(16),
                                            num_returns=1, name="probe")])
    hello = frames.auth_frame(core.token) + frames.encode_frame([probe.SerializeToString()])

    def answered(sock) -> bool:
        sock.settimeout(10)
        try:
            return sock.recv(1) != b""
        except (ConnectionResetError, ssl.SSLError):
            return False

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:   # plaintext
        sock.sendall(hello)
        assert not answered(sock)
    c, r = certs["cluster"], certs["rogue"]
    for cert, key in ((c["cert"], c["key"]), (r["cert"], r["key"])):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(c["ca"])
        ctx.load_cert_chain(cert, key)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    sock.sendall(hello)
                    ok = answered(sock)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                ok = False
        # Positive control: with the cluster's certificate the same bytes are answered.
        assert ok == (cert == c["cert"]), cert
    ember.kill(actor)


# ---------------------------------------------------------------- the command line

def test_cli_tls_flags_reach_every_process(certs, tmp_path):
    c = certs["cluster"]
    root = str(tmp_path)
    env = {**_env_without_tls(), "EMBER_TMPDIR": root}
    env.pop("EMBER_CLUSTER_TOKEN", None)
    env.pop("EMBER_ADDRESS", None)
    tls_env = {**env, tls.CERT_ENV: c["cert"], tls.KEY_ENV: c["key"], tls.CA_ENV: c["ca"]}
    try:
        head = subprocess.run(CLI + ["start", "--head", "--port", "0", "--num-cpus", "1",
                                     "--tls-cert", c["cert"], "--tls-key", c["key"],
                                     "--tls-ca", c["ca"]],
                              capture_output=True, text=True, env=env, timeout=120)
        assert head.returncode == 0, head.stderr
        assert "TLS is on (mutual)" in head.stdout and f"{tls.CA_ENV}={c['ca']}" in head.stdout
        plain = subprocess.run(CLI + ["status", "--address", "auto"], capture_output=True,
                               text=True, env=env, timeout=60)
        assert plain.returncode != 0 and "uses TLS and this process does not" in plain.stderr, (
            plain.stdout + plain.stderr)
        ok = subprocess.run(CLI + ["status", "--address", "auto"], capture_output=True,
                            text=True, env=tls_env, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert "Nodes: 1 alive" in ok.stdout, ok.stdout
    finally:
        subprocess.run(CLI + ["stop", "--force"], env=env, capture_output=True, timeout=60)
    assert ember_processes([root]) == []


# ---------------------------------------------------------------- exposure warning

def _network_ip() -> str | None:
    import psutil
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family.name == "AF_INET" and not a.address.startswith("127.") and \
                    node_mod.is_local_ip(a.address):
                return a.address
    return None


def test_head_on_a_network_address_without_tls_warns(caplog):
    ip = _network_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    if ember.is_initialized():
        ember.shutdown()
    with pytest.MonkeyPatch.context() as mp:
        _use(mp, None, None, None)
        with caplog.at_level(logging.WARNING, logger="ember"):
            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 0, "node_ip_address": ip})
            cluster.shutdown()
    warnings = [r.getMessage() for r in caplog.records if "without TLS" in r.getMessage()]
    assert warnings and f"listens on {ip} without TLS" in warnings[0], caplog.text


# ---------------------------------------------------------------- HTTP endpoints

def test_http_endpoint_over_mutual_tls_with_the_token(certs):
    """An http.server endpoint of the cluster: TLS from tls.wrap_http_server, the token
    from http_auth (as metrics_export.py and other HTTP endpoints do)."""
    import ssl
    import threading
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ember._private import http_auth

    token = rpc.new_token()
    c, r = certs["cluster"], certs["rogue"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path, _, query = self.path.partition("?")
            ok = http_auth.decide(token, "GET", path, query.encode(), self.headers.items()).allow
            body = b"metrics here" if ok else b"no"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cfg = tls.config_from({tls.CERT_ENV: c["cert"], tls.KEY_ENV: c["key"], tls.CA_ENV: c["ca"]})
    assert tls.wrap_http_server(server, cfg)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        good = tls.client_ssl_context(cfg)
        req = urllib.request.Request(url, headers=http_auth.auth_headers(token))
        with urllib.request.urlopen(req, context=good, timeout=10) as resp:
            assert resp.status == 200 and resp.read() == b"metrics here"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, context=good, timeout=10)
        assert info.value.code == 401
        # Plaintext, and a client certificate from another CA: no answer at all.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(req.full_url.replace("https", "http"), timeout=10)
        rogue = tls.client_ssl_context(tls.config_from(
            {tls.CERT_ENV: r["cert"], tls.KEY_ENV: r["key"], tls.CA_ENV: c["ca"]}))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError, OSError)):
            with urllib.request.urlopen(req, context=rogue, timeout=10) as resp:
                resp.read()
    finally:
        server.shutdown()
        server.server_close()

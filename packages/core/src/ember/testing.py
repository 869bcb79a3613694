"""Helpers for testing code that uses Ember (and Ember itself).

>>> from ember.testing import wait_for_condition
>>> wait_for_condition(lambda: ember.available_resources().get("CPU") == 2)
"""
from __future__ import annotations

import contextlib
import glob
import os
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

__all__ = ["wait_for_condition", "shm_files", "cluster_processes", "session_dir",
           "process_state", "pid_alive", "ember_processes", "node_worker_pids",
           "make_tls_certs",
           "control_service_pid", "closed_without_reply", "connected_cluster",
           "run_driver"]

# What would point a driver at some other cluster (or job): cleared while a test
# cluster is up, restored after.
_CLUSTER_ENV = ("EMBER_CLUSTER_TOKEN", "EMBER_ADDRESS", "EMBER_JOB_RUNTIME_ENV")


def wait_for_condition(predicate: Callable[[], bool], timeout: float = 10.0,
                       retry_interval: float = 0.05, message: str = "") -> None:
    """Poll ``predicate`` until it is true; raise RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last_exc = e
        time.sleep(retry_interval)
    raise RuntimeError(f"condition not met within {timeout}s{': ' + message if message else ''}"
                       + (f" (last error: {last_exc!r})" if last_exc else ""))


def session_dir() -> str | None:
    """The session directory of the cluster this driver started, if any."""
    from ._private import api
    return api._cluster.session_dir if api._cluster is not None else None


def shm_files(prefix: str | None = None) -> list[str]:
    """Shared-memory files of the current cluster (or of all Ember clusters)."""
    from ._private import api
    from ._private.shm_store import default_shm_dir
    if prefix is None:
        prefix = api._cluster.shm_prefix if api._cluster is not None else "ember_"
    return sorted(p for p in glob.glob(os.path.join(default_shm_dir(), prefix + "*")))


def cluster_processes() -> list[int]:
    """Pids of the control service, node manager and workers this driver started."""
    from ._private import api
    if api._cluster is None:
        return []
    pids = [p.pid for p in api._cluster.procs]
    for pid in list(pids):
        pids.extend(_children(pid))
    # Workers forked by a node's fork server are its children (worker_fork.py).
    pids.extend(kid for pid in list(pids) if _is_fork_server(pid) for kid in _children(pid))
    # A head's node manager is one of procs and a child of another (node.start_head).
    return list(dict.fromkeys(pids))


def node_worker_pids(node: Any) -> list[int]:
    """Pids of the worker processes (task and actor workers) of a ``Cluster`` node.

    >>> os.kill(random.choice(node_worker_pids(cluster.head_node)), signal.SIGKILL)
    """
    if not node.procs:
        return []
    # The node manager is the last process a node starts; workers are its
    # children, or children of its fork server (worker_fork.py).
    pids = []
    for pid in _children(node.procs[-1].pid):
        pids.extend(_children(pid) if _is_fork_server(pid) else [pid])
    return [pid for pid in pids if process_state(pid) not in (None, "Z")]


def _is_fork_server(pid: int) -> bool:
    from ._private.local_sessions import _cmdline
    from ._private.process_util import process_name
    from ._private.worker_fork import PROCESS_NAME
    # Forked from its node manager (named), or exec'd (EMBER_WORKER_FORK tests).
    return process_name(pid) == PROCESS_NAME or " --fork-server" in _cmdline(pid)


def control_service_pid() -> int | None:
    """Pid of the control service of the cluster this driver started (None if not running).

    Killing it tests recovery: its supervisor starts it again on the same address.

    >>> os.kill(control_service_pid(), signal.SIGKILL)
    """
    from ._private import api
    return api._cluster.control_service_pid() if api._cluster is not None else None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return out


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` from ``/proc/<pid>/stat`` (``R``, ``S``, ``Z``...), or None.

    None means the process is gone (or its stat file could not be read). The
    state is the first field after the command name in parentheses, parsed from
    the last ``)`` so a command name with spaces or parentheses does not shift it.

    >>> process_state(os.getpid())
    'R'
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs: it exists and is neither a zombie (``Z``) nor dead (``X``).

    A killed child that its parent has not reaped yet counts as gone.

    >>> wait_for_condition(lambda: not any(pid_alive(p) for p in pids), timeout=10)
    """
    return process_state(pid) not in (None, "Z", "X")


def ember_processes(roots: Iterable[str]) -> list[int]:
    """Pids of live Ember processes whose command line or environment names one of ``roots``.

    Ember processes are those with ``ember`` in their command line; the test
    process itself and processes that are not alive (see :func:`pid_alive`) are
    left out. ``roots`` are typically EMBER_TMPDIR or session directories private
    to a test, so the result is what that test started and has not stopped yet.
    A single string counts as one root, not as its characters.

    >>> assert ember_processes([str(tmp_path)]) == []
    """
    wanted = [roots] if isinstance(roots, str) else list(roots)
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().decode(errors="replace")
        except OSError:
            continue
        if "ember" not in cmd or not pid_alive(pid):
            continue
        if any(r in cmd or r in env for r in wanted):
            out.append(pid)
    return out


def make_tls_certs(directory: str, ips: Iterable[str] = ("127.0.0.1",),
                   name: str = "ember-test") -> dict[str, str]:
    """Write a throwaway CA and a certificate it signed for ``ips`` into ``directory``.

    Returns the paths ``{"ca": ..., "cert": ..., "key": ...}``: what
    EMBER_TLS_CA, EMBER_TLS_CERT and EMBER_TLS_KEY take. The certificate names
    each address as an IP subject alternative name (what a gRPC client checks
    when it dials ``ip:port``) and serves both as server and client certificate,
    as every Ember process is both. Uses the ``openssl`` command; the CA key is
    deleted, so nothing else can be signed with it. Call it again with another
    ``directory`` for a second, unrelated CA (a rogue client).

    >>> paths = make_tls_certs(str(tmp_path))
    >>> monkeypatch.setenv("EMBER_TLS_CERT", paths["cert"])
    """
    import secrets
    import subprocess

    os.makedirs(directory, exist_ok=True)
    p = {k: os.path.join(directory, f"{name}-{k.replace('.', '-')}.{ext}") for k, ext in
         (("ca", "pem"), ("ca.key", "pem"), ("cert", "pem"), ("key", "pem"), ("csr", "pem"),
          ("ext", "cnf"))}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", p["ca.key"], "-out", p["ca"], "-days", "2",
        "-subj", f"/CN={name}-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", p["key"], "-out", p["csr"], "-subj", f"/CN={name}-node")
    with open(p["ext"], "w") as f:
        f.write("subjectAltName=" + ",".join(f"IP:{ip}" for ip in ips) + "\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", p["csr"], "-CA", p["ca"], "-CAkey", p["ca.key"],
        "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-out", p["cert"],
        "-extfile", p["ext"])
    for k in ("ca.key", "csr", "ext"):
        os.unlink(p[k])
    os.chmod(p["key"], 0o600)
    return {"ca": p["ca"], "cert": p["cert"], "key": p["key"]}


def run_driver(script: str, marker: str, env: Mapping[str, str] | None = None,
               timeout: float = 120.0) -> str:
    """Run ``script`` as a driver in a fresh interpreter (its own cluster, imports and
    environment); return what follows ``marker`` on the first stdout line starting
    with it. Fails with the script's output when no such line was printed.

    >>> run_driver("print('ANSWER', 6 * 7)", "ANSWER")
    '42'
    """
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=timeout, env=None if env is None else dict(env))
    for line in out.stdout.splitlines():
        if line.startswith(marker + " "):
            return line[len(marker) + 1:]
    raise AssertionError(f"the driver printed no {marker!r} line (exit code {out.returncode}):"
                         f"\n{out.stdout}\n{out.stderr[-3000:]}")


def closed_without_reply(sock: Any, timeout: float = 10.0) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) without sending a byte:
    how every Ember server answers a client it refuses.

    >>> import socket
    >>> a, b = socket.socketpair(); b.close()
    >>> closed_without_reply(a)
    True
    """
    import socket
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@contextlib.contextmanager
def connected_cluster(head_node_args: Mapping[str, Any] | None = None,
                      nodes: Sequence[Mapping[str, Any]] = (),
                      env: Mapping[str, str] | None = None) -> Iterator[tuple[Any, list]]:
    """A ``cluster_utils.Cluster`` on this machine (a head plus ``nodes``, each the
    keyword arguments of ``add_node``) with this process connected to it; yields
    ``(cluster, added nodes)``. Any earlier connection is shut down first, and the
    cluster, the connection and the environment (``env`` is set meanwhile) are
    restored afterwards.

    >>> with connected_cluster({"num_cpus": 1}, nodes=[{"num_cpus": 1}]) as (c, [b]):
    ...     assert len(ember.nodes()) == 2
    """
    import ember
    from .cluster_utils import Cluster
    if ember.is_initialized():
        ember.shutdown()
    env = dict(env or {})
    saved = {k: os.environ.get(k) for k in (*_CLUSTER_ENV, *env)}
    for key in _CLUSTER_ENV:
        os.environ.pop(key, None)
    os.environ.update(env)
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args=dict(head_node_args or {}))
    try:
        added = [cluster.add_node(**args) for args in nodes]
        cluster.wait_for_nodes(timeout=30)
        cluster.connect()
        yield cluster, added
    finally:
        cluster.shutdown()
        if ember.is_initialized():
            ember.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

"""Starting and stopping the processes of Ember nodes, and finding them again.

A *head* is the control service plus a node manager; any other node is a node
manager that joins a head's control service. Three callers share this code:

- ``ember.init()`` with no address (``start_local_cluster``): a head tied to the
  driver that started it;
- ``ember start`` (``cli.py``): detached processes that outlive the command,
  registered in the session directory so ``ember stop`` can find them and
  ``ember.init(address="auto")`` can find the cluster;
- ``ember.cluster_utils.Cluster``: several nodes tied to the creating process.

Tied processes watch a pipe whose write end only their creator holds: if the
creator dies in any way (even SIGKILL) they read EOF, clean up and exit. The
node manager does the same for its workers. Every child reports readiness (its
port) on a second pipe, so a start-up failure surfaces at once with the tail of
the child's log.

Session directory (``$EMBER_TMPDIR/ember/session_*``, default ``/tmp/ember``):
``token`` (mode 0600), ``gcs_address``, ``logs/``, ``control.sqlite`` and, for
clusters started by the CLI, ``procs/<pid>`` (one JSON file per process
started) plus the ``session_latest`` symlink next to the session directories;
finding, registering and stopping those is local_sessions.py.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..exceptions import AuthenticationError
from . import ids, process_util
from .addresses import split_address  # noqa: F401 - re-exported
# Finding, registering and stopping processes and sessions on this machine lives in
# local_sessions.py; re-exported here for the callers that import it from node.
from .local_sessions import (  # noqa: F401 - re-exported
    LATEST_LINK, PROCS_DIR, SESSION_ROOT, Registered, StopResult, _cmdline, _glob,
    _kill_and_wait, _proc_start_time, _send, _session_dirs, _wait_gone, descendants,
    find_latest_cluster, find_local_token, find_session, pid_alive, read_token,
    register_process, registered_processes, session_processes, session_root, set_latest,
    stop_registered, unregister_process)

DEFAULT_PORT = 6379          # Ray's default for the head's control service
# KV namespace and keys the control service is given at start (gcs_main.py).
CLUSTER_KV_NS = "cluster"
TOKEN_ENV = ids.TOKEN_ENV


# ---------------------------------------------------------------- nodes

@dataclass(eq=False)
class NodeProcesses:
    """The processes of one node (a head also runs the control service).

    ``address`` is the node manager's ``ip:port``; ``gcs_address`` the control
    service's. ``procs`` are the started processes (control service first on a
    head); ``parent_w`` is the write end of their watchdog pipe (-1 when the
    processes are detached and outlive their starter).
    """

    node_id: str
    ip: str
    port: int
    gcs_address: str
    session_dir: str
    token: str = field(repr=False)   # never in reprs: they end up in logs and test output
    shm_dir: str
    shm_prefix: str
    is_head: bool = False
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    parent_w: int = -1
    # Watchdog pipes of processes started later for this node (a control
    # service restarted by hand), closed with parent_w.
    more_pipes: list[int] = field(default_factory=list)
    # The head's dashboard, ``host:port`` as Ray's dashboard_url (None: not started).
    dashboard_url: str | None = None
    # The head's job server, ``http(s)://host:port`` (None: not started; job_launch.py).
    job_server_url: str | None = None

    @property
    def address(self) -> str:
        """The node manager's address, ``ip:port``."""
        return f"{self.ip}:{self.port}"

    # Names other callers (and Ray's Node) use for the same things.
    node_manager_address = address

    @property
    def unique_id(self) -> str:
        return self.node_id

    @property
    def node_ip_address(self) -> str:
        return self.ip

    @property
    def node_manager_port(self) -> int:
        return self.port

    def all_processes(self) -> list[int]:
        """Pids of this node's processes, its workers included."""
        pids = [p.pid for p in self.procs if p.poll() is None]
        for pid in list(pids):
            pids.extend(descendants(pid))
        # A head's node manager is one of procs and a child of another.
        return list(dict.fromkeys(pids))

    def control_service_pid(self) -> int | None:
        """Pid of the control service now running under this head's supervisor, if any.

        >>> os.kill(head.control_service_pid(), signal.SIGKILL)   # its supervisor restarts it
        """
        if not self.is_head or not self.procs:
            return None
        # The supervisor's one child, forked (gcs_supervisor.py): named, not exec'd.
        from .gcs_supervisor import PROCESS_NAME
        from .process_util import process_name
        for pid in descendants(self.procs[0].pid):
            if process_name(pid) == PROCESS_NAME and pid_alive(pid):
                return pid
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """Close the watchdog pipe (children shut down), then make sure they did.

        Detached processes (no pipe) get SIGTERM instead.
        """
        if self.parent_w < 0:
            self.terminate(timeout)
            return
        self._close_pipe()
        self._wait_or_kill(timeout)

    def terminate(self, timeout: float = 10.0) -> None:
        """Graceful stop: SIGTERM (the node manager stops its workers), SIGKILL later."""
        workers = self.all_processes()
        for proc in reversed(self.procs):      # node manager before control service
            _send(proc.pid, signal.SIGTERM)
        self._close_pipe()
        self._wait_or_kill(timeout)
        _kill_and_wait(workers, timeout)

    def kill(self) -> None:
        """Ungraceful stop: SIGKILL the node's processes and its workers at once."""
        pids = self.all_processes()
        for pid in pids:
            _send(pid, signal.SIGKILL)
        self._close_pipe()
        self._wait_or_kill(5.0)
        _kill_and_wait(pids, 5.0)

    def _close_pipe(self) -> None:
        if self.parent_w >= 0:
            os.close(self.parent_w)
            self.parent_w = -1
        while self.more_pipes:
            os.close(self.more_pipes.pop())

    def _wait_or_kill(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Its children too: a supervisor killed here would orphan a control
                # service that is stuck, not just slow.
                kids = descendants(proc.pid)
                proc.kill()
                proc.wait()
                _kill_and_wait(kids, 5.0)
        # The node manager removes shared-memory and spill files; this is the
        # backstop for a node manager that was itself killed.
        from .object_spiller import ObjectSpiller, spill_dir
        from .shm_store import ShmStore
        ShmStore(self.shm_dir, self.shm_prefix).cleanup_all()
        ObjectSpiller(spill_dir(self.session_dir, self.node_id)).delete_all()


# ember.init()'s embedded cluster is a head node tied to the driver.
LocalCluster = NodeProcesses


def new_session(token: str | None = None, name: str | None = None) -> tuple[str, str]:
    """Create (or reuse) a session directory with ``logs/`` and a 0600 ``token`` file.

    Returns ``(session_dir, token)``; a token is minted unless one is given.
    """
    if name is None:
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        name = f"session_{stamp}_{os.getpid()}_{ids.new_unique_hex(3)}"
    session_dir = os.path.join(session_root(), name)
    os.makedirs(os.path.join(session_dir, "logs"), mode=0o700, exist_ok=True)
    token = token or ids.new_token()     # from ids, not rpc: no gRPC import before start
    token_path = os.path.join(session_dir, "token")
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return session_dir, token


def free_port(ip: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


_free_port = free_port


def port_is_free(ip: str, port: int) -> bool:
    """Whether a server could listen on ``ip:port`` now (SO_REUSEADDR, as gRPC binds)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def is_local_ip(ip: str) -> bool:
    """Whether ``ip`` is an address of this machine (loopback, or one a socket can bind)."""
    if ip in ("localhost",) or ip.startswith("127."):
        return True
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
        return True
    except (OSError, OverflowError):
        return False


def local_ip_towards(address: str, timeout: float = 5.0) -> str:
    """This machine's address on the route to ``host:port`` (read from a TCP connection)."""
    host, port = split_address(address)
    if host == "localhost" or host.startswith("127."):
        return "127.0.0.1"
    with socket.create_connection((host, port), timeout=timeout) as s:
        return s.getsockname()[0]


def _spawn(commands: list[tuple], session_dir: str, token: str,
           detached: bool, timeout: float, register: dict | None = None,
           while_starting: Callable[[], None] | None = None,
           prelaunched: Any = None,
           after_first_ready: Callable[[], None] | None = None
           ) -> tuple[list[Any], list[str], int]:
    """Start each (what, log name, argv) side by side; wait until all report ready.

    A command may carry a fourth item: processes *it* forks once it has imported
    what they need, each (what, log name, module, argv, process name); the
    command gets them as ``--fork-json`` (process_util.fork_listed). They report
    ready like the others and come back, as ``ProcessHandle``s, right after it.

    ``register``: record each process for ``ember stop`` (role = log name),
    with these extra fields. ``while_starting`` runs once all are launched and
    before waiting for them: a driver does its own imports then, in parallel.
    ``prelaunched``: the first command's process, launched already and waiting
    for its arguments (prelaunch.py; tied, not registered). ``after_first_ready``
    runs once the first process has reported ready, while the others may not have.

    Returns (processes, what each reported, write end of their watchdog pipe or
    -1). On any failure everything started is killed and the error re-raised.
    """
    from .process_util import ProcessHandle, process_name
    early = prelaunched
    if early is not None:
        parent_r, parent_w = early.take_parent()
    else:
        parent_r, parent_w = (-1, -1) if detached else os.pipe()
    env = dict(os.environ)
    env[TOKEN_ENV] = token
    procs: list[Any] = []
    ready_fds: list[tuple[str, int, str]] = []
    # (index in procs, log name, process name, args, parent's index) of each forked one
    forked: list[tuple[int, str, str, list[str], int]] = []

    def ready_pipe(what: str, name: str) -> tuple[int, list[str], str]:
        """A pipe for one process's readiness report; (write end, its arguments, log)."""
        # The prelaunched process (and its forks) got theirs at launch.
        ready_r, ready_w = early.take_ready_pipe() if early is not None and not procs \
            else os.pipe()
        extra = ["--session-dir", session_dir, "--ready-fd", str(ready_w)]
        if not detached:
            extra += ["--parent-fd", str(parent_r)]
        log_path = os.path.join(session_dir, "logs", f"{name}.log")
        ready_fds.append((what, ready_r, log_path))
        return ready_w, extra, log_path

    try:
        for command in commands:
            what, name, argv = command[:3]
            ready_w, extra, log_path = ready_pipe(what, name)
            fds: tuple[int, ...] = (ready_w,) + (() if detached else (parent_r,))
            children, close = [], [ready_w]
            for child_what, child_name, module, child_argv, comm in (
                    command[3] if len(command) > 3 else []):
                child_w, child_extra, child_log = ready_pipe(child_what, child_name)
                children.append({"module": module, "argv": [*child_argv, *child_extra],
                                 "log": child_log, "name": comm, "fds": [child_w]})
                forked.append((len(ready_fds) - 1, child_name, comm, [module, *child_argv],
                               len(procs)))
                fds += (child_w,)
                close.append(child_w)
            if children:
                extra += ["--fork-json", json.dumps(children)]
            try:
                if early is not None and not procs:
                    assert argv[:2] == ["-m", "ember._private.gcs_supervisor"], argv
                    # It is in the failure path's hands from here on.
                    procs.append(early.proc)
                    early.send([*argv[2:], *extra], log_path, {TOKEN_ENV: token})
                else:
                    with open(log_path, "ab") as log:
                        procs.append(subprocess.Popen(
                            [sys.executable, *argv, *extra], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, env=env, pass_fds=fds,
                            start_new_session=True))
            finally:
                for fd in close:
                    os.close(fd)
            proc = procs[-1]
            procs += [None] * len(children)     # their handles, once they report ready
            if register is not None:
                register_process(session_dir, proc.pid, name, **register)
        if while_starting is not None:
            while_starting()
        reported = []
        for i, (what, fd, log_path) in enumerate(ready_fds):
            try:
                reported.append(process_util.read_ready(fd, timeout, what, log_path))
            finally:
                ready_fds[i] = (what, -1, log_path)
            if i == 0 and after_first_ready is not None:
                after_first_ready()
        for index, name, comm, args, parent_index in forked:
            # Ready, so it has named itself: the parent's child of that name.
            parent = procs[parent_index].pid
            pid = next((p for p in descendants(parent) if process_name(p) == comm), None)
            if pid is None:
                raise RuntimeError(f"{name} (forked by pid {parent}) reported ready, "
                                   "then exited" + process_util._log_hint(ready_fds[index][2]))
            procs[index] = ProcessHandle(pid, args)
            if register is not None:
                register_process(session_dir, pid, name, **register)
    except BaseException:
        for _, fd, _ in ready_fds:
            if fd >= 0:
                os.close(fd)
        if parent_w >= 0:
            os.close(parent_w)
        for proc in procs:
            if proc is None:
                continue
            kids = descendants(proc.pid)
            proc.kill()
            proc.wait()
            _kill_and_wait(kids, 5.0)
            if register is not None:
                unregister_process(session_dir, proc.pid)
        if parent_r >= 0:
            os.close(parent_r)
        raise
    if parent_r >= 0:
        os.close(parent_r)
    return procs, reported, parent_w


# A head's node manager, forked by its control service's supervisor, keeps the
# supervisor's command line; this name (/proc/<pid>/comm) tells it apart.
NODE_MANAGER_PROCESS_NAME = "ember-nm"


def _node_manager_argv(gcs_address: str, node_id: str, total: dict[str, float],
                       gpu_ids: list[str], ip: str, port: int, labels: dict[str, str],
                       shm_dir: str, shm_prefix: str, prestart: int,
                       metrics_export_port: int = 0) -> list[str]:
    return ["-m", "ember._private.node_manager_main", "--gcs-address", gcs_address,
            "--node-id", node_id, "--resources-json", json.dumps(total),
            "--gpu-ids", ",".join(gpu_ids), "--shm-dir", shm_dir, "--shm-prefix", shm_prefix,
            "--prestart", str(prestart), "--host", ip, "--port", str(port),
            "--labels-json", json.dumps(labels)] + (
                ["--metrics-export-port", str(metrics_export_port)] if metrics_export_port else [])


def start_head(*, total: dict[str, float], gpu_ids: list[str], prestart: int,
               ip: str = "127.0.0.1", port: int = 0, node_manager_port: int = 0,
               labels: dict[str, str] | None = None, token: str | None = None,
               session_dir: str | None = None, detached: bool = False,
               register: bool = False, timeout: float = 30.0,
               metrics_export_port: int = 0, include_dashboard: bool | None = False,
               dashboard_host: str | None = None,
               dashboard_port: int | None = None, include_job_server: bool = False,
               job_server_port: int | None = None,
               while_starting: Callable[[], None] | None = None,
               prelaunched: Any = None,
               when_control_ready: Callable[[dict[str, str]], None] | None = None
               ) -> NodeProcesses:
    """Start a head node: the control service and a node manager, side by side
    (and the dashboard, per ``include_dashboard``: see dashboard/launch.py; and the
    job server, per ``include_job_server``: see job_launch.py).
    ``while_starting``, ``prelaunched`` (the supervisor, launched already;
    tied heads only): see _spawn. ``when_control_ready`` is called, once the
    control service is ready and while the node manager may still be registering,
    with what a driver needs to connect (``token``, ``gcs_address``,
    ``node_manager_address``, ``node_id``, ``shm_dir``, ``shm_prefix``): the node
    manager's port is chosen here then, so that address is known before it listens.

    ``port`` 0 picks a free port. ``session_dir`` None creates a new session
    (with ``token``, or a new one). ``detached`` processes outlive the caller
    (no watchdog pipe); ``register`` records their pids for ``ember stop``.
    """
    from . import tls
    from .dashboard import launch as dashboard_launch
    from .shm_dir import default_shm_dir
    # ValueError now (not in a child's log) if EMBER_TLS_* name unusable files.
    exposed = tls.exposure_warning(ip, tls.load())
    dashboard = dashboard_launch.plan_here(include_dashboard, dashboard_host, dashboard_port)
    from . import job_launch
    jobs = job_launch.plan(include_job_server, ip, job_server_port,
                           dashboard=dashboard is not None, port_free=port_is_free)
    if session_dir is None:
        session_dir, token = new_session(token)
    elif token is None:
        token = read_token(session_dir)
    node_id = ids.new_unique_hex(14)
    shm_dir, shm_prefix = default_shm_dir(), f"ember_{ids.new_unique_hex(4)}_"
    labels = dict(labels or {})
    # The control service's port is chosen here so both processes start at
    # once. A free port can be taken before the control service binds it (by
    # any socket on the machine): with port=0, try another one.
    for attempt in range(3):
        gcs_port = port or free_port(ip)
        gcs_address = f"{_bracket(ip)}:{gcs_port}"
        nm_port = node_manager_port or (free_port(ip) if when_control_ready else 0)
        with open(os.path.join(session_dir, "gcs_address"), "w") as f:
            f.write(gcs_address)
        # Supervised: restarted on the same address if it dies (gcs_supervisor.py).
        # The supervisor forks the node manager too: one interpreter imports
        # what both need (see gcs_supervisor.py).
        from . import gcs_supervisor
        manager = _node_manager_argv(gcs_address, node_id, total, gpu_ids, ip,
                                     nm_port, labels, shm_dir, shm_prefix, prestart,
                                     metrics_export_port)
        commands: list[tuple] = [
            ("control service", "gcs", gcs_supervisor.command(ip, gcs_port, session_dir, node_id),
             [("node manager", "node_manager", manager[1], manager[2:],
               NODE_MANAGER_PROCESS_NAME)]),
        ] + dashboard_launch.command(dashboard, gcs_address) + job_launch.command(
            jobs, gcs_address)
        control_ready = None
        if when_control_ready is not None:
            control_ready = functools.partial(when_control_ready, {
                "token": token, "gcs_address": gcs_address,
                "node_manager_address": f"{ip}:{nm_port}", "node_id": node_id,
                "shm_dir": shm_dir, "shm_prefix": shm_prefix})
        try:
            early, prelaunched = prelaunched, None     # used once: a retry launches anew
            procs, reported, parent_w = _spawn(
                commands, session_dir, token, detached, timeout,
                {"shm_dir": shm_dir, "shm_prefix": shm_prefix} if register else None,
                while_starting, early, control_ready)
            break
        except RuntimeError as e:
            # rpc.bind's "cannot listen on", or gRPC's own "Failed to bind to address".
            msg = str(e)
            lost = [f"{ip}:{p}" for p, fixed in ((gcs_port, port), (nm_port, node_manager_port))
                    if p and not fixed]
            lost_port = any(a in msg for a in lost) and ("bind" in msg or "cannot listen" in msg)
            if attempt == 2 or not lost_port:
                raise
    if exposed:
        logging.getLogger("ember").warning("Warning: %s", exposed)
    # The job server started last: set it aside while the dashboard's report is read.
    job_proc, job_line = (procs.pop(), reported.pop()) if jobs else (None, None)
    dashboard_url = dashboard_launch.settle(dashboard, procs, reported, session_dir, register)
    job_server_url = job_launch.settle(jobs, job_proc, job_line, procs, session_dir)
    return NodeProcesses(node_id=node_id, ip=ip, port=int(reported[1]),
                         gcs_address=gcs_address, session_dir=session_dir, token=token,
                         shm_dir=shm_dir, shm_prefix=shm_prefix, is_head=True,
                         resources=dict(total), labels=labels, procs=procs,
                         parent_w=parent_w, dashboard_url=dashboard_url,
                         job_server_url=job_server_url)


def start_node(*, gcs_address: str, token: str, session_dir: str, total: dict[str, float],
               gpu_ids: list[str], prestart: int, ip: str = "127.0.0.1",
               node_manager_port: int = 0, labels: dict[str, str] | None = None,
               detached: bool = False, register: bool = False,
               timeout: float = 30.0, metrics_export_port: int = 0) -> NodeProcesses:
    """Start a node manager that joins the control service at ``gcs_address``."""
    from . import tls
    from .shm_dir import default_shm_dir
    tls.load()  # ValueError now (not in the child's log) if EMBER_TLS_* name unusable files
    node_id = ids.new_unique_hex(14)
    shm_dir, shm_prefix = default_shm_dir(), f"ember_{ids.new_unique_hex(4)}_"
    labels = dict(labels or {})
    commands = [("node manager", f"node_manager-{node_id[:8]}", _node_manager_argv(
        gcs_address, node_id, total, gpu_ids, ip, node_manager_port, labels, shm_dir,
        shm_prefix, prestart, metrics_export_port))]
    procs, reported, parent_w = _spawn(
        commands, session_dir, token, detached, timeout,
        {"shm_dir": shm_dir, "shm_prefix": shm_prefix} if register else None)
    return NodeProcesses(node_id=node_id, ip=ip, port=int(reported[0]),
                         gcs_address=gcs_address, session_dir=session_dir, token=token,
                         shm_dir=shm_dir, shm_prefix=shm_prefix, is_head=False,
                         resources=dict(total), labels=labels, procs=procs,
                         parent_w=parent_w)


def start_local_cluster(*, total: dict[str, float], gpu_ids: list[str],
                        prestart: int, timeout: float = 30.0,
                        while_starting: Callable[[], None] | None = None,
                        prelaunched: Any = None,
                        when_control_ready: Callable[[dict[str, str]], None] | None = None,
                        **dashboard: Any) -> NodeProcesses:
    """The embedded one-node cluster of ``ember.init()``: a head tied to this driver
    (``dashboard``: start_head's include_dashboard, dashboard_host, dashboard_port;
    ``while_starting``, ``prelaunched``: see _spawn; ``when_control_ready``: see
    start_head)."""
    return start_head(total=total, gpu_ids=gpu_ids, prestart=prestart, timeout=timeout,
                      while_starting=while_starting, prelaunched=prelaunched,
                      when_control_ready=when_control_ready, **dashboard)


def _bracket(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


class ClusterTokenError(AuthenticationError, ConnectionError):
    """The control service refused our cluster token (or we have none)."""


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ConnectionError) when nothing listens at ``address``."""
    try:
        with socket.create_connection(split_address(address), timeout=timeout):
            pass
    except OSError as e:
        raise ConnectionError(
            f"could not reach an Ember cluster at {address} ({e.strerror or e}): check the "
            "address and that the cluster is running (ember status)") from None
    # TLS on one side only would look like "unreachable" to gRPC: say what to change.
    from . import tls
    tls.check_transport(address, timeout)


def query_nodes(address: str, token: str, timeout: float = 5.0) -> list:
    """The control service's node table; clear ConnectionErrors for the usual mistakes."""
    import grpc

    from . import rpc
    from .protos import ember_pb2 as pb
    from .protos import ember_pb2_grpc as pbg
    check_reachable(address, timeout)
    chan = rpc.channel(address)
    try:
        rpc.wait_ready(chan, timeout, f"an Ember cluster at {address}")
        gcs = rpc.Stub(chan, pbg.ControlServiceStub, token)
        try:
            return list(gcs.GetNodes(pb.Empty(), timeout=timeout).nodes)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise ClusterTokenError(
                    f"the cluster at {address} rejected the cluster token (wrong token): "
                    f"pass the token printed by `ember start --head` (--token=... or "
                    f"{rpc.TOKEN_ENV}); on the head machine it is the file `token` in the "
                    "session directory") from None
            raise ConnectionError(
                f"the server at {address} did not answer as an Ember control service "
                f"({e.code().name}): check the address (ember status)") from None
    finally:
        chan.close()


def cluster_kv(address: str, token: str, key: str, timeout: float = 5.0) -> str | None:
    """A value the head's control service was started with (``session_name``, ``head_node_id``)."""
    import grpc

    from . import rpc
    from .protos import ember_pb2 as pb
    from .protos import ember_pb2_grpc as pbg
    chan = rpc.channel(address)
    try:
        gcs = rpc.Stub(chan, pbg.ControlServiceStub, token)
        reply = gcs.KVGet(pb.KVRequest(ns=CLUSTER_KV_NS, key=key.encode()), timeout=timeout)
    except grpc.RpcError:
        return None
    finally:
        chan.close()
    return reply.value.decode() if reply.found else None

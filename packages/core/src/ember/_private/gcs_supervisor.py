"""Keeps the control service running: restarts it on the same address when it dies.

A head's control service is started as ``python -m ember._private.gcs_supervisor
<gcs_main arguments>`` (``node.start_head``, for all three ways of starting a
head). This process imports ``gcs_main`` (gRPC, the control service) and then
forks: the child runs ``gcs_main.main`` with the same arguments, already
imported, instead of a new interpreter importing it all again (~0.1 s of CPU
that, on a 2-core machine, delays a new cluster's first result). The child
keeps this process's command line; it is named ``ember-gcs`` in ``ps``
(``/proc/<pid>/comm``). The supervisor forwards the child's readiness report,
and when it dies unexpectedly (killed by a signal, or a non-zero exit) forks it
again on the same host, port, session directory and token; the new one reloads
the cluster's state from ``control.sqlite`` (gcs_store.py) while clients wait
for it (gcs_client.py). The supervisor itself never creates a gRPC object, so
each fork starts clean; its only other threads wait in reads (the watchdog pipe).
``ember.init()`` launches it before its arguments are known (``--args-fd``:
prelaunch.py); it imports gRPC, then reads them.

Why its own process: ``ember start --head`` exits once the head is up, so
neither it nor a driver can be relied on to be around; a supervisor next to the
control service covers the embedded cluster, ``Cluster`` and the CLI alike,
for the price of one idle Python process.

The control service does not depend on its supervisor: both watch the same
watchdog pipe (a tied head), the supervisor forwards SIGTERM, and if the
supervisor itself is killed the control service runs on, unsupervised (then
``ember start --head`` on the same session restarts it: ``restart_control_service``).

Restarts are decided by :class:`RestartPolicy` (pure): no restart after a clean
exit or when asked to stop, a growing delay when it keeps dying, and giving up
after ``EMBER_GCS_MAX_RESTARTS`` (10) restarts within 5 minutes.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial

from .addresses import is_listening, wait_listening  # noqa: F401 - re-exported

MAX_RESTARTS_ENV = "EMBER_GCS_MAX_RESTARTS"
# The control service's name in ps (/proc/<pid>/comm): it keeps this process's command line.
PROCESS_NAME = "ember-gcs"
# How long a control service asked to stop may take before it is SIGKILLed.
STOP_GRACE_S = 10.0
# How long a restarted control service keeps trying to get its port back.
RESTART_BIND_RETRY_S = 30.0


@dataclass(frozen=True)
class Restart:
    """Start the control service again after ``delay`` seconds."""
    delay: float


@dataclass(frozen=True)
class GiveUp:
    """Do not restart it; ``reason`` says why (logged)."""
    reason: str


@dataclass
class RestartPolicy:
    """When to restart a control service that exited (pure; fed exits, returns decisions).

    >>> policy = RestartPolicy(max_restarts=2, window_s=60)
    >>> policy.on_exit(-9, stopping=False, now=0.0)
    Restart(delay=0.0)
    >>> policy.on_exit(0, stopping=False, now=1.0)
    GiveUp(reason='it exited normally (code 0)')
    """
    max_restarts: int = 10
    window_s: float = 300.0
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    restarts: list[float] = field(default_factory=list)

    def on_exit(self, code: int, stopping: bool, now: float) -> Restart | GiveUp:
        """``code``: the exit status (negative: killed by that signal)."""
        if stopping:
            return GiveUp("it was asked to stop")
        if code == 0:
            return GiveUp("it exited normally (code 0)")
        self.restarts = [t for t in self.restarts if now - t < self.window_s]
        if len(self.restarts) >= self.max_restarts:
            return GiveUp(f"it died {len(self.restarts) + 1} times within {self.window_s:g} s; "
                          f"not restarting it again (raise {MAX_RESTARTS_ENV} to allow more)")
        recent = len(self.restarts)
        self.restarts.append(now)
        # The first restart is immediate (clients are waiting); a crash loop slows down.
        delay = 0.0 if recent == 0 else min(self.max_delay_s, self.base_delay_s * 2 ** (recent - 1))
        return Restart(delay)


def describe_exit(code: int) -> str:
    """``-9`` -> ``killed by signal 9 (SIGKILL)``; ``1`` -> ``exited with code 1``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "?"
        return f"killed by signal {-code} ({name})"
    return f"exited with code {code}"


def _max_restarts() -> int:
    raw = os.environ.get(MAX_RESTARTS_ENV, "10")
    try:
        return max(0, int(raw))
    except ValueError:
        return 10


def _log(message: str) -> None:
    print(f"[ember gcs supervisor {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-fd", type=int, default=-1)
    parser.add_argument("--fork-json", default="")
    parser.add_argument("--args-fd", type=int, default=-1)
    args, rest = parser.parse_known_args(argv)
    # Imported here, while this process has no thread yet, for every child to
    # inherit: first what all need (gRPC, the stubs), then a head's node manager
    # (node.start_head) is forked, so it goes on with its own imports while this
    # process imports the control service's. The node manager is left alone (its
    # own watchdog pipe and signals stop it); a thread reaps it when it ends.
    from . import rpc  # noqa: F401
    from .process_util import (ForkedChild, fork_child, fork_listed, forked_children,
                               redirect_stdio, set_process_name)
    from .protos import ember_pb2_grpc  # noqa: F401
    # What the node manager and the control service both import after the fork, once.
    import grpc._channel  # noqa: F401
    import grpc._server  # noqa: F401

    from . import rpc_chaos, tls  # noqa: F401
    if args.args_fd >= 0:
        # Launched before its arguments were known (prelaunch.py): they come now.
        from .prelaunch import read_arguments
        sent = read_arguments(args.args_fd)
        if sent is None:
            return 1            # its driver went away before sending them
        redirect_stdio(sent["log"])
        os.environ.update(sent["env"])
        args, rest = parser.parse_known_args(sent["argv"])
    keep = (args.parent_fd,) if args.parent_fd >= 0 else ()
    others = fork_listed(forked_children(args.fork_json), keep)
    from . import gcs_main
    stopping = threading.Event()
    child: list[ForkedChild] = []

    def kill_child() -> None:
        for proc in child:
            if proc.poll() is None:
                proc.kill()

    def stop(*_: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        for proc in child:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        # A control service that does not stop in time is killed.
        timer = threading.Timer(STOP_GRACE_S, kill_child)
        timer.daemon = True
        timer.start()

    # stop() runs on a thread: this main thread may hold the lock stopping.set()
    # takes (in stopping.wait below).
    for other in others:
        threading.Thread(target=other.wait, name="ember-reap", daemon=True).start()
    from .process_util import install_term_handler
    install_term_handler(stop)
    if args.parent_fd >= 0:
        # The control service watches the same pipe and stops by itself; the
        # supervisor stops too, instead of restarting it.
        from .process_util import watch_parent
        watch_parent(args.parent_fd, stop)

    policy = RestartPolicy(max_restarts=_max_restarts())
    ready_fd = args.ready_fd
    first = True
    while True:
        ready_r, ready_w = os.pipe()
        extra = ["--ready-fd", str(ready_w)]
        if not first:
            extra += ["--bind-retry-s", str(RESTART_BIND_RETRY_S)]
        first = False
        fds: tuple[int, ...] = (ready_w,)
        if args.parent_fd >= 0:
            extra += ["--parent-fd", str(args.parent_fd)]
            fds += (args.parent_fd,)
        try:
            # Forked, not exec'd: the control service starts with its imports
            # loaded (see the module docstring).
            proc = fork_child(partial(gcs_main.main, [*rest, *extra]), fds,
                              ["ember._private.gcs_main", *rest, *extra],
                              prepare=partial(set_process_name, PROCESS_NAME))
        finally:
            os.close(ready_w)
        child[:] = [proc]
        if stopping.is_set():
            stop()
        port = _read_line(ready_r)
        if port and ready_fd >= 0:
            # First start: tell whoever started the head (node._spawn).
            os.write(ready_fd, (port + "\n").encode())
            os.close(ready_fd)
            ready_fd = -1
        elif port:
            _log(f"control service restarted (pid {proc.pid}, port {port})")
        code = proc.wait()
        if ready_fd >= 0:
            return code or 1     # it never came up: the starter reports its log
        decision = policy.on_exit(code, stopping.is_set(), time.monotonic())
        if isinstance(decision, GiveUp):
            if code != 0 and not stopping.is_set():
                _log(f"control service (pid {proc.pid}) {describe_exit(code)}; {decision.reason}")
            return 0 if stopping.is_set() or code == 0 else 1
        _log(f"control service (pid {proc.pid}) {describe_exit(code)}; restarting it"
             + (f" in {decision.delay:.1f} s" if decision.delay else ""))
        if stopping.wait(decision.delay):
            return 0


def _read_line(fd: int) -> str:
    """The line a child reports once ready, or "" if it exits first."""
    buf = b""
    try:
        while b"\n" not in buf:
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            buf += chunk
    finally:
        os.close(fd)
    return buf.decode().strip()


# ---------------------------------------------------------------- starting one

def command(ip: str, port: int, session_dir: str, head_node_id: str = "",
            bind_retry_s: float = 0.0) -> list[str]:
    """Arguments (after the interpreter) that start a supervised control service.

    >>> command("127.0.0.1", 6379, "/tmp/ember/session_x", "ab12")[:2]
    ['-m', 'ember._private.gcs_supervisor']
    """
    argv = ["-m", "ember._private.gcs_supervisor", "--host", ip, "--port", str(port),
            "--session-name", os.path.basename(session_dir)]
    if head_node_id:
        argv += ["--head-node-id", head_node_id]
    if bind_retry_s:
        argv += ["--bind-retry-s", str(bind_retry_s)]
    return argv


def restart_control_service(session_dir: str, *, detached: bool, register: bool = False,
                            timeout: float = 30.0) -> tuple[subprocess.Popen, int]:
    """Start a head's control service again (supervised), on the address, token and
    state its session directory recorded, when the previous one is dead.

    Returns (the supervisor process, write end of its watchdog pipe or -1).
    Raises ConnectionError when something already listens on that address.

    >>> proc, pipe_w = restart_control_service(session_dir, detached=True, register=True)
    """
    from . import node
    with open(os.path.join(session_dir, "gcs_address")) as f:
        address = f.read().strip()
    ip, port = node.split_address(address)
    # One that was just killed can answer for a moment more (its threads exiting).
    deadline = time.monotonic() + 3.0
    while is_listening(ip, port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_listening(ip, port):
        raise ConnectionError(
            f"cannot restart the control service on {address}: that port is in use (is it "
            "still running, or restarting under its supervisor? see `ember status`)")
    token = node.read_token(session_dir)
    procs, _, parent_w = node._spawn(
        [("control service", "gcs", command(ip, port, session_dir,
                                             bind_retry_s=min(RESTART_BIND_RETRY_S, timeout / 2)))],
        session_dir, token, detached, timeout, {} if register else None)
    return procs[0], parent_w


if __name__ == "__main__":
    sys.exit(main())

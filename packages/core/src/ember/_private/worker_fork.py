"""Workers forked from a warm template process instead of started from scratch.

A worker started with ``python -m ember._private.worker_main`` pays for a new
interpreter (~45 ms of CPU here) and for importing gRPC, the protobuf stubs and
the core worker (~70 ms more) before it can register. On a 2-core machine the
first workers of a new cluster pay that while the node manager and the control
service are still importing too, so it sits on the path to the first result.

So each node manager forks one *fork server* first thing (``ForkServer.fork``),
once it has imported what both need (gRPC, the stubs) and before its own
imports; ``python -m ember._private.worker_main --fork-server`` starts one with
exec (``ForkServer.start``). The server imports the rest of what a worker runs
on while the node manager goes on, then waits on a Unix socket pair. For each
worker, the node manager sends the worker's environment
and log paths; the server forks, and the child becomes the worker (new
session, stdout/stderr on its log files, that environment) and runs
``worker_main.main``. The node manager gets the pid back at once and, later,
the exit status (the server is the worker's parent and reaps it).

Why a separate process rather than forking the node manager: the node manager
runs gRPC threads, and a fork of a threaded gRPC process is unsafe. The server
is single-threaded and never creates a gRPC object, so its children start
clean. It imports no numpy either: a forked copy of numpy's global random
state would hand every worker the same random numbers (``random`` reseeds
itself in a forked child; numpy does not).

Only workers for the default environment are forked. A runtime_env worker may
need another interpreter, another working directory or variables read at
interpreter start (``PYTHONPATH``), so it is still started with exec, as is any
worker while the server is unavailable (``EMBER_WORKER_FORK=0`` turns forking
off).

Protocol: newline-delimited JSON both ways. Node manager to server:
``{"env": {...}, "out": path, "err": path}``. Server to node manager:
``{"ready": pid}`` once, ``{"pid": n}`` or ``{"error": msg}`` per request in
order, and ``{"exit": pid, "code": c}`` whenever a worker ends (``c`` as
``Popen.returncode``: negative for a signal).
"""
from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Mapping

from . import process_util

FORK_ENV = "EMBER_WORKER_FORK"             # "0": start every worker with exec
SOCKET_FD_ENV = "EMBER_FORK_SERVER_FD"     # the server's end of the socket pair
READY_TIMEOUT_S = 30.0                     # imports on a loaded 2-core machine
REPLY_TIMEOUT_S = 5.0                      # a fork takes milliseconds; the node's lock is held
# The server's name in ps (/proc/<pid>/comm): a forked one keeps the node manager's command line.
PROCESS_NAME = "ember-forksrv"
WORKER_PROCESS_NAME = "ember-worker"       # each forked worker's


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether workers are forked (``EMBER_WORKER_FORK``, default on).

    >>> enabled({"EMBER_WORKER_FORK": "0"})
    False
    """
    source = os.environ if env is None else env
    return source.get(FORK_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# ---------------------------------------------------------------- server side
def serve(entry: Callable[[], None], conn: socket.socket | None = None) -> None:
    """Run the fork server: answer requests until the node manager goes away.

    ``entry`` is what a child runs once it has become a worker; it must not
    return (``worker_main.main`` ends in ``os._exit``). ``conn``: the server's
    end of the socket pair (default: the descriptor named by ``EMBER_FORK_SERVER_FD``).
    """
    if conn is None:
        conn = socket.socket(fileno=int(os.environ.pop(SOCKET_FD_ENV)))
    # Objects that exist now are shared with every child; keep the collector
    # from touching (and so copying) their pages in the children. (No collection
    # first: ~10 ms of CPU while the cluster starts, for the few KB of import-time
    # garbage it would free.)
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # The node manager stops us by closing its end; a stray Ctrl-C in a
    # terminal's process group must not take the server down alone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sel = selectors.DefaultSelector()
    sel.register(conn, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)

    def send(msg: dict) -> None:
        conn.sendall(json.dumps(msg).encode() + b"\n")

    send({"ready": os.getpid()})
    buf = b""
    while True:
        for key, _ in sel.select():
            if key.fileobj == wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                for pid, code in _reap():
                    send({"exit": pid, "code": code})
                continue
            data = conn.recv(1 << 16)
            if not data:        # the node manager is gone; its workers follow it
                os._exit(0)
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                child = _fork_worker(json.loads(line), entry,
                                     (conn.fileno(), wake_r, wake_w, sel.fileno()))
                send({"pid": child} if isinstance(child, int) else {"error": child})


def _reap() -> list[tuple[int, int]]:
    out = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        out.append((pid, os.waitstatus_to_exitcode(status)))
    return out


def _fork_worker(request: dict, entry: Callable[[], None], close: tuple[int, ...]) -> int | str:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as e:
        return f"fork failed: {e}"
    if pid:
        return pid

    def child() -> None:
        _become_worker(request, close)
        entry()

    process_util.exit_with(child)


def _become_worker(request: dict, close: tuple[int, ...]) -> None:
    """In the child: what ``Popen(start_new_session=True, stdout=..., env=...)`` would give."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in close:
        os.close(fd)
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for target, path in ((1, request["out"]), (2, request["err"])):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv[1:] = []           # as if started as `python -m ember._private.worker_main`
    # It keeps the server's command line; its name in ps says what it is.
    process_util.set_process_name(WORKER_PROCESS_NAME)


# ---------------------------------------------------------------- node-manager side

class ForkServer:
    """The node manager's handle on its fork server.

    >>> server = ForkServer.start(env, log_path)            # doctest: +SKIP
    >>> proc = server.spawn(worker_env, out_path, err_path)  # doctest: +SKIP
    >>> proc.pid, proc.poll()                                # doctest: +SKIP
    """

    def __init__(self, proc: subprocess.Popen | process_util.ForkedChild,
                 sock: socket.socket) -> None:
        self.proc = proc
        self._sock = sock
        self._cond = threading.Condition()
        self._ready = False
        self._closed = False
        self._replies: list[dict] = []
        self._workers: dict[int, ForkedWorker] = {}
        self._early_exits: dict[int, int] = {}     # exits heard before the pid's reply
        self._spawn_lock = threading.Lock()
        threading.Thread(target=self._read, name="ember-fork-server", daemon=True).start()

    @classmethod
    def start(cls, env: dict[str, str], log_path: str, pass_fds: tuple[int, ...] = (),
              argv: list[str] | None = None) -> ForkServer:
        """Start ``python -m ember._private.worker_main --fork-server`` (or ``argv``, a
        program that ends in :func:`serve`); returns at once, before it is ready."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(env, **{SOCKET_FD_ENV: str(theirs.fileno())})
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv or [sys.executable, "-m", "ember._private.worker_main", "--fork-server"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                pass_fds=(theirs.fileno(), *pass_fds), start_new_session=True)
        theirs.close()
        return cls(proc, ours)

    @classmethod
    def fork(cls, env: dict[str, str], log_path: str, pass_fds: tuple[int, ...] = ()
             ) -> ForkServer:
        """Fork the server from this process: call it from the node manager's main
        thread before any other thread or gRPC object exists. Returns at once,
        before the server is ready.

        What both need (gRPC, the stubs) is imported here first, once; what only
        workers run on is imported by the server, while the node manager goes on.
        """
        from . import rpc, worker_main  # noqa: F401
        from .protos import ember_pb2_grpc  # noqa: F401
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def prepare() -> None:
            # What Popen(env=..., stdout=log, start_new_session=True) would give.
            process_util.redirect_stdio(log_path)
            os.environ.clear()
            os.environ.update(env)
            process_util.set_process_name(PROCESS_NAME)
            # As if started as `python -m ember._private.worker_main`: workers
            # find that module, not the node manager's, as their __main__.
            sys.argv[:] = [worker_main.__file__]
            sys.modules["__main__"] = worker_main

        def run() -> None:
            worker_main.preload()
            serve(worker_main.main, theirs)

        proc = process_util.fork_child(run, (theirs.fileno(), *pass_fds), ["worker fork server"],
                                       new_session=True, prepare=prepare)
        theirs.close()
        return cls(proc, ours)

    @property
    def alive(self) -> bool:
        return not self._closed

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._closed, timeout)
            return self._ready and not self._closed

    def spawn(self, env: dict[str, str], out: str, err: str) -> ForkedWorker | None:
        """Fork a worker; None if the server cannot (the caller starts one with exec)."""
        with self._spawn_lock:
            if not self.wait_ready():
                return None
            try:
                self._sock.sendall(json.dumps({"env": env, "out": out, "err": err}).encode()
                                   + b"\n")
            except OSError:
                return None
            with self._cond:
                if not self._cond.wait_for(lambda: self._replies or self._closed,
                                           REPLY_TIMEOUT_S) or not self._replies:
                    return None
                reply = self._replies.pop(0)
                if "pid" not in reply:
                    print(f"ember: the worker fork server could not fork: {reply.get('error')}; "
                          "starting the worker with exec", file=sys.stderr, flush=True)
                    return None
                worker = ForkedWorker(self, reply["pid"])
                self._workers[worker.pid] = worker
                if worker.pid in self._early_exits:
                    worker.returncode = self._early_exits.pop(worker.pid)
                return worker

    def close(self, timeout: float = 2.0) -> None:
        """Stop the server (its workers are the caller's to stop)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._handle(json.loads(line))
        except (OSError, ValueError):
            pass
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._sock.close()

    def _handle(self, msg: dict[str, Any]) -> None:
        with self._cond:
            if "ready" in msg:
                self._ready = True
            elif "exit" in msg:
                worker = self._workers.pop(msg["exit"], None)
                if worker is None:
                    self._early_exits[msg["exit"]] = msg["code"]
                else:
                    worker.returncode = msg["code"]
            else:
                self._replies.append(msg)
            self._cond.notify_all()


class ForkedWorker(process_util.PopenSignals):
    """The part of ``subprocess.Popen``'s interface the node manager uses, for a forked worker."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None
        self.status_lost = False    # ended after its server died: no exit status to report

    def poll(self) -> int | None:
        if self.returncode is None and not self._server.alive:
            # The server died and took the exit reports with it; the orphan is
            # reaped by init, so "no such process" is all there will be to learn.
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.status_lost = True
                self.returncode = 1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._server._cond
        with cond:
            while self.poll() is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(f"worker pid {self.pid}", timeout or 0)
                # While the server lives its exit message wakes us; after, poll.
                cond.wait(left if self._server.alive else min(0.02, left or 0.02))
        assert self.returncode is not None
        return self.returncode

"""Helpers for Ember's long-running processes: parent watchdogs and readiness.

A child learns that its parent died through a pipe: the parent keeps the write
end open and never writes, so a read on the other end returns EOF exactly when
every holder of the write end is gone, however it died (even SIGKILL). This is
what lets a SIGKILLed driver leave no orphans and no shared-memory files.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from typing import Callable, NoReturn


def watch_parent(fd: int, on_death: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        on_death()

    thread = threading.Thread(target=run, name="ember-parent-watch", daemon=True)
    thread.start()
    return thread


def report_ready(fd: int, message: str) -> None:
    os.write(fd, (message + "\n").encode())
    os.close(fd)


def read_ready(fd: int, timeout: float, what: str, log_path: str | None = None) -> str:
    """Read one line a child writes when it is ready; fail fast if it died."""
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what} did not start within {timeout:.0f}s" + _log_hint(log_path))
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"{what} exited during start-up" + _log_hint(log_path))
        buf += chunk
    os.close(fd)
    return buf.decode().strip()


def _log_hint(log_path: str | None) -> str:
    if not log_path:
        return ""
    try:
        with open(log_path) as f:
            tail = f.read()[-2000:]
    except OSError:
        return f"; see {log_path}"
    return f"; its log {log_path} ends with:\n{tail}"


def install_term_handler(on_term: Callable[[], None], *, sigint: bool = False) -> None:
    """On SIGTERM (and SIGINT with ``sigint``; else SIGINT is ignored), call
    ``on_term`` on a new thread.

    Not in the handler itself: a handler runs on the main thread between two
    bytecodes, possibly while that thread holds the very lock ``on_term`` takes
    (``Event.set`` of the Event the main thread is waking from), which
    deadlocked a control service for good when its parent's exit and the
    supervisor's SIGTERM arrived together.
    """
    def handler(signum, frame):  # noqa: ARG001
        threading.Thread(target=on_term, name="ember-sigterm", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler if sigint else signal.SIG_IGN)


def python_executable() -> str:
    return sys.executable


# ---------------------------------------------------------------- forked children
# The control service's supervisor and each node manager fork a child that has
# their imports already loaded (gcs_supervisor.py, worker_fork.py): an exec'd
# interpreter would spend ~0.1 s of CPU importing gRPC again, which on a 2-core
# machine sits on the path to a new cluster's first result.

def close_fds_except(keep: tuple[int, ...]) -> None:
    """In a forked child: close every inherited descriptor above 2 but ``keep``
    (what ``Popen(close_fds=True, pass_fds=keep)`` gives an exec'd one).

    Only for a child that goes on with its own code and holds no Python object
    wrapping one of these descriptors (it would close a reused number later).
    """
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def redirect_stdio(log_path: str) -> None:
    """In a forked child: stdin from /dev/null, stdout and stderr appended to
    ``log_path``, unbuffered as under ``python -u``."""
    import io
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # The parent's stream objects may buffer (its stdout is a file, not a
    # terminal): a child's prints must reach its log at once, as exec'd ones do.
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), write_through=True,
                                  encoding=getattr(old, "encoding", None) or "utf-8",
                                  errors=getattr(old, "errors", None) or "backslashreplace")
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def set_process_name(name: str) -> None:
    """Name this process in ``ps``/``top`` (``/proc/<pid>/comm``, 15 characters):
    a forked child keeps its parent's command line, so this tells them apart.

    >>> set_process_name("ember-gcs")
    """
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def process_name(pid: int) -> str:
    """``/proc/<pid>/comm`` ("" if the process is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


class PopenSignals:
    """``Popen``'s send_signal/terminate/kill for handles that have ``pid``, ``args``
    and ``poll()``: a process already gone is not signalled (its pid may be another's
    by now); and a ``wait`` with a timeout that polls."""

    pid: int
    args: list[str]

    def poll(self) -> int | None:
        raise NotImplementedError

    def _poll_until(self, timeout: float | None) -> int:
        """Poll (backing off to 50 ms) until it ends; TimeoutExpired after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                import subprocess
                raise subprocess.TimeoutExpired(self.args or str(self.pid), timeout or 0)
            time.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, 0.05)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkedChild(PopenSignals):
    """The part of ``subprocess.Popen``'s interface (pid, args, returncode, poll,
    wait, send_signal, terminate, kill) for a child this process made with ``os.fork``.

    >>> child = ForkedChild(os.fork() or run_and_exit(), ["gcs"])   # doctest: +SKIP
    >>> child.wait(5)                                              # doctest: +SKIP
    0
    """

    def __init__(self, pid: int, args: list[str] | None = None) -> None:
        self.pid = pid
        self.args = list(args or [])
        self.returncode: int | None = None
        # As in Popen: one thread reaps; another's poll() meanwhile returns None.
        self._lock = threading.Lock()

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            # Reaped elsewhere (a SIGCHLD handler): its status is lost.
            pid, status = self.pid, 1 << 8
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def poll(self) -> int | None:
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                if self.returncode is None:
                    self._reap(os.WNOHANG)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:
            return self._poll_until(timeout)
        with self._lock:
            if self.returncode is None:
                self._reap(0)
        assert self.returncode is not None
        return self.returncode


def fork_child(run: Callable[[], object], keep_fds: tuple[int, ...] = (),
               args: list[str] | None = None, new_session: bool = False,
               prepare: Callable[[], None] | None = None) -> ForkedChild:
    """Fork a child that runs ``run()`` and exits with its result (an int, else 0;
    1 if it raised); returns its handle in the parent.

    The child keeps only descriptors 0-2 and ``keep_fds``, gets a fresh
    interpreter's SIGTERM, SIGINT and SIGCHLD handling, and calls ``prepare()``
    first (stdio, environment). Fork only from a thread-free point, or from a
    process whose other threads hold no lock the child needs (a thread blocked
    in a read is fine).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return ForkedChild(pid, args)

    def child() -> object:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        close_fds_except(keep_fds)
        if new_session:
            os.setsid()
        if prepare is not None:
            prepare()
        return run()

    exit_with(child)


def exit_with(run: Callable[[], object]) -> NoReturn:
    """In a forked child: run ``run()``, then exit with its result (an int, else 0;
    1 if it raised, its traceback on stderr). Never returns into the parent's code."""
    code = 1
    try:
        result = run()
        code = result if isinstance(result, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never return into its parent's code
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot); None if gone or a zombie.

    With the pid, it names one process: a pid can be reused, a pid and start time not.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None        # a zombie has exited; it only waits to be reaped
    return fields[19]      # field 22 of stat: start time in clock ticks since boot


class ProcessHandle(PopenSignals):
    """The part of ``subprocess.Popen``'s interface the node code uses, for a process
    one of this process's children forked (a head's node manager: node._spawn).

    Its parent reaps it, so its exit status is not known here: once it is gone
    ``returncode`` is ``1``. The pid is checked against its start time, so a
    reused pid is not taken for it.

    >>> manager = ProcessHandle(pid, ["-m", "ember._private.node_manager_main"])  # doctest: +SKIP
    >>> manager.poll() is None                                                   # doctest: +SKIP
    True
    """

    EXITED = 1

    def __init__(self, pid: int, args: list[str] | None = None) -> None:
        self.pid = pid
        self.args = list(args or [])
        self.returncode: int | None = None
        self._start = start_ticks(pid)
        if self._start is None:
            self.returncode = self.EXITED

    def poll(self) -> int | None:
        if self.returncode is None and start_ticks(self.pid) != self._start:
            self.returncode = self.EXITED
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self._poll_until(timeout)


def forked_children(spec_json: str) -> list[dict]:
    """Parse ``--fork-json`` (node._spawn): [{"module", "argv", "log", "name", "fds"}]."""
    import json
    return json.loads(spec_json) if spec_json else []


def fork_listed(specs: list[dict], keep_fds: tuple[int, ...] = ()) -> list[ForkedChild]:
    """Fork each process ``specs`` lists (``--fork-json``): ``module.main(argv)``, its
    stdio on its log, named ``name``, in a new session, keeping ``fds`` and
    ``keep_fds``. Call while this process has no other thread; what it imported
    already, the children need not import again."""
    import functools
    import importlib
    children = []
    for spec in specs:
        module = importlib.import_module(spec["module"])

        def prepare(spec: dict = spec) -> None:
            redirect_stdio(spec["log"])
            set_process_name(spec["name"])

        run = functools.partial(module.main, spec["argv"])
        children.append(fork_child(run, (*spec["fds"], *keep_fds),
                                   [spec["module"], *spec["argv"]], new_session=True,
                                   prepare=prepare))
        for fd in spec["fds"]:
            os.close(fd)
    return children

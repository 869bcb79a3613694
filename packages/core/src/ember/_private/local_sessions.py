"""Ember processes and sessions on this machine: finding, registering and stopping them.

Split from node.py (which starts nodes). Everything here reads the session
directories (``$EMBER_TMPDIR/ember/session_*``) and /proc, never a cluster's
RPCs: the CLI records what ``ember start`` starts (``procs/<pid>``, checked
against the process's start time so a reused pid is not mistaken for it),
``session_latest`` names the newest cluster, and ``stop_registered`` is ``ember
stop``. node.py re-exports these names for its older callers.

>>> find_latest_cluster()   # the newest cluster `ember start` left here  # doctest: +SKIP
'127.0.0.1:6379'
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .process_util import start_ticks as _proc_start_time

# Kept for callers that read it at import time; code here calls session_root()
# so that EMBER_TMPDIR set after import is honoured too.
SESSION_ROOT = os.path.join(os.environ.get("EMBER_TMPDIR", "/tmp"), "ember")
LATEST_LINK = "session_latest"
PROCS_DIR = "procs"


def session_root() -> str:
    """``$EMBER_TMPDIR/ember`` (default /tmp/ember): where session directories live."""
    return os.path.join(os.environ.get("EMBER_TMPDIR", "/tmp"), "ember")


def read_token(session_dir: str) -> str:
    """The cluster token kept in a session directory (mode 0600)."""
    with open(os.path.join(session_dir, "token")) as f:
        return f.read().strip()


def descendants(pid: int) -> list[int]:
    """Pids of ``pid``'s children, grandchildren and so on (from /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for path in _glob(f"/proc/{p}/task/*/children"):
            try:
                with open(path) as f:
                    kids = [int(c) for c in f.read().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def _glob(pattern: str) -> list[str]:
    import glob
    return glob.glob(pattern)


# ---------------------------------------------------------------- sessions on this machine

def _session_dirs() -> list[str]:
    """Session directories here, newest first (by the mtime of their ``gcs_address``)."""
    root = session_root()
    found = []
    for path in _glob(os.path.join(root, "session_*", "gcs_address")):
        if os.path.islink(os.path.dirname(path)):
            continue
        try:
            found.append((os.stat(path).st_mtime, os.path.dirname(path)))
        except OSError:
            continue
    return [d for _, d in sorted(found, reverse=True)]


def _same_address(a: str, b: str) -> bool:
    def norm(x: str) -> str:
        x = x.strip()
        return "127.0.0.1" + x[len("localhost"):] if x.startswith("localhost:") else x
    return norm(a) == norm(b)


def find_session(address: str) -> str | None:
    """The newest session directory on this machine for the cluster at ``address``."""
    for d in _session_dirs():
        try:
            with open(os.path.join(d, "gcs_address")) as f:
                if _same_address(f.read(), address):
                    return d
        except OSError:
            continue
    return None


def find_local_token(address: str) -> str | None:
    session = find_session(address)
    if session is None:
        return None
    try:
        return read_token(session)
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    return _proc_start_time(pid) is not None


def register_process(session_dir: str, pid: int, role: str, **extra: str) -> None:
    """Record a process the CLI started, so ``ember stop`` finds it."""
    procs = os.path.join(session_dir, PROCS_DIR)
    os.makedirs(procs, mode=0o700, exist_ok=True)
    record = {"pid": pid, "role": role, "start": _proc_start_time(pid), **extra}
    tmp = os.path.join(procs, f".{pid}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, os.path.join(procs, str(pid)))


def unregister_process(session_dir: str, pid: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(session_dir, PROCS_DIR, str(pid)))


@dataclass
class Registered:
    session_dir: str
    pid: int
    role: str
    start: str | None
    record_path: str
    shm_dir: str = ""
    shm_prefix: str = ""

    def alive(self) -> bool:
        now = _proc_start_time(self.pid)
        if now is None:
            return False
        if self.start is None:      # cannot tell pid reuse apart: be conservative
            return "ember" in _cmdline(self.pid)
        return now == self.start


def registered_processes(session_dir: str | None = None) -> list[Registered]:
    """Processes recorded by the CLI (in one session, or in every session here)."""
    dirs = [session_dir] if session_dir else _glob(os.path.join(session_root(), "session_*"))
    out = []
    for d in dirs:
        if os.path.islink(d):
            continue
        for path in _glob(os.path.join(d, PROCS_DIR, "*")):
            if os.path.basename(path).startswith("."):
                continue
            try:
                with open(path) as f:
                    rec = json.load(f)
                out.append(Registered(d, int(rec["pid"]), str(rec.get("role", "")),
                                      rec.get("start"), path, str(rec.get("shm_dir", "")),
                                      str(rec.get("shm_prefix", ""))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return out


def set_latest(session_dir: str) -> None:
    """Point ``session_latest`` at ``session_dir`` (atomically)."""
    root = session_root()
    link = os.path.join(root, LATEST_LINK)
    tmp = os.path.join(root, f".{LATEST_LINK}.{os.getpid()}")
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    os.symlink(os.path.basename(session_dir), tmp)
    os.replace(tmp, link)


def find_latest_cluster() -> str | None:
    """Address of the newest running cluster started on this machine by ``ember start``.

    ``session_latest`` is tried first; otherwise every session with a live
    registered process, newest first. None when there is none.
    """
    candidates: list[str] = []
    link = os.path.join(session_root(), LATEST_LINK)
    with contextlib.suppress(OSError):
        candidates.append(os.path.realpath(link))
    candidates.extend(_session_dirs())
    for d in candidates:
        if any(r.alive() for r in registered_processes(d)):
            try:
                with open(os.path.join(d, "gcs_address")) as f:
                    return f.read().strip()
            except OSError:
                continue
    return None


# ---------------------------------------------------------------- stopping

def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _environ_session(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for entry in f.read().split(b"\0"):
                if entry.startswith(b"EMBER_SESSION_DIR="):
                    return entry.split(b"=", 1)[1].decode(errors="replace")
    except OSError:
        return None
    return None


def session_processes(session_dirs: Iterable[str]) -> list[int]:
    """Live Ember processes (control services, node managers, workers) of these sessions.

    Found in /proc: an ``ember._private`` command line that names the session
    directory, or a worker whose ``EMBER_SESSION_DIR`` is one of them.
    """
    dirs = {os.path.realpath(d) for d in session_dirs}
    if not dirs:
        return []
    out = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        cmd = _cmdline(pid)
        if "ember._private" not in cmd or not pid_alive(pid):
            continue
        if any(d in cmd for d in dirs):
            out.append(pid)
            continue
        env_dir = _environ_session(pid)
        if env_dir and os.path.realpath(env_dir) in dirs:
            out.append(pid)
    return out


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill_and_wait(pids: Iterable[int], timeout: float) -> list[int]:
    """SIGKILL whatever of ``pids`` is still alive; return those still alive after ``timeout``."""
    left = [p for p in pids if pid_alive(p)]
    for pid in left:
        _send(pid, signal.SIGKILL)
    return _wait_gone(left, timeout)


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if pid_alive(p)]
    return left


@dataclass
class StopResult:
    sessions: list[str]
    stopped: list[int]
    killed: list[int]           # needed SIGKILL
    left: list[int]             # still alive (should be empty)


def stop_registered(force: bool = False, grace_period: float = 10.0) -> StopResult:
    """Stop every process ``ember start`` started on this machine, and their workers.

    SIGTERM first (a node manager stops its workers, a blocking ``ember start``
    stops its nodes), SIGKILL what is left after ``grace_period`` seconds (at
    once with ``force``); then a sweep of /proc for any process of those
    sessions that is still there.
    """
    records = registered_processes()
    sessions = sorted({r.session_dir for r in records})
    live = [r for r in records if r.alive()]
    targets = set(r.pid for r in live)
    for r in live:
        targets.update(descendants(r.pid))
    targets.update(session_processes(sessions))
    targets.discard(os.getpid())
    order = {"cli": 0}
    first = sorted(live, key=lambda r: order.get(r.role, 1 if r.role != "gcs" else 2))
    sig = signal.SIGKILL if force else signal.SIGTERM
    for r in first:
        _send(r.pid, sig)
    left = _wait_gone(targets, 0 if force else grace_period)
    # Workers of a node manager that was SIGKILLed exit on their own (watchdog
    # pipe); anything else still here gets SIGKILL.
    killed = [p for p in left if pid_alive(p)]
    survivors = _kill_and_wait(killed, 5.0)
    stray = [p for p in session_processes(sessions) if p not in targets]
    survivors += _kill_and_wait(stray, 5.0)
    for r in records:
        if not r.alive():
            with contextlib.suppress(OSError):
                os.unlink(r.record_path)
    link = os.path.join(session_root(), LATEST_LINK)
    with contextlib.suppress(OSError):
        if os.path.realpath(link) in {os.path.realpath(s) for s in sessions}:
            os.unlink(link)
    # Shared-memory files of node managers that were killed before cleaning up.
    from .shm_store import ShmStore
    for shm in {(r.shm_dir, r.shm_prefix) for r in records if r.shm_dir and r.shm_prefix}:
        ShmStore(*shm).cleanup_all()
    # And their objects spilled to disk (every node of these sessions is stopped).
    for session in sessions:
        shutil.rmtree(os.path.join(session, "spill"), ignore_errors=True)
    return StopResult(sessions=sessions, stopped=sorted(targets | set(stray)),
                      killed=sorted(set(killed) | set(stray)), left=survivors)

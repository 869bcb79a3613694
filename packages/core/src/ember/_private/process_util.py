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
from typing import Callable


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

"""Helpers for testing code that uses Ember (and Ember itself).

>>> from ember.testing import wait_for_condition
>>> wait_for_condition(lambda: ember.available_resources().get("CPU") == 2)
"""
from __future__ import annotations

import glob
import os
import time
from typing import Callable

__all__ = ["wait_for_condition", "shm_files", "cluster_processes", "session_dir"]


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
    return pids


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return out

"""Bounding a node's runtime_env caches: least recently used first, by size.

Unpacked packages and venvs live under ``<session_dir>/runtime_resources``;
when they add up to more than ``EMBER_RUNTIME_ENV_CACHE_BYTES`` (default
10 GiB), those no live worker uses are deleted, oldest use first, until the
rest fits. ``choose_evictions`` decides (pure); ``enforce`` measures and deletes.

>>> choose_evictions([Entry("a", 6, 1.0, False), Entry("b", 6, 2.0, False)], limit=8)
['a']
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .pip_env import READY

CACHE_BYTES_ENV = "EMBER_RUNTIME_ENV_CACHE_BYTES"
DEFAULT_CACHE_BYTES = 10 * 1024 ** 3
KINDS = ("working_dir_files", "py_modules_files", "pip")
# An entry without its ready marker is being built (or a crash left it): only
# one this old is taken for debris.
STALE_PARTIAL_SECONDS = 3600.0


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    last_used: float
    in_use: bool


def env_bytes(name: str, default: int, example: str) -> int:
    """A byte count from environment variable ``name`` (``default`` when unset);
    a clear error naming the variable when it is not a number.

    >>> env_bytes("EMBER_NOT_SET_ANYWHERE", 5, "5 for five bytes")
    5
    """
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be a number of bytes, e.g. {example}") from None


def cache_limit() -> int:
    return env_bytes(CACHE_BYTES_ENV, DEFAULT_CACHE_BYTES, "10737418240 for 10 GiB")


def choose_evictions(entries: Sequence[Entry], limit: int) -> list[str]:
    """Paths to delete so the total is at most ``limit``: unused ones, oldest first.

    In-use entries are never chosen, so the total may stay above ``limit``.

    >>> choose_evictions([Entry("a", 6, 1.0, True), Entry("b", 6, 2.0, False)], limit=8)
    ['b']
    >>> choose_evictions([Entry("a", 3, 1.0, False)], limit=8)
    []
    """
    total = sum(e.size for e in entries)
    chosen: list[str] = []
    for entry in sorted(entries, key=lambda e: (e.last_used, e.path)):
        if total <= limit:
            break
        if entry.in_use:
            continue
        chosen.append(entry.path)
        total -= entry.size
    return chosen


def scan(root: str, in_use: Iterable[str], now: float | None = None) -> list[Entry]:
    """The cached resources under ``root`` with their sizes and last use."""
    now = time.time() if now is None else now
    used = {os.path.realpath(p) for p in in_use}
    out = []
    for kind in KINDS:
        base = os.path.join(root, kind)
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(base, name)
            if not os.path.isdir(path) or name.startswith("."):
                continue
            try:
                last_used = os.path.getmtime(os.path.join(path, READY))
                building = False
            except OSError:
                last_used = os.path.getmtime(path)
                building = now - last_used < STALE_PARTIAL_SECONDS
            out.append(Entry(path, _du(path), last_used,
                             building or os.path.realpath(path) in used))
    return out


def enforce(root: str, in_use: Iterable[str], limit: int | None = None) -> list[str]:
    """Delete least-recently-used unused resources until ``root`` fits; returns them."""
    limit = cache_limit() if limit is None else limit
    victims = choose_evictions(scan(root, in_use), limit)
    for path in victims:
        # Drop the marker first: a half-deleted entry must never look ready.
        try:
            os.unlink(os.path.join(path, READY))
        except OSError:
            pass
        shutil.rmtree(path, ignore_errors=True)
    return victims


def _du(path: str) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


__all__ = ["CACHE_BYTES_ENV", "Entry", "cache_limit", "choose_evictions", "enforce", "scan"]

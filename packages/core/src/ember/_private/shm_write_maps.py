"""Writable mappings of recycled object files, kept by the process that filled them.

For a large object, mapping the file costs more than copying into it: populating
the page tables of 800 MB of tmpfs pages takes ~55 ms and tearing them down
(munmap) ~30 ms, against ~25 ms for the copy itself on 2 cores. A process that
writes large objects one after another (a loop of ``put``) gets the files of its
freed objects back from the pool (``shm_store.py``), so it keeps the mappings of
the last few files it filled; a write into one of them again is a bare copy.

A kept mapping takes no lock, so the node manager may still recycle, hand out or
unlink the file: this process writes through the mapping only once it owns the
file again (it took it from the pool). But the mapping does keep the pages of an
unlinked file alive, so the mapping of a file that is gone is dropped at the next
write, and every mapping unused for ``idle_s`` is dropped by a timer: memory is
never held for long past its object.
"""
from __future__ import annotations

import mmap
import os
import threading
import time
from typing import Callable


class WriteMaps:
    """Up to ``keep`` mappings, by inode.

    >>> import tempfile
    >>> maps = WriteMaps()
    >>> fd = os.open(tempfile.mktemp(), os.O_CREAT | os.O_RDWR)
    >>> os.ftruncate(fd, 4096)
    >>> mm = maps.take(fd, 4096)          # a new mapping of the file
    >>> maps.keep(fd, mm)
    >>> maps.take(fd, 100) is mm          # the kept one, while the file is the same
    True
    >>> maps.close(); mm.close(); os.close(fd)
    """

    def __init__(self, keep: int = 4, idle_s: float = 2.0) -> None:
        self._keep = keep
        self._idle_s = idle_s
        self._lock = threading.Lock()
        # inode -> (mapping, a descriptor of the file, last used): insertion-ordered, LRU first.
        self._maps: dict[tuple[int, int], tuple[mmap.mmap, int, float]] = {}
        self._timer: threading.Timer | None = None

    def inodes(self) -> set[tuple[int, int]]:
        """(device, inode) of every file with a kept mapping."""
        with self._lock:
            return set(self._maps)

    def take(self, fd: int, size: int) -> mmap.mmap:
        """A writable mapping of at least ``size`` bytes of the file ``fd`` (which this
        process owns now): the kept one if there is one that large, else a new one,
        populated up front (its pages exist: one call maps them all)."""
        st = os.fstat(fd)
        with self._lock:
            kept = self._maps.pop((st.st_dev, st.st_ino), None)
        if kept is not None:
            mm, kept_fd, _ = kept
            os.close(kept_fd)
            if len(mm) >= size:
                return mm
            mm.close()
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))

    def keep(self, fd: int, mm: mmap.mmap) -> None:
        """Keep ``mm`` (of the file ``fd``) for a later write into the same file."""
        st = os.fstat(fd)
        dropped = []
        with self._lock:
            self._maps[(st.st_dev, st.st_ino)] = (mm, os.dup(fd), time.monotonic())
            while len(self._maps) > self._keep:
                dropped.append(self._maps.pop(next(iter(self._maps))))
            if self._timer is None:
                self._arm()
        _close(dropped)

    def drop_gone(self) -> None:
        """Drop the mappings of files that were unlinked (they hold the memory)."""
        self._drop(lambda kept_fd, used: os.fstat(kept_fd).st_nlink == 0)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self._idle_s
        with self._lock:
            self._timer = None
        self._drop(lambda kept_fd, used: used <= cutoff or os.fstat(kept_fd).st_nlink == 0)
        with self._lock:
            if self._maps and self._timer is None:
                self._arm()

    def _drop(self, stale: Callable[[int, float], bool]) -> None:
        with self._lock:
            dropped = [self._maps.pop(key) for key, (_, kept_fd, used) in list(self._maps.items())
                       if stale(kept_fd, used)]
        _close(dropped)

    def _arm(self) -> None:
        """Lock held: drop idle mappings ``idle_s`` from now."""
        self._timer = threading.Timer(self._idle_s, self._sweep)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        """Drop every kept mapping."""
        with self._lock:
            dropped = list(self._maps.values())
            self._maps.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        _close(dropped)


def _close(entries: list[tuple[mmap.mmap, int, float]]) -> None:
    for mm, fd, _ in entries:
        mm.close()
        os.close(fd)

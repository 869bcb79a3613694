"""Size-capped log files: rotation by the writing process, and a per-session cap.

Workers (and the node manager) have their stdout/stderr file descriptors
pointed at files in ``session_*/logs/`` so output from C extensions and child
processes is kept too. A file another process writes through a descriptor can
only be rotated safely by the writer: copy-and-truncate from outside loses the
lines written between the copy and the truncate. So each such process rotates
its own files, at the descriptor level:

1. open ``<name>.new`` and ``dup2`` it onto fd 1 (and/or 2): from this instant
   every write, from Python or C, lands in the new file;
2. shift ``<name>.1`` -> ``<name>.2`` ... (the oldest beyond the backup count
   is overwritten), rename ``<name>`` -> ``<name>.1`` and ``<name>.new`` ->
   ``<name>``.

Python-level writes go through a counting writer installed as ``sys.stdout``/
``sys.stderr`` that rotates the moment a file reaches the limit; a background
thread checks the real size once a second for what C code wrote. The log
monitor follows files by inode, so it reads the rest of the renamed file before
moving to the new one and loses nothing (log_monitor.py).

Across the session, the node manager deletes the oldest *rotated* files once
everything in ``logs/`` together exceeds the session cap (``select_for_deletion``).

Settings (environment, read where the process starts; Ray's defaults):
``EMBER_LOG_ROTATION_MAX_BYTES`` (512 MiB; 0 = never rotate),
``EMBER_LOG_ROTATION_BACKUP_COUNT`` (5), ``EMBER_LOG_SESSION_MAX_BYTES``
(4 GiB; 0 = no cap).

>>> rotation_renames("/l/w.out", 2)
[('/l/w.out.1', '/l/w.out.2'), ('/l/w.out', '/l/w.out.1')]
"""
from __future__ import annotations

import io
import os
import re
import stat
import sys
import threading
from dataclasses import dataclass
from typing import Any, Collection, Mapping

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5
DEFAULT_SESSION_MAX_BYTES = 4 * 1024 * 1024 * 1024
CHECK_SECONDS = 1.0

_ROTATED = re.compile(r"\.\d+$")


@dataclass(frozen=True)
class RotationConfig:
    max_bytes: int = DEFAULT_MAX_BYTES
    backup_count: int = DEFAULT_BACKUP_COUNT
    session_max_bytes: int = DEFAULT_SESSION_MAX_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RotationConfig":
        """Read the ``EMBER_LOG_*`` variables; a bad value is a ValueError naming it."""
        env = os.environ if env is None else env

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                value = -1
            if value < 0:
                raise ValueError(f"{name}={raw!r} is not a whole number >= 0: set it to e.g. "
                                 f"{default} (or unset it for the default)")
            return value

        return cls(number("EMBER_LOG_ROTATION_MAX_BYTES", DEFAULT_MAX_BYTES),
                   number("EMBER_LOG_ROTATION_BACKUP_COUNT", DEFAULT_BACKUP_COUNT),
                   number("EMBER_LOG_SESSION_MAX_BYTES", DEFAULT_SESSION_MAX_BYTES))


# ------------------------------------------------------------ pure decisions
def rotation_renames(path: str, backup_count: int) -> list[tuple[str, str]]:
    """The renames of one rotation, oldest first (each overwrites its target)."""
    renames = [(f"{path}.{i - 1}", f"{path}.{i}") for i in range(backup_count, 1, -1)]
    if backup_count >= 1:
        renames.append((path, f"{path}.1"))
    return renames


def is_rotated(name: str) -> bool:
    """``worker-1.out.3`` is a rotated file; ``worker-1.out`` is live."""
    return bool(_ROTATED.search(name))


@dataclass(frozen=True)
class LogFile:
    path: str
    size: int
    mtime: float
    ino: int = -1


def select_for_deletion(files: list[LogFile], cap: int, *,
                        keep: Collection[int] = (), newer_than: float | None = None
                        ) -> list[str]:
    """Oldest rotated files to delete so everything fits in ``cap`` bytes (0 = no cap).

    Live files are never chosen (their writers hold them open); if they alone
    exceed the cap, every rotated file goes and that is the best possible.
    Files whose inode is in ``keep`` (rotated but not yet read to their end by
    the log monitor) and files modified after ``newer_than`` (rotated since the
    monitor looked) are kept too, so the cap may be exceeded for a moment rather
    than lose lines no driver has seen.

    >>> select_for_deletion([LogFile("w.out.2", 50, 1.0, ino=7),
    ...                      LogFile("w.out.1", 50, 2.0, ino=8)], 40, keep={7})
    ['w.out.1']
    """
    if cap <= 0:
        return []
    total = sum(f.size for f in files)
    if total <= cap:
        return []
    out = []
    for f in sorted((f for f in files if is_rotated(os.path.basename(f.path))),
                    key=lambda f: (f.mtime, f.path)):
        if total <= cap:
            break
        if f.ino in keep or (newer_than is not None and f.mtime > newer_than):
            continue
        out.append(f.path)
        total -= f.size
    return out


def enforce_session_cap(log_dir: str, cap: int, *, keep: Collection[int] = (),
                        newer_than: float | None = None) -> list[str]:
    """Delete the oldest rotated files in ``log_dir`` beyond ``cap``; return what went
    (``keep``, ``newer_than``: as in select_for_deletion)."""
    if cap <= 0:
        return []
    files = []
    try:
        entries = list(os.scandir(log_dir))
    except OSError:
        return []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append(LogFile(entry.path, st.st_size, st.st_mtime, st.st_ino))
    deleted = []
    for path in select_for_deletion(files, cap, keep=keep, newer_than=newer_than):
        try:
            os.unlink(path)
            deleted.append(path)
        except FileNotFoundError:
            pass        # its writer rotated it away meanwhile
    return deleted


# ------------------------------------------------------------ the writer side
class FdRotator:
    """Rotates the file that one or more of this process's descriptors write to."""

    def __init__(self, fds: list[int], path: str, config: RotationConfig) -> None:
        self.fds = fds
        self.path = path
        self.config = config
        self._lock = threading.RLock()
        self._size = self._fstat_size()
        self.rotations = 0

    def _fstat_size(self) -> int:
        try:
            return os.fstat(self.fds[0]).st_size
        except OSError:
            return 0

    def wrote(self, n: int) -> None:
        """Python code wrote ``n`` bytes through a descriptor (the lock is held)."""
        self._size += n
        if self.config.max_bytes and self._size >= self.config.max_bytes:
            self.rotate()

    def check(self) -> None:
        """Look at the real size (C code may have written) and rotate if over."""
        with self._lock:
            self._size = self._fstat_size()
            if self.config.max_bytes and self._size >= self.config.max_bytes:
                self.rotate()

    def rotate(self) -> None:
        with self._lock:
            fresh = self.path + ".new"
            try:
                mode = os.fstat(self.fds[0]).st_mode & 0o777
                fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                             mode or 0o600)
            except OSError:
                return      # no room or no directory: keep writing where we are
            try:
                for target in self.fds:
                    os.dup2(fd, target)
            finally:
                os.close(fd)
            try:
                if self.config.backup_count:
                    for src, dst in rotation_renames(self.path, self.config.backup_count):
                        try:
                            os.replace(src, dst)
                        except FileNotFoundError:
                            pass
                else:
                    os.unlink(self.path)
                os.replace(fresh, self.path)
            except OSError:
                pass
            self._size = 0
            self.rotations += 1


class _CountingWriter(io.RawIOBase):
    """``sys.stdout``'s bytes layer: writes to the descriptor, then lets the rotator count."""

    def __init__(self, fd: int, rotator: FdRotator) -> None:
        super().__init__()
        self._fd = fd
        self._rotator = rotator

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        with self._rotator._lock:
            done = 0
            while done < len(view):
                done += os.write(self._fd, view[done:])
            self._rotator.wrote(done)
        return done


_installed: list[FdRotator] = []


def install(config: RotationConfig | None = None) -> list[FdRotator]:
    """Rotate this process's stdout/stderr files (no-op for a terminal or a pipe).

    Replaces ``sys.stdout``/``sys.stderr`` with unbuffered writers that count
    what Python writes, and starts a thread that checks the sizes once a second.
    """
    config = config or RotationConfig.from_env()
    if _installed or not config.max_bytes:
        return list(_installed)
    groups: dict[tuple[int, int], list[int]] = {}
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            groups.setdefault((st.st_dev, st.st_ino), []).append(fd)
    for fds in groups.values():
        try:
            path = os.readlink(f"/proc/self/fd/{fds[0]}")
        except OSError:
            continue
        if not os.path.isabs(path) or path.endswith(" (deleted)"):
            continue
        rotator = FdRotator(fds, path, config)
        _installed.append(rotator)
        for fd in fds:
            raw: Any = _CountingWriter(fd, rotator)
            stream = io.TextIOWrapper(raw, encoding="utf-8",
                                      errors="backslashreplace" if fd == 2 else "strict",
                                      line_buffering=True, write_through=True)
            old = sys.stdout if fd == 1 else sys.stderr
            try:
                old.flush()
            except (OSError, ValueError, AttributeError):
                pass
            if fd == 1:
                sys.stdout = stream
            else:
                sys.stderr = stream
    if _installed:
        threading.Thread(target=_check_loop, daemon=True, name="ember-log-rotation").start()
    return list(_installed)


def _check_loop() -> None:
    import time
    while True:
        time.sleep(CHECK_SECONDS)
        for rotator in _installed:
            rotator.check()

"""Tails worker log files and fans new lines out to subscribed drivers.

Workers write their stdout/stderr to files in the session's logs directory (so
output from C extensions is captured too). Before each task a worker writes a
``:task_name:<name>`` marker line, which lets the driver prefix every line with
the task that printed it, as Ray does.

Workers rotate their own files (log_rotation.py: the live name is renamed to
``.1`` and a fresh file takes its place). A tail keeps the file it is reading
open and notices the rename by inode, so it reads the old file to its end
before moving to the new one: nothing is lost or read twice. Every few seconds
the monitor also deletes the oldest rotated files beyond the session's cap,
except those a tail has not read to the end yet.
"""
from __future__ import annotations

import collections
import os
import queue
import threading
import time
from typing import BinaryIO

from .log_rotation import enforce_session_cap
from .protos import ember_pb2 as pb

TASK_NAME_MARKER = ":task_name:"
# A marker may end with this and the task's id (hex), so `ember logs --task-id`
# finds exactly the lines one task printed (log_service.task_lines).
TASK_ID_SEPARATOR = " :task_id:"
POLL_SECONDS = 0.05
# At most this much of one file per poll, so a worker printing gigabytes cannot
# make the node manager hold them all in memory at once.
READ_LIMIT = 4 * 1024 * 1024
SESSION_CAP_SECONDS = 2.0
MAX_FILES = 10_000
# Looks at the rotated names before a tail that lost its file jumps to the oldest one.
_FOLLOW_TRIES = 50


class _Tail:
    def __init__(self, pid: int, path: str, is_err: bool) -> None:
        self.pid = pid
        self.path = path
        self.is_err = is_err
        self.offset = 0
        self.partial = b""
        self.task_name = ""
        self.file: BinaryIO | None = None   # the file being read (kept open across a rotation)
        self.ino = -1

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class LogMonitor:
    def __init__(self, log_dir: str, session_max_bytes: int = 0) -> None:
        self._log_dir = log_dir
        self._session_max_bytes = session_max_bytes
        self._lock = threading.Lock()
        self._tails: list[_Tail] = []
        self._finished: set[int] = set()
        self._subscribers: list[queue.Queue] = []
        self._stop = threading.Event()
        # Every worker's files, kept after it exits (the newest MAX_FILES), so
        # `ember logs` finds a worker's output by pid (log_service.py).
        self.files: collections.OrderedDict[int, tuple[str, str]] = collections.OrderedDict()
        os.makedirs(log_dir, exist_ok=True)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="ember-log-monitor", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def add(self, pid: int, out_path: str, err_path: str) -> None:
        with self._lock:
            self._tails.append(_Tail(pid, out_path, False))
            self._tails.append(_Tail(pid, err_path, True))
            self.files[pid] = (out_path, err_path)
            while len(self.files) > MAX_FILES:
                self.files.popitem(last=False)

    def worker_files(self) -> list[tuple[int, str, str]]:
        """(pid, stdout path, stderr path) of the workers started here, oldest first."""
        with self._lock:
            return [(pid, out, err) for pid, (out, err) in self.files.items()]

    def finish(self, pid: int) -> None:
        # Read what the dead worker left, then forget it on the next pass.
        with self._lock:
            self._finished.add(pid)

    def subscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._subscribers.append(q)

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def _loop(self) -> None:
        last_cap = 0.0
        while not self._stop.wait(POLL_SECONDS):
            self.poll_once()
            if self._session_max_bytes and time.monotonic() - last_cap >= SESSION_CAP_SECONDS:
                last_cap = time.monotonic()
                # Files modified in the last second are kept too: a file created and
                # rotated after the look below is in no chain yet, and file times lag
                # the clock by a tick.
                newer_than = time.time() - 1.0
                enforce_session_cap(self._log_dir, self._session_max_bytes,
                                    keep=self.unread_inodes(), newer_than=newer_than)

    def unread_inodes(self) -> set[int]:
        """Inodes of the rotated files some tail has not read to the end yet: the one
        it reads and every one rotated after it. The session cap must not delete
        them (a burst of output can rotate many files between two polls)."""
        with self._lock:
            tails = list(self._tails)
        keep: set[int] = set()
        for tail in tails:
            inos = [ino for _, ino in _rotation_chain(tail.path)]
            if tail.file is not None and tail.ino in inos:
                keep.update(inos[inos.index(tail.ino):])
            else:
                keep.update(inos)       # lost its place: keep all until it reads on
        return keep

    def poll_once(self) -> list[pb.LogLine]:
        with self._lock:
            tails = list(self._tails)
            finished = set(self._finished)
        lines: list[pb.LogLine] = []
        for tail in tails:
            lines.extend(_read_new(tail))
            while tail.pid in finished and tail.file is not None and _has_more(tail):
                lines.extend(_read_new(tail))     # a dead worker's files are read to the end
            if tail.pid in finished and tail.partial:
                # The process is gone: its unterminated last line is complete.
                lines.append(pb.LogLine(pid=tail.pid, task_name=tail.task_name,
                                        line=tail.partial.decode("utf-8", "replace"),
                                        is_err=tail.is_err))
                tail.partial = b""
        if finished:
            for tail in tails:
                if tail.pid in finished:
                    tail.close()
            with self._lock:
                self._tails = [t for t in self._tails if t.pid not in finished]
                self._finished -= finished
        if lines:
            with self._lock:
                subscribers = list(self._subscribers)
            for q in subscribers:
                q.put(lines)
        return lines


def _read_chunk(tail: _Tail, limit: int) -> bytes:
    """New bytes of the tailed file, following rotations (several files per call:
    rotated files must be read before the session cap may delete them)."""
    out = b""
    while len(out) < limit:
        if tail.file is None:
            path = tail.path
            if tail.ino == -1:
                # The first look: a worker forked in milliseconds can print and
                # rotate before our first poll. Start at its oldest file, where
                # its first lines (and task-name marker) are.
                chain = _rotation_chain(tail.path)
                path = chain[0][0] if chain else tail.path
            try:
                tail.file = open(path, "rb")
            except OSError:
                break           # not created yet, or between a rotation's renames
            tail.ino = os.fstat(tail.file.fileno()).st_ino
            tail.offset = 0
        data = tail.file.read(limit - len(out))
        tail.offset += len(data)
        out += data
        if len(out) >= limit:
            break
        # At the end of this file: if the name now points elsewhere, the writer
        # rotated. It switched descriptors before renaming, so once this file is
        # read to its end (again, for writes that raced the check) it is done.
        try:
            ino = os.stat(tail.path).st_ino
        except OSError:
            ino = tail.ino
        if ino == tail.ino:
            break
        data = tail.file.read(limit - len(out))
        tail.offset += len(data)
        out += data
        if len(out) >= limit:
            break
        before = tail.ino
        _follow_rotation(tail)
        if tail.file is None and before == tail.ino:
            continue            # gone with no successor found: reopen the live name
    return out


def _follow_rotation(tail: _Tail) -> None:
    """Move to the file written after the one just read out.

    Several rotations may have happened since the last poll: the next file is
    then not the live one but a rotated one, one number below the file just
    read (``w.out.3`` -> ``w.out.2``). Names shift while we look, so files are
    matched by inode, and the opened one is checked to be the one we found.
    A look that misses our file while it still has a name (the writer was
    mid-rotation: its renames leave a moving hole in the numbers) is retried;
    only a file that was really deleted sends us to the oldest one left.
    """
    old_ino = tail.ino
    try:
        still_named = tail.file is not None and os.fstat(tail.file.fileno()).st_nlink > 0
    except (OSError, ValueError):
        still_named = False
    tail.close()
    for attempt in range(_FOLLOW_TRIES):
        chain = _rotation_chain(tail.path)          # oldest first: [(path, ino), ...]
        inos = [ino for _, ino in chain]
        last_try = attempt == _FOLLOW_TRIES - 1
        if old_ino in inos and inos.index(old_ino) + 1 < len(chain):
            path, ino = chain[inos.index(old_ino) + 1]
        elif still_named and not last_try:
            time.sleep(0.001)                       # an inconsistent look: again
            continue
        elif chain and old_ino not in inos:
            # Ours was deleted (the session cap, or past the backup count): both
            # take the oldest files first, so every file left came after it.
            path, ino = chain[0]
        else:
            return
        try:
            f = open(path, "rb")
        except OSError:
            continue
        if os.fstat(f.fileno()).st_ino == ino:
            tail.file, tail.ino, tail.offset = f, ino, 0
            return
        f.close()


def _rotation_chain(path: str) -> list[tuple[str, int]]:
    """``path``'s rotated files, oldest first, then ``path`` itself, with inodes.
    One missing number is stepped over: a rotation in progress leaves a hole."""
    chain = []
    misses = 0
    i = 1
    while misses < 2:
        try:
            chain.append((f"{path}.{i}", os.stat(f"{path}.{i}").st_ino))
            misses = 0
        except OSError:
            misses += 1
        i += 1
    chain.reverse()
    try:
        chain.append((path, os.stat(path).st_ino))
    except OSError:
        pass
    return chain


def _has_more(tail: _Tail) -> bool:
    try:
        return tail.file is not None and os.fstat(tail.file.fileno()).st_size > tail.file.tell()
    except (OSError, ValueError):
        return False


def _read_new(tail: _Tail) -> list[pb.LogLine]:
    data = _read_chunk(tail, READ_LIMIT)
    if not data:
        return []
    data = tail.partial + data
    *complete, tail.partial = data.split(b"\n")
    out = []
    for raw in complete:
        line = raw.decode("utf-8", "replace")
        if line.startswith(TASK_NAME_MARKER):
            tail.task_name = line[len(TASK_NAME_MARKER):].split(TASK_ID_SEPARATOR, 1)[0]
            continue
        out.append(pb.LogLine(pid=tail.pid, task_name=tail.task_name, line=line, is_err=tail.is_err))
    return out

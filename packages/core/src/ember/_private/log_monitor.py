"""Tails worker log files and fans new lines out to subscribed drivers.

Workers write their stdout/stderr to files in the session's logs directory (so
output from C extensions is captured too). Before each task a worker writes a
``:task_name:<name>`` marker line, which lets the driver prefix every line with
the task that printed it, as Ray does.
"""
from __future__ import annotations

import os
import queue
import threading

from .protos import ember_pb2 as pb

TASK_NAME_MARKER = ":task_name:"
POLL_SECONDS = 0.05


class _Tail:
    def __init__(self, pid: int, path: str, is_err: bool) -> None:
        self.pid = pid
        self.path = path
        self.is_err = is_err
        self.offset = 0
        self.partial = b""
        self.task_name = ""


class LogMonitor:
    def __init__(self, log_dir: str) -> None:
        self._lock = threading.Lock()
        self._tails: list[_Tail] = []
        self._finished: set[int] = set()
        self._subscribers: list[queue.Queue] = []
        self._stop = threading.Event()
        os.makedirs(log_dir, exist_ok=True)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="ember-log-monitor", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def add(self, pid: int, out_path: str, err_path: str) -> None:
        with self._lock:
            self._tails.append(_Tail(pid, out_path, False))
            self._tails.append(_Tail(pid, err_path, True))

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
        while not self._stop.wait(POLL_SECONDS):
            self.poll_once()

    def poll_once(self) -> list[pb.LogLine]:
        with self._lock:
            tails = list(self._tails)
            finished = set(self._finished)
        lines: list[pb.LogLine] = []
        for tail in tails:
            lines.extend(_read_new(tail))
            if tail.pid in finished and tail.partial:
                # The process is gone: its unterminated last line is complete.
                lines.append(pb.LogLine(pid=tail.pid, task_name=tail.task_name,
                                        line=tail.partial.decode("utf-8", "replace"),
                                        is_err=tail.is_err))
                tail.partial = b""
        if finished:
            with self._lock:
                self._tails = [t for t in self._tails if t.pid not in finished]
                self._finished -= finished
        if lines:
            with self._lock:
                subscribers = list(self._subscribers)
            for q in subscribers:
                q.put(lines)
        return lines


def _read_new(tail: _Tail) -> list[pb.LogLine]:
    try:
        size = os.path.getsize(tail.path)
    except OSError:
        return []
    if size <= tail.offset:
        return []
    with open(tail.path, "rb") as f:
        f.seek(tail.offset)
        data = f.read(size - tail.offset)
    tail.offset += len(data)
    data = tail.partial + data
    *complete, tail.partial = data.split(b"\n")
    out = []
    for raw in complete:
        line = raw.decode("utf-8", "replace")
        if line.startswith(TASK_NAME_MARKER):
            tail.task_name = line[len(TASK_NAME_MARKER):]
            continue
        out.append(pb.LogLine(pid=tail.pid, task_name=tail.task_name, line=line, is_err=tail.is_err))
    return out

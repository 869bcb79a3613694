"""Task-name marker lines in a worker's stdout and stderr.

A marker line (``:task_name:<name> :task_id:<hex>``, log_monitor.py) tells the
node's log monitor whose output follows (the driver prefixes lines with the
name) and lets ``ember logs --task-id`` cut out one task's lines
(log_service.task_lines).

Writing both markers at every task start (two unbuffered writes) took a 1:1
actor call's worker CPU from ~26 us to ~48 us, and the log monitor then read and
parsed two lines per call. So a marker goes out:

- at once, when the name changes (a new function, or an actor's class after its
  constructor): output written below Python (C extensions, subprocesses) is
  then still prefixed with the right name;
- otherwise only just before the task's first Python-level write to that stream
  (``MarkedStream``). A task that prints nothing leaves no marker; the lookup by
  task id then finds no lines for it, which is what it printed. Output a task
  writes only below Python, under the same name as the task before it, is
  counted as that earlier task's in a lookup by id.

>>> import io
>>> out = MarkedStream(io.StringIO())
>>> marks = TaskMarks((out,))
>>> marks.mark("f", b"\\x01"); marks.mark("f", b"\\x02"); out.write("hi\\n")
3
>>> out.getvalue()
':task_name:f :task_id:01\\n:task_name:f :task_id:02\\nhi\\n'
"""
from __future__ import annotations

import sys
from typing import Any

from .log_monitor import TASK_ID_SEPARATOR, TASK_NAME_MARKER


class MarkedStream:
    """A text stream that writes a pending marker line before the next output."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.pending: str | None = None

    def write(self, s: str) -> int:
        pending = self.pending
        if pending is not None and s:
            self.pending = None
            self._inner.write(pending)
        return self._inner.write(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TaskMarks:
    """Marks task starts on ``streams`` (None: sys.stdout and sys.stderr, as they
    are at each call)."""

    def __init__(self, streams: tuple[Any, ...] | None = None) -> None:
        self._streams = streams
        self._last_name: str | None = None

    def mark(self, name: str, task_id: bytes = b"") -> None:
        marker = f"{TASK_NAME_MARKER}{name}"
        if task_id:
            marker += f"{TASK_ID_SEPARATOR}{task_id.hex()}"
        marker += "\n"
        same_name = name == self._last_name
        self._last_name = name
        for stream in self._streams or (sys.stdout, sys.stderr):
            if isinstance(stream, MarkedStream):
                if same_name:
                    stream.pending = marker     # written before this task's first output
                    continue
                stream.pending = None           # superseded: this task's marker goes now
            try:
                stream.write(marker)
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or odd stream: output is best effort
                pass


def install() -> None:
    """Wrap this worker's sys.stdout/sys.stderr (after log_rotation.install)."""
    if not isinstance(sys.stdout, MarkedStream):
        sys.stdout = MarkedStream(sys.stdout)
    if not isinstance(sys.stderr, MarkedStream):
        sys.stderr = MarkedStream(sys.stderr)

"""A node's log files over gRPC (LogService, served by its node manager): `ember logs`.

The session's ``logs/`` directory holds, per node, the node manager's log, on
the head the control service's, and two files per worker (stdout, stderr)
named ``worker-<stamp>.out/.err``. Several nodes on one machine share that
directory, so a node lists only its own files: its own log (whatever its
stdout is), ``gcs.log`` on the head, and the workers it started (the log
monitor keeps their paths by pid). ``GetLog`` streams one of them by name or a
worker's by pid: the whole file or its last lines, then, with ``follow``, what
is appended until the caller hangs up.

The helpers at the bottom are pure (tested without processes).
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterator

from .log_monitor import TASK_ID_SEPARATOR, TASK_NAME_MARKER
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg

CHUNK_BYTES = 1 << 20
FOLLOW_POLL_SECONDS = 0.2


class LogService(pbg.LogServiceServicer):
    def __init__(self, node_manager: Any) -> None:
        self._nm = node_manager
        self.log_dir = os.path.join(node_manager.session_dir, "logs")

    def _own_logs(self) -> list[str]:
        """This node manager's log (its stdout), and the control service's on the head."""
        try:
            own = os.readlink("/proc/self/fd/1")
        except OSError:
            return []
        if os.path.dirname(own) != self.log_dir:
            return []      # not started with its output in the session (e.g. a test)
        out = [own]
        if os.path.basename(own) == "node_manager.log":
            gcs = os.path.join(self.log_dir, "gcs.log")
            if os.path.exists(gcs):
                out.append(gcs)
        return out

    def _files(self) -> list[pb.LogFile]:
        files = []
        for path in self._own_logs():
            files.append(pb.LogFile(name=os.path.basename(path), size=_size(path)))
        for pid, out, err in self._nm.logs.worker_files():
            files.append(pb.LogFile(name=os.path.basename(out), size=_size(out), pid=pid))
            files.append(pb.LogFile(name=os.path.basename(err), size=_size(err), pid=pid,
                                    is_err=True))
        return files

    def ListLogs(self, request: pb.Empty, context: Any) -> pb.LogFileList:
        return pb.LogFileList(files=self._files(), node_id=self._nm.node_id)

    def _path(self, request: pb.LogRequest) -> str | None:
        if request.pid:
            for pid, out, err in self._nm.logs.worker_files():
                if pid == request.pid:
                    return err if request.is_err else out
            return None
        known = {f.name for f in self._files()}
        if request.name in known:
            return os.path.join(self.log_dir, request.name)
        # A submitted job's output (job_supervisor.py writes it on this node).
        from .job_state import is_job_log
        if is_job_log(request.name) and os.path.exists(os.path.join(self.log_dir, request.name)):
            return os.path.join(self.log_dir, request.name)
        return None

    def GetLog(self, request: pb.LogRequest, context: Any) -> Iterator[pb.LogChunk]:
        path = self._path(request)
        if path is None:
            what = f"worker pid {request.pid}" if request.pid else repr(request.name)
            yield pb.LogChunk(error=f"node {self._nm.node_id[:12]} has no log file for "
                                    f"{what}: list them with `ember logs --node-id ...`")
            return
        try:
            f = open(path, "rb")
        except OSError as e:
            yield pb.LogChunk(error=f"cannot read {os.path.basename(path)}: {e}")
            return
        with f:
            if request.tail > 0:
                data = tail_bytes(f, request.tail)
                if data:
                    yield pb.LogChunk(data=data)
                f.seek(0, os.SEEK_END)
            elif request.offset > 0:
                f.seek(request.offset)
            while True:
                data = f.read(CHUNK_BYTES)
                if data:
                    yield pb.LogChunk(data=data)
                    continue
                if not request.follow or not context.is_active() \
                        or self._nm._stopping.is_set():
                    return
                time.sleep(FOLLOW_POLL_SECONDS)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def tail_bytes(f: Any, lines: int, block: int = 64 << 10) -> bytes:
    """The last ``lines`` lines of the open binary file ``f`` (read from the end).

    >>> import io
    >>> tail_bytes(io.BytesIO(b"a\\nb\\nc\\n"), 2)
    b'b\\nc\\n'
    """
    f.seek(0, os.SEEK_END)
    end = f.tell()
    data = b""
    pos = end
    while pos > 0 and data.count(b"\n") <= lines:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    kept = data.split(b"\n")
    trailing = kept[-1] == b""
    if trailing:
        kept = kept[:-1]
    kept = kept[-lines:]
    return b"\n".join(kept) + (b"\n" if trailing and kept else b"")


def strip_markers(text: str) -> str:
    """A worker log without the task-name marker lines the executor writes.

    >>> strip_markers(":task_name:f\\nhello\\n")
    'hello\\n'
    """
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith(TASK_NAME_MARKER))


def task_lines(text: str, task_name: str, task_id: str = "") -> str:
    """The lines a worker printed while running one task: those after its marker
    and before the next one. Markers carry the task id (``:task_name:f
    :task_id:<hex>``); without ``task_id``, or in a log whose markers lack ids
    (actor calls off the main thread write none), every task named ``task_name``.
    A task that printed nothing has no marker (task_marks.py): no lines.

    >>> log = ":task_name:f :task_id:01\\nin 1\\n:task_name:f :task_id:02\\nin 2\\n"
    >>> task_lines(log, "f", "02"), task_lines(log, "f"), task_lines(log, "f", "03")
    ('in 2\\n', 'in 1\\nin 2\\n', '')
    """
    with_ids = task_id and TASK_ID_SEPARATOR in text
    out = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith(TASK_NAME_MARKER):
            name, _, marked_id = line[len(TASK_NAME_MARKER):].rstrip("\n").partition(
                TASK_ID_SEPARATOR)
            inside = marked_id == task_id if with_ids else name == task_name
            continue
        if inside:
            out.append(line)
    return "".join(out)

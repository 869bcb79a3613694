"""Launching a head's control-service supervisor before its arguments are known.

``ember.init()`` with no address spends ~30 ms importing and making the session
directory before it knows the arguments of the cluster's processes, and the
supervisor then spends longer than that starting an interpreter and importing
gRPC, on the way to the first result. So the driver launches the supervisor
first thing (``python -m ember._private.gcs_supervisor --args-fd N``), with the
pipes it will need already passed to it, and ``node._spawn`` sends it its
arguments once it knows them. The supervisor imports gRPC meanwhile, then reads
them (gcs_supervisor.py). Standard library only, so launching costs the driver
no import of its own.

``EMBER_PRELAUNCH=0`` turns this off: the supervisor is then launched with its
arguments, as for ``ember start`` and ``Cluster``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ENV = "EMBER_PRELAUNCH"


def enabled() -> bool:
    """Whether ``ember.init()`` launches its supervisor early (``EMBER_PRELAUNCH``, default on)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class Prelaunched:
    """A supervisor waiting for its arguments, and the pipes passed to it.

    >>> early = Prelaunched.start(children=1)                    # doctest: +SKIP
    >>> parent_r, parent_w = early.take_parent()                 # doctest: +SKIP
    >>> sup_ready = early.take_ready_pipe()                      # doctest: +SKIP
    >>> early.send(["--host", ...], log_path, {"TOKEN": ...})    # doctest: +SKIP
    """

    def __init__(self, proc: subprocess.Popen, args_w: int, parent: tuple[int, int],
                 ready: list[tuple[int, int]]) -> None:
        self.proc = proc
        self._args_w = args_w
        self._parent: tuple[int, int] | None = parent
        self._ready = ready
        self.sent = False

    @classmethod
    def start(cls, children: int = 1) -> Prelaunched:
        """Launch it with a watchdog pipe and ready pipes for itself and ``children``
        processes it will fork; returns at once."""
        fds: list[int] = []
        try:
            parent_r, parent_w = os.pipe()
            fds += [parent_r, parent_w]
            ready = []
            for _ in range(1 + children):
                pipe = os.pipe()
                fds += pipe
                ready.append(pipe)
            args_r, args_w = os.pipe()
            fds += [args_r, args_w]
            # stderr stays the driver's until the arguments name its log: an import
            # failing before then is seen, not lost.
            proc = subprocess.Popen(
                [sys.executable, "-m", "ember._private.gcs_supervisor", "--args-fd",
                 str(args_r)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                pass_fds=(args_r, parent_r, *(w for _, w in ready)), start_new_session=True)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        os.close(args_r)
        return cls(proc, args_w, (parent_r, parent_w), ready)

    def take_parent(self) -> tuple[int, int]:
        """The watchdog pipe (read end passed to it); the caller closes both ends."""
        assert self._parent is not None
        parent, self._parent = self._parent, None
        return parent

    def take_ready_pipe(self) -> tuple[int, int]:
        """The next ready pipe (its own, then each child's); the caller closes both ends."""
        return self._ready.pop(0)

    def send(self, argv: list[str], log_path: str, env: dict[str, str]) -> None:
        """Its arguments (after ``-m ember._private.gcs_supervisor``), its log file and
        variables to add to its environment (the cluster token)."""
        line = json.dumps({"argv": argv, "log": log_path, "env": env}).encode() + b"\n"
        try:
            os.write(self._args_w, line)     # far below a pipe's buffer: never blocks
        finally:
            os.close(self._args_w)
            self._args_w = -1
            self.sent = True

    def abort(self) -> None:
        """Stop it and close what was not handed over (start-up failed before or
        without ``send``)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        fds = [self._args_w] if self._args_w >= 0 else []
        fds += list(self._parent or ()) + [fd for pipe in self._ready for fd in pipe]
        self._args_w, self._parent, self._ready = -1, None, []
        for fd in fds:
            os.close(fd)


def read_arguments(fd: int) -> dict | None:
    """In the supervisor: what ``send`` wrote (None if the driver went away first)."""
    with os.fdopen(fd, "rb") as f:
        buf = f.readline()
    return json.loads(buf) if buf.endswith(b"\n") else None

"""The process between a job's supervisor and its entrypoint:
``python -m ember._private.job_runner --watch-fd N -- <shell command>``.

The supervisor starts it as the leader of a new process group; it runs the
entrypoint with ``/bin/sh -c`` in that group and exits with the entrypoint's
exit code (128 + N for signal N). It watches a pipe whose write end only the
supervisor holds: when the supervisor goes away, however it died (SIGKILL
included, e.g. its node stopping), the pipe reads EOF and the runner ends the
whole group (SIGTERM, then SIGKILL after a grace period), so no entrypoint
outlives its job. It imports nothing from Ember, so it costs one small
interpreter.

>>> # started by job_supervisor.JobSupervisor.run
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time


def exit_status(returncode: int) -> int:
    """A shell's exit status for a child's ``returncode`` (negative: killed by a signal).

    >>> exit_status(0), exit_status(3), exit_status(-15)
    (0, 3, 143)
    """
    return 128 - returncode if returncode < 0 else returncode


def _end_group(grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(0, sig)
        except ProcessLookupError:
            return
        time.sleep(wait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run a job's entrypoint")
    parser.add_argument("--watch-fd", type=int, default=-1)
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no entrypoint command given")
    # A stop is a SIGTERM to the whole group: the entrypoint gets it too, and this
    # process waits for it to exit (so its exit code is reported) instead of dying.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["/bin/sh", "-c", " ".join(command)], stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))

    if args.watch_fd >= 0:
        def watch() -> None:
            while True:
                try:
                    if not os.read(args.watch_fd, 4096):
                        break
                except InterruptedError:
                    continue
                except OSError:
                    break
            print("ember job runner: the job supervisor is gone; stopping the entrypoint",
                  file=sys.stderr, flush=True)
            _end_group(args.grace)

        threading.Thread(target=watch, name="ember-job-watch", daemon=True).start()
    return exit_status(child.wait())


if __name__ == "__main__":
    sys.exit(main())

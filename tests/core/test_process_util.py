"""process_util.py: the SIGTERM handler of the control service and node manager."""
from __future__ import annotations

import subprocess
import sys

_HOLDS_THE_LOCK = r"""
import os, signal, threading
from ember._private import process_util
stop = threading.Event()
process_util.install_term_handler(stop.set)
# As when the main thread wakes from stop.wait(): it holds the Event's lock, and
# the handler runs on that same thread.
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10000):
        pass
    print("handler returned", flush=True)
print("stopped" if stop.wait(10) else "not stopped", flush=True)
"""


def _stdout_of(code: str, timeout: float = 30) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout).stdout


def test_sigterm_while_the_main_thread_holds_the_stop_events_lock():
    # Calling stop.set() inside the handler deadlocked here, forever (a control
    # service outlived its cluster that way).
    try:
        out = _stdout_of(_HOLDS_THE_LOCK, timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("the SIGTERM handler deadlocked on the stop event's lock") from None
    assert out.split() == ["handler", "returned", "stopped"]


def test_sigint_is_ignored():
    code = ("import os, signal, time\n"
            "from ember._private import process_util\n"
            "process_util.install_term_handler(lambda: None)\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(0.1)\n"
            "print('alive')\n")
    assert _stdout_of(code).strip() == "alive"


def test_sigint_too_when_asked():
    # `ember start --block`: Ctrl-C stops the node like SIGTERM does.
    code = ("import os, signal, threading\n"
            "from ember._private import process_util\n"
            "stop = threading.Event()\n"
            "process_util.install_term_handler(stop.set, sigint=True)\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "print('stopped' if stop.wait(10) else 'not stopped')\n")
    assert _stdout_of(code).strip() == "stopped"

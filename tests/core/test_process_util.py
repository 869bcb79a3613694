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


# ---------------------------------------------------------------- forked children
_FORKED = r"""
import os, signal, sys, time
from ember._private import process_util
keep_r, keep_w = os.pipe()
drop_r, drop_w = os.pipe()
log = sys.argv[1]

def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False

def run():
    print("open", [is_open(fd) for fd in (keep_r, keep_w, drop_r, drop_w)])
    print("name", process_util.process_name(os.getpid()), "sid", os.getsid(0) == os.getpid())
    print("stdin", sys.stdin.read() == "")
    return 7

def prepare():
    process_util.redirect_stdio(log)
    process_util.set_process_name("ember-test")

signal.signal(signal.SIGTERM, signal.SIG_IGN)   # the child gets the default back
child = process_util.fork_child(run, (keep_w,), ["probe"], new_session=True, prepare=prepare)
print("code", child.wait(30), child.poll(), child.returncode)

sleeper = process_util.fork_child(lambda: time.sleep(60))
try:
    sleeper.wait(0.05)
except Exception as e:
    print("timeout", type(e).__name__)
sleeper.terminate()
print("terminated", sleeper.wait(30))
sleeper.kill()    # already reaped: a no-op, as for Popen

failing = process_util.fork_child(lambda: 1 / 0, prepare=lambda: process_util.redirect_stdio(log))
print("raised", failing.wait(30))
"""


def test_fork_child_closes_descriptors_redirects_and_reports_exit_codes(tmp_path):
    log = tmp_path / "child.log"
    out = subprocess.run([sys.executable, "-c", _FORKED, str(log)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["code"] == "7 7 7"
    assert lines["timeout"] == "TimeoutExpired"
    assert lines["terminated"] == "-15"
    assert lines["raised"] == "1"
    child = dict(line.split(" ", 1) for line in log.read_text().splitlines()
                 if line.split(" ", 1)[0] in ("open", "name", "stdin"))
    assert child["open"] == "[False, True, False, False]", child     # only the kept one
    assert child["name"] == "ember-test sid True"
    assert child["stdin"] == "True"
    assert "ZeroDivisionError" in log.read_text()


def test_a_forked_childs_prints_reach_its_log_at_once(tmp_path):
    # Its parent's stdout is a pipe (block-buffered); the child's must not be.
    log = tmp_path / "child.log"
    code = ("import os, sys, time\n"
            "from ember._private import process_util\n"
            "child = process_util.fork_child(\n"
            "    lambda: (print('hello'), time.sleep(30)),\n"
            "    prepare=lambda: process_util.redirect_stdio(sys.argv[1]))\n"
            "deadline = time.monotonic() + 20\n"
            "while time.monotonic() < deadline and 'hello' not in open(sys.argv[1]).read():\n"
            "    time.sleep(0.01)\n"
            "print('seen' if 'hello' in open(sys.argv[1]).read() else 'buffered')\n"
            "child.kill(); child.wait()\n")
    log.write_text("")
    out = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "seen", out.stdout + out.stderr


def test_process_handle_follows_a_process_it_did_not_start():
    import signal as sig

    import pytest
    from ember._private.process_util import ProcessHandle
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        handle = ProcessHandle(proc.pid, ["sleeper"])
        assert handle.poll() is None and handle.args == ["sleeper"]
        with pytest.raises(subprocess.TimeoutExpired):
            handle.wait(0.05)
        handle.send_signal(sig.SIGTERM)
        # Gone as soon as it is a zombie (its parent, here, has not reaped it yet):
        # the exit status is its parent's to know.
        assert handle.wait(10) == ProcessHandle.EXITED
        handle.kill()       # gone: a no-op, as for Popen
    finally:
        proc.kill()
        proc.wait()
    # A pid that is gone (or reused: another start time) is never taken for it.
    assert ProcessHandle(proc.pid).poll() == ProcessHandle.EXITED

"""prelaunch.py: ember.init() launches its supervisor before it knows its arguments."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from ember._private import prelaunch
from ember._private.local_sessions import pid_alive


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_a_supervisor_whose_driver_never_sends_arguments_exits():
    early = prelaunch.Prelaunched.start(children=1)
    pid = early.proc.pid
    assert "--args-fd" in early.proc.args and pid_alive(pid)
    held = [*early._parent, *(fd for pipe in early._ready for fd in pipe), early._args_w]
    # The driver gives up (its start-up failed): the supervisor is stopped and
    # every descriptor made for it is closed.
    early.abort()
    assert not pid_alive(pid) and early.proc.returncode is not None
    assert not any(_is_open(fd) for fd in held)
    early.abort()           # twice is harmless


def test_eof_before_the_arguments_ends_the_supervisor_with_code_1():
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "ember._private.gcs_supervisor",
                             "--args-fd", str(r)], pass_fds=(r,))
    os.close(r)
    os.close(w)             # the driver went away before sending them
    assert proc.wait(60) == 1


def test_read_arguments_reads_one_line():
    r, w = os.pipe()
    os.write(w, b'{"argv": ["--host", "127.0.0.1"], "log": "/x", "env": {}}\n')
    os.close(w)
    assert prelaunch.read_arguments(r) == {"argv": ["--host", "127.0.0.1"], "log": "/x",
                                          "env": {}}
    r, w = os.pipe()
    os.write(w, b'{"argv": [')      # cut short: nothing usable
    os.close(w)
    assert prelaunch.read_arguments(r) is None


def test_enabled_follows_the_variable(monkeypatch):
    monkeypatch.delenv(prelaunch.ENV, raising=False)
    assert prelaunch.enabled()
    monkeypatch.setenv(prelaunch.ENV, "0")
    assert not prelaunch.enabled()


_INIT = r"""
import os, sys, ember
from ember._private.local_sessions import descendants
try:
    ember.init(num_cpus=-1, include_dashboard=False)
except ValueError as e:
    print("refused:", e)
print("left:", [p for p in descendants(os.getpid())])
ember.init(num_cpus=1, include_dashboard=False)
@ember.remote
def f():
    return 7
print("result:", ember.get(f.remote(), timeout=60))
from ember._private import api
print("supervisor:", " ".join(api._cluster.procs[0].args))
ember.shutdown()
"""


@pytest.mark.parametrize("flag", ["1", "0"])
def test_init_with_and_without_it(flag):
    env = dict(os.environ, EMBER_PRELAUNCH=flag)
    out = subprocess.run([sys.executable, "-c", _INIT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    # Bad input after the early launch: a clear error, and no process left behind.
    assert "num_cpus" in lines["refused"]
    assert lines["left"] == "[]"
    assert lines["result"] == "7"
    args = "--args-fd" if flag == "1" else "--host"
    assert args in lines["supervisor"], lines["supervisor"]

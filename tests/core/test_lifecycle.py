"""Start-up and clean exit: no orphan processes, no leftover shared memory (issue #2 s.2)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import ember
from ember.testing import cluster_processes, pid_alive, shm_files, wait_for_condition


def test_shutdown_leaves_nothing(fresh):
    ember.init(num_cpus=2)

    @ember.remote
    def f(x):
        return x

    import numpy as np
    ref = ember.put(np.ones(1 << 20))
    assert ember.get(f.remote(1)) == 1
    pids = cluster_processes()
    prefix = ember._private.api._cluster.shm_prefix
    assert len(pids) >= 3 and shm_files(prefix)
    del ref
    ember.shutdown()
    assert not ember.is_initialized()
    wait_for_condition(lambda: not any(pid_alive(p) for p in pids), timeout=10)
    assert shm_files(prefix) == []


def test_use_before_init(fresh):
    @ember.remote
    def f(x):
        return x

    with pytest.raises(RuntimeError, match="ember.init"):
        f.remote(1)
    with pytest.raises(RuntimeError, match="ember.init"):
        ember.put(1)


def test_init_twice(fresh):
    ember.init(num_cpus=1)
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        ember.init(num_cpus=1)
    ember.init(ignore_reinit_error=True)
    assert ember.is_initialized()


def test_init_address_with_nothing_listening_fails_fast(fresh):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="could not reach"):
        ember.init(address=f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10


def test_second_driver_connects_by_address(fresh):
    info = ember.init(num_cpus=1)
    script = textwrap.dedent(f"""
        import ember
        ember.init(address={info['address']!r})
        @ember.remote
        def f(): return 7
        print("RESULT", ember.get(f.remote()))
        ember.shutdown()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert "RESULT 7" in out.stdout, out.stderr


_DRIVER = textwrap.dedent("""
    import os, sys, time, numpy as np, ember
    from ember.testing import cluster_processes
    ember.init(num_cpus=2)
    @ember.remote
    def f(x): return x
    keep = ember.put(np.ones(1 << 20))
    ember.get(f.remote(keep))
    print("PIDS", *cluster_processes(), flush=True)
    print("PREFIX", ember._private.api._cluster.shm_prefix, flush=True)
    if sys.argv[1] == "hang":
        time.sleep(600)
""")


def _run_driver(mode: str):
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, mode], stdout=subprocess.PIPE,
                            text=True)
    pids, prefix = [], None
    for line in proc.stdout:
        if line.startswith("PIDS"):
            pids = [int(p) for p in line.split()[1:]]
        if line.startswith("PREFIX"):
            prefix = line.split()[1]
            break
    return proc, pids, prefix


@pytest.mark.parametrize("mode", ["exit", "sigkill"])
def test_driver_exit_or_sigkill_leaves_no_orphans(mode):
    proc, pids, prefix = _run_driver("exit" if mode == "exit" else "hang")
    assert len(pids) >= 3 and prefix
    if mode == "sigkill":
        assert shm_files(prefix)
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    wait_for_condition(lambda: not any(pid_alive(p) for p in pids), timeout=15,
                       message="cluster processes outlived the driver")
    wait_for_condition(lambda: shm_files(prefix) == [], timeout=10)

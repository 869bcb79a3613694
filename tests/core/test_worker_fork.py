"""worker_fork.py: workers forked from a warm template process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ember._private import worker_fork
from ember.testing import run_driver, wait_for_condition

# A fork server whose children run this instead of a worker.
_SERVER = r"""
import os, random, sys, time
from ember._private import worker_fork

def entry():
    mode = os.environ.get("MODE", "")
    print("out", os.environ.get("GREETING"), os.getsid(0) == os.getpid(),
          sys.stdin.read() == "", random.random(), sys.argv[1:], flush=True)
    print("err", file=sys.stderr, flush=True)
    if mode == "sleep":
        time.sleep(60)
    if mode == "raise":
        raise RuntimeError("boom")
    os._exit(int(os.environ.get("CODE", "0")))

worker_fork.serve(entry)
"""


@pytest.fixture
def server(tmp_path):
    srv = worker_fork.ForkServer.start(dict(os.environ), str(tmp_path / "server.log"),
                                       argv=[sys.executable, "-c", _SERVER, "extra-arg"])
    assert srv.wait_ready(30), (tmp_path / "server.log").read_text()
    yield srv
    srv.close()


def _spawn(server, tmp_path, name, **env):
    out, err = str(tmp_path / f"{name}.out"), str(tmp_path / f"{name}.err")
    proc = server.spawn(dict(os.environ, **env), out, err)
    assert proc is not None
    return proc, out, err


def _read(path):
    with open(path) as f:
        return f.read()


def test_child_gets_its_environment_logs_session_and_exit_code(server, tmp_path):
    proc, out, err = _spawn(server, tmp_path, "a", GREETING="hi", CODE="3")
    assert proc.wait(10) == 3
    assert proc.poll() == 3
    words = _read(out).split()
    # Its own session and /dev/null for stdin, as Popen(start_new_session=True,
    # stdin=DEVNULL) gave; the server's own arguments are not the worker's.
    assert words[:4] == ["out", "hi", "True", "True"], words
    assert words[5:] == ["[]"], words
    assert _read(err) == "err\n"


def test_a_killed_child_reports_the_signal_as_popen_does(server, tmp_path):
    proc, _, _ = _spawn(server, tmp_path, "b", MODE="sleep")
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.2)
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def test_an_exception_in_the_child_exits_1_with_its_traceback(server, tmp_path):
    proc, _, err = _spawn(server, tmp_path, "c", MODE="raise")
    assert proc.wait(10) == 1
    assert "RuntimeError: boom" in _read(err)


def test_children_draw_different_random_numbers(server, tmp_path):
    outs = []
    for i in range(3):
        proc, out, _ = _spawn(server, tmp_path, f"r{i}")
        assert proc.wait(10) == 0
        outs.append(_read(out).split()[4])
    assert len(set(outs)) == 3, outs


def test_when_the_server_dies_spawn_declines_and_orphans_are_still_seen_to_end(
        server, tmp_path):
    proc, _, _ = _spawn(server, tmp_path, "d", MODE="sleep")
    server.proc.kill()
    server.proc.wait()
    wait_for_condition(lambda: not server.alive, timeout=10)
    assert server.spawn(dict(os.environ), str(tmp_path / "e.out"), str(tmp_path / "e.err")) \
        is None
    assert proc.poll() is None          # still running, now an orphan
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == 1
    assert proc.status_lost


def test_close_stops_the_server(tmp_path):
    srv = worker_fork.ForkServer.start(dict(os.environ), str(tmp_path / "s.log"),
                                       argv=[sys.executable, "-c", _SERVER])
    assert srv.wait_ready(30)
    srv.close()
    assert srv.proc.returncode == 0
    wait_for_condition(lambda: not srv.alive, timeout=10)


# ---------------------------------------------------------------- in a cluster
def test_cluster_workers_are_forked_independent_and_numpy_free(cluster):
    @cluster.remote
    def probe(wait):
        import random
        numpy_loaded = "numpy" in sys.modules   # before anything the task imports
        time.sleep(wait)
        with open(f"/proc/{os.getppid()}/comm") as f:
            parent = f.read().strip()
        with open("/proc/self/comm") as f:
            parent += "/" + f.read().strip()
        return os.getpid(), parent, numpy_loaded, random.random()

    # Both run at once: two workers of the two CPUs.
    results = cluster.get([probe.remote(1.0), probe.remote(1.0)], timeout=60)
    assert len({pid for pid, *_ in results}) == 2, results
    for _, parent, numpy_loaded, _ in results:
        assert parent == "ember-forksrv/ember-worker", parent
        # numpy's global random state would be the same in every fork.
        assert not numpy_loaded
    assert results[0][3] != results[1][3]


def test_a_runtime_env_worker_is_started_with_exec(cluster, tmp_path):
    # A working_dir needs its own worker (its cwd and sys.path are set at start).
    (tmp_path / "marker.txt").write_text("here")

    @cluster.remote(runtime_env={"working_dir": str(tmp_path)})
    def probe():
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read().decode()
        with open(f"/proc/{os.getppid()}/comm") as f:
            return parent, f.read().strip(), open("marker.txt").read()

    parent, name, marker = cluster.get(probe.remote(), timeout=60)
    assert marker == "here"
    # The node manager itself: an embedded cluster's is forked by the control
    # service's supervisor, and named (node.start_head).
    assert name == "ember-nm" and "gcs_supervisor" in parent, (parent, name)


_FORK_OFF = r"""
import os, ember
ember.init(num_cpus=1, include_dashboard=False)
@ember.remote
def parent():
    with open(f"/proc/{os.getppid()}/comm") as f:
        return f.read().strip()
print("PARENT", ember.get(parent.remote(), timeout=60) == "ember-forksrv", flush=True)
ember.shutdown()
"""


def test_ember_worker_fork_0_starts_every_worker_with_exec():
    env = dict(os.environ, EMBER_WORKER_FORK="0")
    assert run_driver(_FORK_OFF, "PARENT", env) == "False"


_LATE_IMPORTS = r"""
import os, ember
ember.init(num_cpus=2, include_dashboard=False)

def imported_after_fork():
    # PYTHONPROFILEIMPORTTIME makes every import write a line to stderr: this
    # worker's log file. What it lists, the worker imported after it was forked.
    with open(os.readlink("/proc/self/fd/2")) as f:
        lines = [l for l in f if l.startswith("import time:")]
    return sorted({l.rsplit("|", 1)[1].strip() for l in lines})

@ember.remote
def task():
    return imported_after_fork()

@ember.remote
class Actor:
    def late(self):
        return imported_after_fork()

print("LATE", sorted(set(ember.get(task.remote(), timeout=60))
                     | set(ember.get(Actor.remote().late.remote(), timeout=60))), flush=True)
ember.shutdown()
"""


def test_forked_workers_import_nothing_of_gRPC_or_ember_themselves():
    # Each such import would cost every new worker CPU while a cluster starts:
    # the fork server imports them once (worker_main.preload).
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    late = eval(run_driver(_LATE_IMPORTS, "LATE", env))  # noqa: S307 - our probe's list
    ours = [m for m in late if m.startswith(("grpc", "ember", "google.protobuf"))]
    assert ours == [], late

"""runtime_env on a real two-node ``Cluster`` (issue #8): working_dir and py_modules
shipped to both nodes, pip installed into a cached venv from a wheel built here
(no network), setup failures and timeouts raised as RuntimeEnvSetupError at get."""
from __future__ import annotations

import os
import socket
import sys

import pytest

import ember
from ember._private.protos import ember_pb2 as pb
from ember._private.runtime_env import packaging
from ember.testing import connected_cluster
from ember.exceptions import RuntimeEnvSetupError
from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

sys.path.insert(0, os.path.dirname(__file__))
from runtime_env_helpers import build_wheel  # noqa: E402



@pytest.fixture(scope="module")
def two_nodes():
    with connected_cluster({"num_cpus": 1}, [{"num_cpus": 1}]) as (cluster, [other]):
        yield cluster, [cluster.head_node.node_id, other.node_id]


@pytest.fixture(scope="module")
def code(tmp_path_factory):
    """A working_dir with a local module and a data file, and a py_modules package."""
    root = tmp_path_factory.mktemp("renv")
    wd = root / "project"
    wd.mkdir()
    (wd / "renv_local_mod.py").write_text("VALUE = 'from working_dir'\n")
    (wd / "data.txt").write_text("payload\n")
    (wd / "big.csv").write_text("x" * 1000)
    pkg = root / "renv_pkg_mod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("NAME = 'renv_pkg_mod'\n")
    wheels = root / "wheels"
    wheels.mkdir()
    return {"wd": str(wd), "pkg": str(pkg), "wheels": str(wheels), "root": str(root)}


def _package_keys() -> list[bytes]:
    from ember._private import worker_state
    core = worker_state.require_core()
    reply = core.gcs.KVKeys(pb.KVRequest(ns=packaging.PACKAGE_KV_NS, key=b""), timeout=10)
    return list(reply.keys)


def _on(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


@ember.remote
def probe() -> dict:
    return {"node": ember.get_runtime_context().get_node_id(), "cwd": os.getcwd(),
            "python": sys.executable}


def test_working_dir_is_cwd_and_importable_on_both_nodes(two_nodes, code) -> None:
    cluster, node_ids = two_nodes
    before = set(_package_keys())

    @ember.remote(runtime_env={"working_dir": code["wd"], "excludes": ["*.csv"]})
    def run() -> tuple:
        import renv_local_mod
        return (ember.get_runtime_context().get_node_id(), os.getcwd(),
                renv_local_mod.VALUE, open("data.txt").read(), os.path.exists("big.csv"))

    results = ember.get([run.options(scheduling_strategy=_on(n)).remote() for n in node_ids])
    assert sorted(r[0] for r in results) == sorted(node_ids)
    for node, cwd, value, data, has_csv in results:
        assert value == "from working_dir" and data == "payload\n" and not has_csv
        assert cwd.startswith(os.path.join(cluster.session_dir, "runtime_resources"))
        assert f"node_{node[:12]}" in cwd and "working_dir_files" in cwd
    # One package, uploaded once: the same env again adds nothing.
    ember.get(run.remote())
    new = set(_package_keys()) - before
    assert len(new) == 1 and next(iter(new)).startswith(b"gcs://_ember_pkg_")
    # Tasks without a runtime_env still run in the node's default cwd.
    assert "runtime_resources" not in ember.get(probe.remote())["cwd"]


def test_actor_runs_in_working_dir(two_nodes, code) -> None:
    _, node_ids = two_nodes

    @ember.remote(runtime_env={"working_dir": code["wd"]})
    class Reader:
        def __init__(self) -> None:
            import renv_local_mod
            self.value = renv_local_mod.VALUE

        def read(self) -> tuple:
            return self.value, open("data.txt").read(), os.getcwd()

    actor = Reader.options(scheduling_strategy=_on(node_ids[1])).remote()
    value, data, cwd = ember.get(actor.read.remote())
    assert value == "from working_dir" and data == "payload\n" and "working_dir_files" in cwd
    ember.kill(actor)


def test_py_modules_package_and_wheel_importable(two_nodes, code) -> None:
    _, node_ids = two_nodes
    wheel = build_wheel(code["wheels"], "renv_wheel_mod", value="from a py_modules wheel")

    @ember.remote(runtime_env={"py_modules": [code["pkg"], wheel]})
    def use() -> tuple:
        import renv_pkg_mod
        import renv_wheel_mod
        return renv_pkg_mod.NAME, renv_wheel_mod.VALUE

    for node in node_ids:
        assert ember.get(use.options(scheduling_strategy=_on(node)).remote()) == (
            "renv_pkg_mod", "from a py_modules wheel")


def test_pip_installs_local_wheel_once_and_reuses_the_venv(two_nodes, code) -> None:
    cluster, node_ids = two_nodes
    wheel = build_wheel(code["wheels"], "renv_pip_mod", value="installed by pip")
    env = {"pip": {"packages": [wheel], "pip_install_options": ["--no-index"]}}

    @ember.remote(runtime_env=env, scheduling_strategy=_on(node_ids[0]))
    def first() -> tuple:
        import renv_pip_mod
        return renv_pip_mod.VALUE, sys.executable

    @ember.remote(runtime_env=env, scheduling_strategy=_on(node_ids[0]))
    def second() -> tuple:
        import renv_pip_mod
        return renv_pip_mod.VALUE, sys.executable

    value, python = ember.get(first.remote())
    assert value == "installed by pip"
    venv = os.path.dirname(os.path.dirname(python))
    assert venv.startswith(os.path.join(cluster.session_dir, "runtime_resources"))
    marker = os.stat(os.path.join(venv, ".ember_ready"))
    assert ember.get(second.remote()) == ("installed by pip", python)
    # Same venv, not rebuilt (a reinstall would replace the marker file).
    assert os.stat(os.path.join(venv, ".ember_ready")).st_ino == marker.st_ino
    assert os.listdir(os.path.dirname(venv)).count(os.path.basename(venv)) == 1


def test_failed_pip_raises_setup_error_with_installer_text(two_nodes, code) -> None:
    env = {"pip": {"packages": ["ember-renv-no-such-package"],
                   "pip_install_options": ["--no-index"]}}

    @ember.remote(runtime_env=env)
    def never() -> int:
        return 1

    with pytest.raises(RuntimeEnvSetupError) as info:
        ember.get(never.remote(), timeout=120)
    message = str(info.value)
    assert "ember-renv-no-such-package" in message
    # The installer's own words (uv's or pip's), not just ours.
    assert ("No solution found" in message or "No matching distribution" in message
            or "Could not find a version" in message), message
    # Nothing else is poisoned: plain tasks and another env still run.
    assert ember.get(probe.remote())["python"] == sys.executable

    @ember.remote(runtime_env={"working_dir": code["wd"]})
    def other() -> str:
        import renv_local_mod
        return renv_local_mod.VALUE

    assert ember.get(other.remote()) == "from working_dir"


def test_failed_env_fails_actor_calls_with_setup_error(two_nodes) -> None:
    @ember.remote(runtime_env={"pip": {"packages": ["ember-renv-no-such-actor-dep"],
                                       "pip_install_options": ["--no-index"]}})
    class Broken:
        def ping(self) -> int:
            return 1

    actor = Broken.remote()
    with pytest.raises(RuntimeEnvSetupError, match="ember-renv-no-such-actor-dep"):
        ember.get(actor.ping.remote(), timeout=120)


def test_setup_timeout_seconds_is_honoured_and_other_work_flows(two_nodes, code) -> None:
    # An index that accepts connections and never answers: the install hangs
    # until the setup timeout kills it.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    try:
        port = hang.getsockname()[1]
        env = {"pip": {"packages": ["ember-renv-hangs"],
                       "pip_install_options": ["--index-url", f"http://127.0.0.1:{port}/simple"]},
               "config": {"setup_timeout_seconds": 8}}

        @ember.remote(runtime_env=env)
        def slow() -> int:
            return 1

        @ember.remote(runtime_env={"working_dir": code["wd"]})
        def other() -> str:
            import renv_local_mod
            return renv_local_mod.VALUE

        stuck = slow.remote()
        # Setup runs off the lease path: plain tasks and another env are served meanwhile.
        assert ember.get(probe.remote(), timeout=30)["python"] == sys.executable
        assert ember.get(other.remote(), timeout=30) == "from working_dir"
        assert ember.wait([stuck], timeout=0)[0] == []
        with pytest.raises(RuntimeEnvSetupError, match="setup timeout"):
            ember.get(stuck, timeout=60)
    finally:
        hang.close()


def test_pip_without_uv_uses_pip(two_nodes, code) -> None:
    # installer='pip' skips uv even where it is installed: this interpreter's
    # pip installs into the venv (pip --python).
    wheel = build_wheel(code["wheels"], "renv_pip_only_mod", value="installed by plain pip")

    @ember.remote(runtime_env={"pip": {"packages": [wheel], "installer": "pip",
                                       "pip_install_options": ["--no-index"]}})
    def use() -> str:
        import renv_pip_only_mod
        return renv_pip_only_mod.VALUE

    assert ember.get(use.remote(), timeout=120) == "installed by plain pip"


def test_job_runtime_env_from_environment_merges_under_init(fresh, code, monkeypatch) -> None:
    # Last in this module: `fresh` disconnects the driver from the two-node cluster.
    monkeypatch.setenv("EMBER_JOB_RUNTIME_ENV", '{"env_vars": {"RENV_JOB": "job"}}')
    for key in ("EMBER_ADDRESS",):
        monkeypatch.delenv(key, raising=False)
    fresh.init(num_cpus=1, include_dashboard=False,
               runtime_env={"working_dir": code["wd"], "env_vars": {"RENV_INIT": "init"}})

    @fresh.remote
    def look() -> tuple:
        import renv_local_mod
        return renv_local_mod.VALUE, os.environ.get("RENV_JOB"), os.environ.get("RENV_INIT")

    assert fresh.get(look.remote()) == ("from working_dir", "job", "init")


_DEFAULT_ENV_IMPORTS = r"""
import sys, ember
ember.init(num_cpus=1, include_dashboard=False)
@ember.remote
def f():
    return 1
@ember.remote
class A:
    def g(self):
        return 2
assert ember.get(f.remote()) == 1 and ember.get(A.remote().g.remote()) == 2
print("LOADED", "ember._private.runtime_env.packaging" in sys.modules, flush=True)
ember.shutdown()
"""


def test_work_without_a_runtime_env_loads_no_runtime_env_code():
    # The packaging code (zipfile, hashlib) would cost every driver's first task.
    from ember.testing import run_driver
    assert run_driver(_DEFAULT_ENV_IMPORTS, "LOADED") == "False"

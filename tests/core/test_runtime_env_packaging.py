"""runtime_env pure parts (issue #8): excludes, content hashes, the size limit,
upload-once, validation, merging, LRU eviction decisions and unpacking, all
without starting a cluster."""
from __future__ import annotations

import os
import shutil
import time
import zipfile

import pytest

from ember._private.options import merge_runtime_env, validate_options
from ember._private.runtime_env import cache, packaging, spec
from ember._private.runtime_env.setup import prepare
from ember.exceptions import RuntimeEnvSetupError


def _tree(root, files: dict[str, str]) -> str:
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return str(root)


class _Store(dict):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, key: str, value: bytes) -> None:
        self.puts += 1
        self[key] = value


# ------------------------------------------------------------------ excludes


def test_excludes_follow_gitignore_rules() -> None:
    match = packaging.compile_excludes(["*.log", "data/", "/build", "docs/**/*.png"])
    assert match("a.log") and match("deep/er/a.log")
    assert match("data/") and match("sub/data/")          # unanchored dir pattern
    assert match("build/") and not match("sub/build/")    # anchored to the root
    assert match("docs/x/y.png") and not match("img/y.png")
    assert not match("main.py")
    assert match("pkg/__pycache__/") and match("m.pyc")    # never shipped


def test_collect_files_prunes_excluded_dirs_and_sorts(tmp_path) -> None:
    root = _tree(tmp_path, {"b.py": "b", "a.py": "a", "data/big.bin": "x" * 10,
                            "keep/data.txt": "d", "x.log": "l",
                            "__pycache__/a.cpython-311.pyc": "c"})
    names = [n for n, _, _ in packaging.collect_files(root, ["data/", "*.log"])]
    assert names == ["a.py", "b.py", "keep/data.txt"]
    prefixed = packaging.collect_files(root, ["data/", "*.log", "keep/"], prefix="pkg/")
    assert [n for n, _, _ in prefixed] == ["pkg/a.py", "pkg/b.py"]


# ------------------------------------------------------------------ content hash


def test_same_content_same_uri_and_changed_file_new_uri(tmp_path) -> None:
    one = _tree(tmp_path / "one", {"m.py": "X = 1", "sub/n.py": "Y = 2"})
    two = _tree(tmp_path / "two", {"sub/n.py": "Y = 2", "m.py": "X = 1"})
    os.utime(os.path.join(two, "m.py"), (1, 1))         # mtimes do not matter

    def uri(path: str) -> str:
        return packaging.package_uri(packaging.package_local(path, [], "working_dir", False)[0])

    assert uri(one) == uri(two)
    assert uri(one).startswith("gcs://_ember_pkg_") and uri(one).endswith(".zip")
    assert len(uri(one)) == len("gcs://_ember_pkg_") + 32 + len(".zip")
    with open(os.path.join(two, "m.py"), "w") as f:
        f.write("X = 2")
    assert uri(one) != uri(two)


def test_upload_happens_once_and_uris_pass_through(tmp_path) -> None:
    wd = _tree(tmp_path / "wd", {"m.py": "X = 1"})
    mod = _tree(tmp_path / "mypkg", {"__init__.py": "Z = 3"})
    store = _Store()
    env = {"working_dir": wd, "py_modules": [mod, "gcs://_ember_pkg_already.zip"],
           "excludes": ["*.csv"], "env_vars": {"A": "1"}}
    out = packaging.upload_local_packages(env, put=store.put, exists=store.__contains__)
    assert env["working_dir"] == wd                        # input untouched
    assert "excludes" not in out and out["env_vars"] == {"A": "1"}
    assert out["py_modules"][1] == "gcs://_ember_pkg_already.zip"
    assert store.puts == 2 and set(store) == {out["working_dir"], out["py_modules"][0]}
    again = packaging.upload_local_packages(env, put=store.put, exists=store.__contains__)
    assert again == out and store.puts == 2
    with zipfile.ZipFile(__import__("io").BytesIO(store[out["py_modules"][0]])) as zf:
        assert zf.namelist() == ["mypkg/__init__.py"]       # py_modules keep their name


def test_missing_path_names_the_field(tmp_path) -> None:
    with pytest.raises(ValueError, match="working_dir.*does not exist"):
        packaging.upload_local_packages({"working_dir": str(tmp_path / "nope")},
                                        put=_Store().put, exists=lambda k: False)


# ------------------------------------------------------------------ size limit


def test_size_limit_message_names_largest_files(tmp_path, monkeypatch) -> None:
    wd = _tree(tmp_path / "wd", {"small.py": "x", "data/huge.bin": "h" * 5000,
                                 "big.csv": "b" * 3000})
    monkeypatch.setenv(packaging.MAX_PACKAGE_BYTES_ENV, "4000")
    with pytest.raises(ValueError) as info:
        packaging.upload_local_packages({"working_dir": wd}, put=_Store().put,
                                        exists=lambda k: False)
    message = str(info.value)
    assert "over the" in message and "limit for one package" in message
    assert message.index("data/huge.bin") < message.index("big.csv")
    assert "excludes" in message and packaging.MAX_PACKAGE_BYTES_ENV in message
    # Excluding the big files makes it fit.
    out = packaging.upload_local_packages({"working_dir": wd, "excludes": ["data/", "*.csv"]},
                                          put=_Store().put, exists=lambda k: False)
    assert out["working_dir"].startswith("gcs://")


# ------------------------------------------------------------------ validation and merge


def test_validation_errors_name_field_and_fix(tmp_path) -> None:
    cases = [({"working_dir": 3}, "working_dir"),
             ({"working_dir": str(tmp_path / "missing")}, "no such directory"),
             ({"py_modules": "pkg"}, "must be a list"),
             ({"py_modules": [str(tmp_path / "gone")]}, "does not exist"),
             ({"excludes": "*.log"}, "gitignore"),
             ({"pip": 5}, "list of requirement strings"),
             ({"pip": str(tmp_path / "requirements.txt")}, "no such requirements file"),
             ({"pip": {"packages": ["x"], "bogus": 1}}, "unknown key 'bogus'"),
             ({"config": {"setup_timeout_seconds": 0}}, "positive number"),
             ({"conda": {"dependencies": []}}, "does not support")]
    for env, expected in cases:
        with pytest.raises(ValueError, match=expected):
            validate_options({"runtime_env": env})


def test_pip_forms_normalize_alike(tmp_path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# pinned\nsix==1.16\n\nattrs\n")
    as_file = validate_options({"runtime_env": {"pip": str(req)}})["runtime_env"]["pip"]
    as_list = validate_options({"runtime_env": {"pip": ["six==1.16", "attrs"]}})["runtime_env"]
    assert as_file == as_list["pip"] == {"packages": ["six==1.16", "attrs"],
                                         "pip_install_options": [], "installer": "auto"}
    uv = validate_options({"runtime_env": {"uv": ["six"]}})["runtime_env"]
    assert uv == {"pip": {"packages": ["six"], "pip_install_options": [], "installer": "uv"}}


def test_merge_child_keys_override_and_env_vars_merge() -> None:
    job = {"working_dir": "gcs://_ember_pkg_job.zip", "pip": ["a"], "env_vars": {"A": "1"}}
    task = {"pip": ["b"], "env_vars": {"B": "2"}}
    merged = merge_runtime_env(job, task)
    assert merged == {"working_dir": "gcs://_ember_pkg_job.zip", "pip": ["b"],
                      "env_vars": {"A": "1", "B": "2"}}


def test_env_hash_ignores_env_vars_and_config() -> None:
    base = {"working_dir": "gcs://_ember_pkg_x.zip"}
    assert spec.env_hash({}) == "" and spec.env_hash({"env_vars": {"A": "1"}}) == ""
    assert spec.env_hash(base) == spec.env_hash({**base, "env_vars": {"A": "1"},
                                                 "config": {"setup_timeout_seconds": 5}})
    assert spec.env_hash(base) != spec.env_hash({"working_dir": "gcs://_ember_pkg_y.zip"})
    assert spec.setup_timeout({}) == 600 and spec.setup_timeout(
        {"config": {"setup_timeout_seconds": -1}}) is None


# ------------------------------------------------------------------ LRU


def test_lru_evicts_unused_oldest_first_until_under_limit() -> None:
    entries = [cache.Entry("old", 40, 1.0, False), cache.Entry("live", 50, 0.5, True),
               cache.Entry("mid", 30, 2.0, False), cache.Entry("new", 20, 3.0, False)]
    assert cache.choose_evictions(entries, limit=100) == ["old"]
    assert cache.choose_evictions(entries, limit=90) == ["old", "mid"]
    assert cache.choose_evictions(entries, limit=140) == []
    # In-use entries are never evicted, even when that leaves the cache over its bound.
    assert cache.choose_evictions(entries, limit=0) == ["old", "mid", "new"]


def test_enforce_deletes_least_recently_used_dirs(tmp_path) -> None:
    root = str(tmp_path)
    for i, name in enumerate(("a", "b", "c")):
        d = os.path.join(root, "working_dir_files", name)
        os.makedirs(d)
        with open(os.path.join(d, "f"), "wb") as f:
            f.write(b"x" * 100)
        open(os.path.join(d, ".ember_ready"), "w").close()
        os.utime(os.path.join(d, ".ember_ready"), (time.time() - 100 + i, time.time() - 100 + i))
    removed = cache.enforce(root, in_use=[os.path.join(root, "working_dir_files", "a")],
                            limit=200)
    # a is the oldest but in use; b is the oldest unused; then 200 bytes fit.
    assert removed == [os.path.join(root, "working_dir_files", "b")]
    assert sorted(os.listdir(os.path.join(root, "working_dir_files"))) == ["a", "c"]


# ------------------------------------------------------------------ unpacking


def test_prepare_unpacks_once_and_reports_missing_packages(tmp_path) -> None:
    wd = _tree(tmp_path / "wd", {"m.py": "X = 1", "run.sh": "echo"})
    os.chmod(os.path.join(wd, "run.sh"), 0o755)
    store = _Store()
    env = packaging.upload_local_packages({"working_dir": wd}, put=store.put,
                                          exists=store.__contains__)
    fetches = []

    def kv_get(uri):
        fetches.append(uri)
        return store.get(uri)

    session = str(tmp_path / "session")
    first = prepare(env, session_dir=session, kv_get=kv_get)
    assert first.cwd and os.path.isfile(os.path.join(first.cwd, "m.py"))
    assert os.access(os.path.join(first.cwd, "run.sh"), os.X_OK)
    assert first.cwd in first.pythonpath and first.cwd.startswith(session)
    second = prepare(dict(env), session_dir=session, kv_get=kv_get)
    assert second.cwd == first.cwd and len(fetches) == 1
    with pytest.raises(RuntimeEnvSetupError, match="not in the cluster's package store"):
        prepare({"py_modules": ["gcs://_ember_pkg_missing.zip"]}, session_dir=session,
                kv_get=kv_get)


def _import_in(prepared, module: str) -> str:
    """``module.VALUE`` as a fresh interpreter with ``prepared``'s path sees it."""
    import subprocess
    import sys
    env = prepared.process_env({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return subprocess.run([sys.executable, "-c", f"import {module}; print({module}.VALUE)"],
                          env=env, capture_output=True, text=True, check=True,
                          cwd="/").stdout.strip()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_py_modules_wheel_is_installed_not_unzipped(tmp_path, monkeypatch, installer) -> None:
    from runtime_env_helpers import build_wheel
    if installer == "pip":      # no uv on PATH: pip --target installs it
        monkeypatch.setattr("ember._private.runtime_env.wheels.shutil.which",
                            lambda name: None)
    elif shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    (tmp_path / "w").mkdir()
    wheel = build_wheel(str(tmp_path / "w"), f"renv_whl_{installer}", value=installer,
                        data_module=f"renv_whl_data_{installer}")
    store = _Store()
    env = packaging.upload_local_packages({"py_modules": [wheel]}, put=store.put,
                                          exists=store.__contains__)
    assert env["py_modules"][0].endswith(".whl")
    prepared = prepare(env, session_dir=str(tmp_path / "s"), kv_get=store.get)
    (path,) = prepared.pythonpath
    # .data/purelib is merged beside the package, as pip lays a wheel out; a plain
    # unzip would leave it under renv_whl_*-1.0.data/ where nothing imports it.
    assert os.path.isfile(os.path.join(path, f"renv_whl_data_{installer}.py"))
    assert not any(n.endswith(".data") for n in os.listdir(path))
    assert _import_in(prepared, f"renv_whl_{installer}") == installer
    assert _import_in(prepared, f"renv_whl_data_{installer}") == installer


def test_corrupt_or_uninstallable_wheel_is_a_setup_error(tmp_path) -> None:
    from runtime_env_helpers import build_wheel
    session = str(tmp_path / "s")
    store = {"gcs://_ember_pkg_corrupt.whl": b"PK\x03\x04 truncated"}
    with pytest.raises(RuntimeEnvSetupError, match="corrupt or truncated"):
        prepare({"py_modules": ["gcs://_ember_pkg_corrupt.whl"]}, session_dir=session,
                kv_get=store.get)
    # A zip that looks like a wheel but whose RECORD lies: the installer refuses,
    # and its own words reach the error.
    (tmp_path / "w").mkdir()
    good = build_wheel(str(tmp_path / "w"), "renv_whl_bad")
    with zipfile.ZipFile(good) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["renv_whl_bad-1.0.dist-info/WHEEL"] = b"Wheel-Version: 9.0\nTag: py3-none-any\n"
    bad = str(tmp_path / "bad.whl")
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    with open(bad, "rb") as f:
        store["gcs://_ember_pkg_bad.whl"] = f.read()
    with pytest.raises(RuntimeEnvSetupError, match="failed to install") as info:
        prepare({"py_modules": ["gcs://_ember_pkg_bad.whl"]}, session_dir=session,
                kv_get=store.get)
    assert "renv_whl_bad-1.0-py3-none-any.whl" in str(info.value)
    # Nothing half-installed is left looking ready: the next try installs again.
    assert not os.path.exists(os.path.join(session, "runtime_resources", "py_modules_files",
                                           "_ember_pkg_bad"))


# ------------------------------------------------------------------ node states and venv lock


def test_node_env_failure_is_shared_by_a_burst_then_retried(tmp_path, monkeypatch) -> None:
    from ember._private.runtime_env import node_envs
    calls = []

    def fake_prepare(env, **kwargs):
        calls.append(env)
        if env.get("pip"):
            raise RuntimeEnvSetupError("pip said: no such package")
        return node_envs.PreparedEnv(cwd="/somewhere")

    monkeypatch.setattr(node_envs, "prepare", fake_prepare)
    envs = node_envs.NodeRuntimeEnvs(str(tmp_path), kv_get=lambda uri: None, node_id="n1")
    bad = b'{"pip": {"packages": ["nope"]}}'
    assert envs.ensure("bad", bad, wait=5) == ("failed", "pip said: no such package")
    assert envs.ensure("bad", bad, wait=5) == ("failed", "pip said: no such package")
    assert len(calls) == 1                       # one attempt for the burst
    status, prepared = envs.ensure("good", b'{"working_dir": "gcs://x.zip"}', wait=5)
    assert status == "ready" and prepared.cwd == "/somewhere"   # other envs unaffected
    assert envs.prepared("bad") is None and envs.prepared("good") is prepared
    monkeypatch.setattr(node_envs, "FAILURE_MEMORY_SECONDS", 0.0)
    time.sleep(0.01)
    assert envs.ensure("bad", bad, wait=5)[0] == "failed"
    assert len(calls) == 3                       # a later request tries again


def test_concurrent_venv_requests_install_once(tmp_path, monkeypatch) -> None:
    import threading

    from ember._private.runtime_env import pip_env
    steps = []

    def fake_run(cmd, deadline, step, packages):
        steps.append(step)
        if step == "creating the virtualenv":
            os.makedirs(os.path.join(cmd[-1], "bin"), exist_ok=True)
        time.sleep(0.2)

    monkeypatch.setattr(pip_env, "_run", fake_run)
    pip = {"packages": ["six"], "pip_install_options": [], "installer": "pip"}
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        pip_env.ensure_venv(pip, str(tmp_path), None))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert steps == ["creating the virtualenv", "installing packages"]
    assert len(set(results)) == 1 and results[0].endswith("/bin/python")

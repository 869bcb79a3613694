"""Making a runtime_env real on a node: fetch and unpack packages, build the venv.

``prepare`` is blocking, idempotent and cached (in this process, and on disk
under ``<session_dir>/runtime_resources`` for every process of the node):

- ``working_dir_files/<pkg>/``: a working_dir URI unpacked; the worker's cwd
  and first on its import path;
- ``py_modules_files/<pkg>/``: each py_modules URI unpacked (a .whl is
  installed there with ``pip/uv install --target``, wheels.py); on the import path;
- ``pip/<hash>/``: the venv (pip_env.py); its python runs the worker.

The node manager calls it off the lease path (node_envs.py); the job
supervisor calls it to start an entrypoint in the job's environment.

>>> env = prepare({"working_dir": "gcs://_ember_pkg_ab12.zip"},
...               session_dir="/tmp/ember/session_x", kv_get=kv_get)
>>> env.cwd
'/tmp/ember/session_x/runtime_resources/working_dir_files/_ember_pkg_ab12'
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...exceptions import RuntimeEnvSetupError
from . import pip_env, spec, wheels
from .pip_env import READY

KvGet = Callable[[str], "bytes | None"]


@dataclass
class PreparedEnv:
    """How to start a process in a prepared runtime_env."""
    cwd: str | None = None                 # None: leave the cwd alone
    python: str = sys.executable           # the interpreter to run
    pythonpath: list[str] = field(default_factory=list)   # before PYTHONPATH
    env_vars: dict[str, str] = field(default_factory=dict)
    resource_dirs: list[str] = field(default_factory=list)  # cached dirs it uses (LRU)

    def process_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this env's variables and import path applied."""
        env = dict(base)
        env.update(self.env_vars)
        if self.pythonpath:
            rest = env.get("PYTHONPATH", "")
            env["PYTHONPATH"] = os.pathsep.join(self.pythonpath + ([rest] if rest else []))
        return env


_cache: dict[str, PreparedEnv] = {}
_cache_lock = threading.Lock()


def resources_root(session_dir: str) -> str:
    return os.path.join(session_dir, "runtime_resources")


def prepare(runtime_env: Mapping[str, Any], *, session_dir: str, kv_get: KvGet,
            timeout: float | None = None, resources_dir: str | None = None) -> PreparedEnv:
    """Set up ``runtime_env`` (packages already uploaded as URIs) on this node.

    ``kv_get(uri)`` returns a package's bytes (None when missing). ``timeout``
    defaults to the env's ``config.setup_timeout_seconds`` (600 s).
    ``resources_dir`` overrides ``<session_dir>/runtime_resources`` (each node
    manager keeps its own, so one node's eviction never touches another's).
    Raises RuntimeEnvSetupError with the cause (the installer's output for pip).
    """
    key = json.dumps({"env": spec.env_key(runtime_env),
                      "vars": runtime_env.get("env_vars") or {},
                      "dir": resources_dir or session_dir},
                     sort_keys=True, default=str)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and all(os.path.exists(os.path.join(d, READY))
                                  for d in cached.resource_dirs):
        for d in cached.resource_dirs:
            pip_env.touch(d)
        return cached
    if timeout is None:
        timeout = spec.setup_timeout(runtime_env)
    deadline = None if timeout is None else time.monotonic() + timeout
    root = resources_dir or resources_root(session_dir)
    prepared = PreparedEnv(env_vars=dict(runtime_env.get("env_vars") or {}))
    working_dir = runtime_env.get("working_dir")
    if working_dir:
        path = _unpack(_uri(working_dir, "working_dir"), root, "working_dir_files", kv_get,
                       deadline)
        prepared.resource_dirs.append(path)
        prepared.cwd = _content_root(path, strip_single_dir=True)
        prepared.pythonpath.append(prepared.cwd)
    for uri in runtime_env.get("py_modules") or ():
        path = _unpack(_uri(uri, "py_modules"), root, "py_modules_files", kv_get, deadline)
        prepared.resource_dirs.append(path)
        prepared.pythonpath.append(path)
    pip = runtime_env.get("pip")
    if pip:
        pip = spec.normalize_pip(pip)
        prepared.python = pip_env.ensure_venv(pip, root, deadline)
        prepared.resource_dirs.append(pip_env.venv_dir(root, pip))
    with _cache_lock:
        _cache[key] = prepared
    return prepared


def _uri(value: object, field_name: str) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise RuntimeEnvSetupError(
            f"runtime_env {field_name}={value!r} reached the node un-uploaded; local paths "
            "must go through packaging.upload_local_packages first")
    return value


def _unpack(uri: str, root: str, kind: str, kv_get: KvGet, deadline: float | None) -> str:
    """The directory ``uri`` is unpacked in (unpacking it once per node)."""
    name = uri.split("://", 1)[1].replace("/", "_")
    name = os.path.splitext(name)[0] if name.endswith((".zip", ".whl")) else name
    dest = os.path.join(root, kind, name)
    if os.path.exists(os.path.join(dest, READY)):
        pip_env.touch(dest)
        return dest
    with pip_env.file_lock(dest + ".lock", deadline, f"package {uri}"):
        if os.path.exists(os.path.join(dest, READY)):
            return dest
        try:
            data = kv_get(uri)
        except Exception as e:  # noqa: BLE001 - any transport error is a setup failure
            raise RuntimeEnvSetupError(f"could not fetch runtime_env package {uri}: {e}") from e
        if data is None:
            raise RuntimeEnvSetupError(
                f"runtime_env package {uri} is not in the cluster's package store; submit "
                "again from the machine that has the files (it uploads them again)")
        tmp = f"{dest}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        try:
            if uri.endswith(".whl"):
                # A wheel's layout (.data/purelib, RECORD) needs an installer, as in Ray.
                wheels.install_wheel(data, tmp, uri, deadline)
            else:
                _extract(data, tmp, uri)
            open(os.path.join(tmp, READY), "w").close()
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract(data: bytes, dest: str, uri: str) -> None:
    import io
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise RuntimeEnvSetupError(f"runtime_env package {uri} is not a zip file") from None
    with zf:
        for info in zf.infolist():
            target = os.path.realpath(os.path.join(dest, info.filename))
            if not target.startswith(os.path.realpath(dest) + os.sep) and \
                    target != os.path.realpath(dest):
                raise RuntimeEnvSetupError(
                    f"runtime_env package {uri} has an entry outside its root: {info.filename}")
            zf.extract(info, dest)
            mode = info.external_attr >> 16
            if mode & stat.S_IXUSR and not info.is_dir():
                os.chmod(target, 0o755)
    os.makedirs(dest, exist_ok=True)


def _content_root(path: str, strip_single_dir: bool) -> str:
    """A zip holding one top-level directory (``zip -r proj.zip proj``) has its
    content in that directory, as Ray reads working_dir zips."""
    if not strip_single_dir:
        return path
    entries = [e for e in os.listdir(path) if e != READY]
    if len(entries) == 1 and os.path.isdir(os.path.join(path, entries[0])) \
            and entries[0] != "__MACOSX":
        return os.path.join(path, entries[0])
    return path


__all__ = ["PreparedEnv", "prepare", "resources_root"]

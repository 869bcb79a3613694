"""Virtualenvs for runtime_env ``pip``: one per requirement set per node, cached.

The venv is made with ``--system-site-packages`` plus a ``.pth`` file naming
this interpreter's import path, so ember and its dependencies (installed in
whatever environment runs the node) stay importable while the requested
packages, installed into the venv, take precedence. ``uv pip`` installs when
``uv`` is on PATH (much faster), else this interpreter's pip targets the venv
(``pip --python``). A file lock makes concurrent requests for one set install
once; a ``.ember_ready`` marker says the install finished (a crash mid-install
leaves no marker, and the next request starts over).

>>> python = ensure_venv({"packages": ["six"], "pip_install_options": [],
...                       "installer": "pip"}, "/tmp/session/runtime_resources", None)
>>> python.endswith("/bin/python")
True
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ...exceptions import RuntimeEnvSetupError

READY = ".ember_ready"
# How much of the installer's output an error keeps (its end says what failed).
ERROR_TAIL_CHARS = 4000


def requirements_hash(pip: Mapping[str, Any]) -> str:
    """Names the venv: the requirement set, its options and this Python's version.

    >>> requirements_hash({"packages": ["a"]}) == requirements_hash({"packages": ["a"]})
    True
    """
    key = {"packages": list(pip.get("packages") or ()),
           "options": list(pip.get("pip_install_options") or ()),
           "installer": pip.get("installer", "auto"),
           "python": list(sys.version_info[:2])}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def venv_dir(root: str, pip: Mapping[str, Any]) -> str:
    return os.path.join(root, "pip", requirements_hash(pip))


def venv_python(path: str) -> str:
    return os.path.join(path, "bin", "python")


@contextmanager
def file_lock(path: str, deadline: float | None, what: str) -> Iterator[None]:
    """An exclusive lock on ``path`` (across processes), waiting until ``deadline``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise RuntimeEnvSetupError(
                        f"timed out waiting for another process to finish setting up {what}; "
                        "raise runtime_env config={'setup_timeout_seconds': ...}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def touch(path: str) -> None:
    """Mark a cached resource as just used (its marker's mtime orders LRU eviction)."""
    try:
        os.utime(os.path.join(path, READY))
    except OSError:
        pass


def ensure_venv(pip: Mapping[str, Any], root: str, deadline: float | None) -> str:
    """The python of a venv with ``pip``'s packages installed (installed now if needed).

    Raises RuntimeEnvSetupError with the installer's own output on failure or
    when ``deadline`` (time.monotonic()) passes.
    """
    path = venv_dir(root, pip)
    if os.path.exists(os.path.join(path, READY)):
        touch(path)
        return venv_python(path)
    packages = list(pip.get("packages") or ())
    with file_lock(path + ".lock", deadline, f"the pip environment {packages}"):
        if os.path.exists(os.path.join(path, READY)):
            touch(path)
            return venv_python(path)
        shutil.rmtree(path, ignore_errors=True)       # a crashed earlier attempt
        _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", path],
             deadline, "creating the virtualenv", packages)
        _link_parent_path(path)
        if packages:
            _run(_install_command(pip, path), deadline, "installing packages", packages)
        with open(os.path.join(path, READY), "w") as f:
            f.write(json.dumps(dict(pip), sort_keys=True))
    return venv_python(path)


def _install_command(pip: Mapping[str, Any], path: str) -> list[str]:
    packages = list(pip.get("packages") or ())
    options = list(pip.get("pip_install_options") or ())
    installer = pip.get("installer", "auto")
    uv = shutil.which("uv") if installer in ("auto", "uv") else None
    if uv:
        return [uv, "pip", "install", "--python", venv_python(path), *options, *packages]
    if installer == "uv":
        raise RuntimeEnvSetupError("runtime_env 'uv' needs the uv command on the node's PATH: "
                                   "pip install uv (or use runtime_env 'pip')")
    return [sys.executable, "-m", "pip", "--python", venv_python(path), "install",
            "--disable-pip-version-check", *options, *packages]


def _link_parent_path(path: str) -> None:
    """Make this interpreter's import path (ember, its dependencies, editable
    installs) importable in the venv, after the venv's own site-packages."""
    site = os.path.join(path, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                        "site-packages")
    os.makedirs(site, exist_ok=True)
    base = {os.path.realpath(p) for p in _base_paths()}
    lines = [p for p in sys.path if p and os.path.isdir(p) and os.path.realpath(p) not in base]
    with open(os.path.join(site, "_ember_parent.pth"), "w") as f:
        f.write("\n".join(dict.fromkeys(lines)) + "\n")


def _base_paths() -> list[str]:
    import sysconfig
    paths = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    return [paths["stdlib"], paths["platstdlib"],
            os.path.join(paths["stdlib"], "lib-dynload")]


def _run(cmd: list[str], deadline: float | None, step: str, packages: list[str]) -> None:
    timeout = None if deadline is None else max(0.1, deadline - time.monotonic())
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeEnvSetupError(
            f"runtime_env pip={packages}: {step} did not finish within the setup timeout "
            f"({timeout:.0f}s left of runtime_env config setup_timeout_seconds); raise it, e.g. "
            "config={'setup_timeout_seconds': 1200}") from None
    except OSError as e:
        raise RuntimeEnvSetupError(f"runtime_env pip={packages}: {step} failed: {e}") from None
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace").strip()
        if len(out) > ERROR_TAIL_CHARS:
            out = "..." + out[-ERROR_TAIL_CHARS:]
        raise RuntimeEnvSetupError(
            f"runtime_env pip={packages}: {step} failed (exit {proc.returncode}, "
            f"{'uv' if os.path.basename(cmd[0]) == 'uv' else 'pip'}):\n{out}")


__all__ = ["ensure_venv", "file_lock", "requirements_hash", "touch", "venv_dir", "venv_python"]

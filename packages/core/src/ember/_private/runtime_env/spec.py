"""runtime_env fields: validation with messages that name the fix, and the key
that decides which workers can share a process.

Validation runs where options are checked (``.options()``, ``@remote``,
``ember.init``), so a typo fails at the call site, not on a node minutes later.
``env_key`` keeps only what changes a worker *process* (code, packages,
interpreter): env_vars are applied per task, so tasks differing only in
env_vars still share workers.

>>> validate({"pip": ["requests==2.31"], "config": {"setup_timeout_seconds": 60}})["pip"]
{'packages': ['requests==2.31'], 'pip_install_options': [], 'installer': 'auto'}
>>> env_hash({"env_vars": {"A": "1"}})
''
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from .packaging import is_uri

DEFAULT_SETUP_TIMEOUT_SECONDS = 600.0      # Ray's default
# Ray fields Ember does not implement: a value for one fails loudly instead of
# being silently ignored.
UNSUPPORTED = ("conda", "container", "image_uri", "nsight", "java_jars",
               "worker_process_setup_hook", "_inject_current_ray")
# What a worker process is built from (env_vars are per task, config only bounds setup).
PROCESS_KEYS = ("working_dir", "py_modules", "pip")


def _fail(field: str, value: object, problem: str, fix: str, target: str) -> ValueError:
    return ValueError(f"invalid option runtime_env[{field!r}]={value!r} for {target}: "
                      f"{problem}; {fix}")


def validate(env: Mapping[str, Any], target: str = "runtime_env") -> dict[str, Any]:
    """Check and normalize the fields beyond env_vars; returns a new dict.

    ``pip`` (and ``uv``) become ``{"packages": [...], "pip_install_options":
    [...], "installer": "auto"|"pip"|"uv"}`` (a requirements.txt path is read here,
    on the submitting machine, as Ray does).
    """
    out = dict(env)
    for key in UNSUPPORTED:
        if out.get(key) is not None:
            raise _fail(key, out[key], "Ember does not support this runtime_env field",
                        "use pip (packages), working_dir/py_modules (code) or env_vars",
                        target)
    wd = out.get("working_dir")
    if wd is not None:
        if not isinstance(wd, (str, os.PathLike)):
            raise _fail("working_dir", wd, "it must be a path or a gcs:// URI",
                        "e.g. runtime_env={'working_dir': '.'}", target)
        wd = os.fspath(wd)
        if not is_uri(wd) and not (os.path.isdir(wd) or (os.path.isfile(wd)
                                                          and wd.endswith(".zip"))):
            raise _fail("working_dir", wd, "no such directory or .zip file on this machine",
                        "pass an existing local directory (e.g. '.') or a .zip", target)
        out["working_dir"] = wd
    modules = out.get("py_modules")
    if modules is not None:
        if isinstance(modules, (str, os.PathLike)) or not isinstance(modules, (list, tuple)):
            raise _fail("py_modules", modules, "it must be a list",
                        "e.g. runtime_env={'py_modules': ['./my_pkg', 'dist/x.whl']}", target)
        checked: list[Any] = []
        for item in modules:
            if isinstance(item, ModuleType):
                checked.append(item)
                continue
            if not isinstance(item, (str, os.PathLike)):
                raise _fail("py_modules", modules, f"entry {item!r} is not a path, URI or module",
                            "list package directories, .zip/.whl files or gcs:// URIs", target)
            item = os.fspath(item)
            if not is_uri(item) and not os.path.exists(item):
                raise _fail("py_modules", modules, f"{item!r} does not exist on this machine",
                            "pass the path of a package directory, .py, .zip or .whl file",
                            target)
            checked.append(item)
        out["py_modules"] = checked
    excludes = out.get("excludes")
    if excludes is not None:
        if isinstance(excludes, str) or not isinstance(excludes, (list, tuple)) \
                or not all(isinstance(p, str) for p in excludes):
            raise _fail("excludes", excludes, "it must be a list of gitignore-style patterns",
                        "e.g. excludes=['*.csv', 'data/', '/build']", target)
        out["excludes"] = list(excludes)
    for key, installer in (("pip", "auto"), ("uv", "uv")):
        if out.get(key) is not None:
            out[key] = normalize_pip(out[key], installer, key, target)
    if out.get("pip") is not None and out.get("uv") is not None:
        raise _fail("uv", out["uv"], "pip and uv cannot both be given",
                    "list all packages under one of them", target)
    if out.get("uv") is not None:
        out["pip"] = out.pop("uv")
    config = out.get("config")
    if config is not None:
        out["config"] = _config(config, target)
    return out


def normalize_pip(value: Any, installer: str = "auto", field: str = "pip",
                  target: str = "runtime_env") -> dict[str, Any]:
    """The canonical form of a ``pip`` field (list, requirements file, or dict).

    ``installer`` (an Ember extension of the dict form): "auto" (uv when on the
    node's PATH, else pip), "pip" or "uv".
    """
    example = (f"e.g. {field}=['requests==2.31'], {field}='requirements.txt' or "
               f"{field}={{'packages': [...], 'pip_install_options': ['--no-index']}}")
    options: list[str] = []
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"packages", "pip_install_options", "pip_check",
                                     "pip_version", "installer"})
        if extra:
            raise _fail(field, value, f"unknown key {extra[0]!r}", example, target)
        options = list(value.get("pip_install_options") or [])
        installer = value.get("installer", installer)
        value = value.get("packages")
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise _fail(field, value, "no such requirements file on this machine", example,
                        target)
        with open(path) as f:
            value = [line.strip() for line in f
                     if line.strip() and not line.lstrip().startswith("#")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise _fail(field, value, "it must be a list of requirement strings", example, target)
    if not all(isinstance(o, str) for o in options):
        raise _fail(field, options, "pip_install_options must be strings", example, target)
    if installer not in ("auto", "pip", "uv"):
        raise _fail(field, installer, "installer must be 'auto', 'pip' or 'uv'", example,
                    target)
    return {"packages": list(value), "pip_install_options": options, "installer": installer}


def _config(config: Any, target: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise _fail("config", config, "it must be a dict",
                    "e.g. config={'setup_timeout_seconds': 120}", target)
    unknown = sorted(set(config) - {"setup_timeout_seconds", "eager_install"})
    if unknown:
        raise _fail("config", config, f"unknown key {unknown[0]!r}",
                    "valid keys are setup_timeout_seconds and eager_install", target)
    timeout = config.get("setup_timeout_seconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or (timeout <= 0 and timeout != -1)):
        raise _fail("config", config, "setup_timeout_seconds must be a positive number "
                    "(or -1 for no limit)", "e.g. config={'setup_timeout_seconds': 120}", target)
    return dict(config)


def setup_timeout(env: Mapping[str, Any]) -> float | None:
    """Seconds setup may take (None: unbounded), from ``config.setup_timeout_seconds``."""
    value = (env.get("config") or {}).get("setup_timeout_seconds")
    if value is None:
        return DEFAULT_SETUP_TIMEOUT_SECONDS
    return None if value == -1 else float(value)


def env_key(env: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of an (uploaded) env that a worker process is built from."""
    if not env:
        return {}
    key = {k: env[k] for k in PROCESS_KEYS if env.get(k)}
    if key and env.get("config"):
        key["config"] = env["config"]     # carried along so the node knows its timeout
    return key


def env_hash(env: Mapping[str, Any] | None) -> str:
    """Workers are pooled by this: '' for the default interpreter and cwd.

    >>> env_hash({"pip": {"packages": ["x"]}}) == env_hash({"pip": {"packages": ["x"]}})
    True
    """
    key = {k: v for k, v in env_key(env).items() if k != "config"}
    if not key:
        return ""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def encode(env: Mapping[str, Any] | None) -> bytes:
    """The bytes a lease request carries (``env_key`` as JSON)."""
    key = env_key(env)
    return json.dumps(key, sort_keys=True).encode() if key else b""


__all__ = ["DEFAULT_SETUP_TIMEOUT_SECONDS", "encode", "env_hash", "env_key", "normalize_pip",
           "setup_timeout", "validate"]

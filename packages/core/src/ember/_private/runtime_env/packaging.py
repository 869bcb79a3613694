"""Packing local code into content-addressed packages and uploading them once.

A local ``working_dir`` or ``py_modules`` directory becomes a deterministic zip
(sorted names, fixed timestamps and permissions, ``excludes`` applied), named
``gcs://_ember_pkg_<sha256[:32]>.zip`` by its bytes: the same files give the
same URI on every machine and every run, a changed file a new one. The bytes
go to the control service's KV (namespace ``runtime_env_packages``, key = the
URI) unless the key is already there, so a package is uploaded once however
many drivers, tasks or jobs use it. Remote URIs pass through unchanged.

>>> env = upload_local_packages({"working_dir": "."}, put=kv_put, exists=kv_exists)
>>> env["working_dir"]
'gcs://_ember_pkg_3f2a....zip'
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

PACKAGE_KV_NS = "runtime_env_packages"
URI_PREFIX = "gcs://_ember_pkg_"
MAX_PACKAGE_BYTES_ENV = "EMBER_RUNTIME_ENV_MAX_PACKAGE_BYTES"
DEFAULT_MAX_PACKAGE_BYTES = 100 * 1024 * 1024      # Ray's default
# Never shipped: bytecode is machine-local and changes whenever code is imported,
# which would also change the package's hash.
DEFAULT_EXCLUDES = ("__pycache__/", "*.pyc")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

Put = Callable[[str, bytes], None]
Exists = Callable[[str], bool]


def is_uri(value: object) -> bool:
    """True for an already-uploaded (or remote) package reference, e.g. ``gcs://...``."""
    return isinstance(value, str) and "://" in value


def max_package_bytes() -> int:
    """The upload limit per package (``EMBER_RUNTIME_ENV_MAX_PACKAGE_BYTES``, default 100 MiB)."""
    from .cache import env_bytes
    return env_bytes(MAX_PACKAGE_BYTES_ENV, DEFAULT_MAX_PACKAGE_BYTES, "209715200 for 200 MiB")


def compile_excludes(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A matcher for gitignore-style ``patterns`` over '/'-separated relative paths
    (directories end with '/').

    >>> m = compile_excludes(["*.log", "data/", "/build"])
    >>> [m(p) for p in ("a/x.log", "data/", "sub/data/", "build/", "sub/build/", "x.py")]
    [True, True, True, True, False, False]
    """
    try:
        import pathspec
    except ImportError:
        raise ImportError("runtime_env 'excludes' needs the pathspec package: "
                          "pip install 'pathspec>=0.12'") from None
    spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDES, *patterns])
    return spec.match_file


def collect_files(root: str, excludes: Sequence[str] = (), prefix: str = ""
                  ) -> list[tuple[str, str, int]]:
    """The files under ``root`` to ship, as sorted (name in the zip, path, size).

    A directory that matches ``excludes`` is skipped whole (git's rule: nothing
    below an ignored directory can be re-included). ``prefix`` is put before
    every name (py_modules keep their package directory).
    """
    matches = compile_excludes(excludes)
    out: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not matches(f"{rel_dir}{d}/"))
        for name in filenames:
            rel = rel_dir + name
            path = os.path.join(dirpath, name)
            if matches(rel) or not os.path.isfile(path):
                continue        # excluded, or a dangling link / socket
            out.append((prefix + rel, path, os.path.getsize(path)))
    out.sort()
    return out


def check_size(files: Sequence[tuple[str, str, int]], what: str,
               limit: int | None = None) -> None:
    """Raise ValueError naming the largest files when ``files`` add up to over ``limit``."""
    limit = max_package_bytes() if limit is None else limit
    total = sum(size for _, _, size in files)
    if total <= limit:
        return
    largest = sorted(files, key=lambda f: (-f[2], f[0]))[:5]
    listing = ", ".join(f"{name} ({_mib(size)})" for name, _, size in largest)
    raise ValueError(
        f"runtime_env {what} is {_mib(total)}, over the {_mib(limit)} limit for one package. "
        f"Largest files: {listing}. Leave them out with runtime_env['excludes'] (gitignore "
        f"patterns, e.g. excludes=['{largest[0][0]}']), or raise the limit with "
        f"{MAX_PACKAGE_BYTES_ENV}=<bytes>.")


def pack(files: Sequence[tuple[str, str, int]]) -> bytes:
    """A zip of ``files`` that depends only on their names, contents and
    executable bits (not on mtimes, owners or the order the disk lists them in)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, path, _ in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            mode = os.stat(path).st_mode
            info.external_attr = ((0o755 if mode & stat.S_IXUSR else 0o644)
                                  | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                zf.writestr(info, f.read(), compresslevel=6)
    return buf.getvalue()


def package_uri(data: bytes, suffix: str = ".zip") -> str:
    """The content-addressed URI of a package's bytes.

    >>> package_uri(b"abc")
    'gcs://_ember_pkg_ba7816bf8f01cfea414140de5dae2223.zip'
    """
    return f"{URI_PREFIX}{hashlib.sha256(data).hexdigest()[:32]}{suffix}"


def upload_package(data: bytes, uri: str, *, put: Put, exists: Exists) -> str:
    """Store ``data`` under ``uri`` unless it is there already; returns ``uri``."""
    if not exists(uri):
        put(uri, data)
    return uri


def package_local(path: str, excludes: Sequence[str], what: str,
                  keep_dir_name: bool) -> tuple[bytes, str]:
    """(bytes, suffix) of one local directory, .py file, .zip or .whl."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        prefix = os.path.basename(path.rstrip(os.sep)) + "/" if keep_dir_name else ""
        files = collect_files(path, excludes, prefix)
        check_size(files, f"{what} {path!r}")
        return pack(files), ".zip"
    if os.path.isfile(path):
        size = os.path.getsize(path)
        name = os.path.basename(path)
        check_size([(name, path, size)], f"{what} {path!r}")
        if path.endswith(".py") and keep_dir_name:
            return pack([(name, path, size)]), ".zip"
        if path.endswith((".zip", ".whl")):
            with open(path, "rb") as f:
                return f.read(), os.path.splitext(path)[1]
    raise ValueError(f"runtime_env {what} {path!r} does not exist or is not a directory, "
                     ".zip" + (", .whl or .py file" if keep_dir_name else " file")
                     + ": pass a local path that exists on this machine, or a gcs:// URI")


def upload_local_packages(runtime_env: dict[str, Any], *, put: Put,
                          exists: Exists) -> dict[str, Any]:
    """A copy of ``runtime_env`` whose local ``working_dir`` and ``py_modules``
    are replaced by uploaded ``gcs://`` URIs (``excludes`` is used up here).

    ``put(uri, data)``/``exists(uri)`` store into the package store: the control
    service's KV for a driver, the job server over HTTP for a job client.
    Raises ValueError for a missing path or a package over the size limit.

    >>> store = {}
    >>> env = upload_local_packages({"working_dir": "proj", "excludes": ["*.csv"]},
    ...                             put=store.__setitem__, exists=store.__contains__)
    >>> sorted(env), env["working_dir"] in store
    (['working_dir'], True)
    """
    env = dict(runtime_env)
    excludes = list(env.pop("excludes", None) or ())

    def upload(local: str, what: str, keep_dir_name: bool) -> str:
        data, suffix = package_local(local, excludes, what, keep_dir_name)
        return upload_package(data, package_uri(data, suffix), put=put, exists=exists)

    working_dir = env.get("working_dir")
    if working_dir is not None and not is_uri(working_dir):
        env["working_dir"] = upload(os.fspath(working_dir), "working_dir", False)
    modules = env.get("py_modules")
    if modules is not None:
        uploaded = []
        for item in modules:
            if isinstance(item, ModuleType):
                item = _module_path(item)
            item = os.fspath(item)
            uploaded.append(item if is_uri(item) else upload(item, "py_modules entry", True))
        env["py_modules"] = uploaded
    return env


def _module_path(module: ModuleType) -> str:
    """A module object's package directory (or its .py file for a plain module)."""
    file = getattr(module, "__file__", None)
    if not file:
        raise ValueError(f"runtime_env py_modules entry {module!r} has no __file__: pass "
                         "the path of its package directory instead")
    if os.path.basename(file) == "__init__.py":
        return os.path.dirname(file)
    return file


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.2f} MiB"


__all__ = ["PACKAGE_KV_NS", "URI_PREFIX", "check_size", "collect_files", "compile_excludes",
           "is_uri", "max_package_bytes", "pack", "package_local", "package_uri",
           "upload_local_packages", "upload_package"]

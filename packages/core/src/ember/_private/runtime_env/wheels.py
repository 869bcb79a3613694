"""Installing a ``py_modules`` wheel into a directory on the import path, as Ray does.

A wheel is not a plain zip of importable files: ``<name>.data/purelib`` and
``platlib`` hold code that belongs next to the packages, scripts and headers go
elsewhere, and its RECORD must match. So it is installed by an installer, not
unpacked: ``uv pip install --target`` when ``uv`` is on PATH (as pip envs are
set up), else ``<python> -m pip install --target``, always ``--no-deps
--no-index`` (a py_modules wheel brings only itself; its dependencies belong in
``pip``). The target directory is content-addressed by the caller (the wheel's
package URI names it), so each wheel installs once per node.

Packages are stored under their content hash (``gcs://_ember_pkg_<sha>.whl``),
which is not a valid wheel file name, and installers check it; ``wheel_filename``
recovers ``<name>-<version>-<tags>.whl`` from the wheel's own ``.dist-info``.

>>> install_wheel(data, "/tmp/session/runtime_resources/py_modules_files/_ember_pkg_ab",
...               "gcs://_ember_pkg_ab.whl", deadline=None)   # doctest: +SKIP
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

from ...exceptions import RuntimeEnvSetupError
from .pip_env import ERROR_TAIL_CHARS


def wheel_filename(data: bytes, uri: str) -> str:
    """The standard file name of the wheel in ``data`` (from its .dist-info/WHEEL).

    Several ``Tag:`` lines compress into one dotted tag set, as bdist_wheel names them.

    >>> import zipfile, io
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("m-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\\nTag: py2-none-any\\n"
    ...                 "Tag: py3-none-any\\n")
    >>> wheel_filename(buf.getvalue(), "gcs://x.whl")
    'm-1.0-py2.py3-none-any.whl'
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise RuntimeEnvSetupError(
            f"runtime_env py_modules wheel {uri} is not a zip file (a corrupt or truncated "
            ".whl); rebuild it, e.g. pip wheel --no-deps -w dist .") from None
    with zf:
        infos = [n for n in zf.namelist()
                 if n.count("/") == 1 and n.endswith(".dist-info/WHEEL")]
        if len(infos) != 1:
            raise RuntimeEnvSetupError(
                f"runtime_env py_modules wheel {uri} has {len(infos)} top-level "
                "<name>-<version>.dist-info/WHEEL files, not one: it is not a wheel; pass "
                "a package directory or .zip instead, or rebuild the wheel")
        stem = infos[0].split("/", 1)[0][:-len(".dist-info")]
        tags = [line.split(":", 1)[1].strip()
                for line in zf.read(infos[0]).decode(errors="replace").splitlines()
                if line.lower().startswith("tag:")]
    if not tags or stem.count("-") != 1:
        raise RuntimeEnvSetupError(
            f"runtime_env py_modules wheel {uri}: its {infos[0]} names no Tag (or its "
            ".dist-info is not <name>-<version>); rebuild the wheel")
    parts = [t.split("-") for t in tags if t.count("-") == 2]
    if not parts:
        raise RuntimeEnvSetupError(f"runtime_env py_modules wheel {uri}: malformed Tag "
                                   f"lines {tags!r} in {infos[0]}; rebuild the wheel")
    joined = [".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3)]
    return f"{stem}-{'-'.join(joined)}.whl"


def install_command(wheel: str, target: str) -> list[str]:
    """The command installing ``wheel`` into ``target`` (uv when on PATH, else pip)."""
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python", sys.executable, "--no-deps", "--no-index",
                "--target", target, wheel]
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
            "--no-deps", "--no-index", "--no-compile", "--target", target, wheel]


def install_wheel(data: bytes, dest: str, uri: str, deadline: float | None) -> None:
    """Install the wheel bytes ``data`` into the (new, empty) directory ``dest``.

    Raises RuntimeEnvSetupError with the installer's output when it fails, or
    when ``deadline`` (time.monotonic()) passes first.
    """
    name = wheel_filename(data, uri)
    with tempfile.TemporaryDirectory(prefix="ember_whl_") as tmp:
        wheel = os.path.join(tmp, name)
        with open(wheel, "wb") as f:
            f.write(data)
        cmd = install_command(wheel, dest)
        timeout = None if deadline is None else max(0.1, deadline - time.monotonic())
        env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise RuntimeEnvSetupError(
                f"runtime_env py_modules wheel {name}: installing did not finish within the "
                "setup timeout; raise it, e.g. config={'setup_timeout_seconds': 1200}") from None
        except OSError as e:
            raise RuntimeEnvSetupError(
                f"runtime_env py_modules wheel {name}: could not run the installer: {e}") from None
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace").strip()
        if len(out) > ERROR_TAIL_CHARS:
            out = "..." + out[-ERROR_TAIL_CHARS:]
        tool = "uv" if os.path.basename(cmd[0]) == "uv" else "pip"
        raise RuntimeEnvSetupError(
            f"runtime_env py_modules wheel {name} ({uri}) failed to install (exit "
            f"{proc.returncode}, {tool}):\n{out}")
    os.makedirs(dest, exist_ok=True)


__all__ = ["install_command", "install_wheel", "wheel_filename"]

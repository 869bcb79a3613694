"""Test helpers for runtime_env: a tiny pure-Python wheel built without a network."""
from __future__ import annotations

import base64
import hashlib
import os
import zipfile


def build_wheel(out_dir: str, name: str, version: str = "1.0", value: str = "ok",
                data_module: str | None = None) -> str:
    """Write ``<name>-<version>-py3-none-any.whl`` (module ``name`` with ``VALUE =
    value``) into ``out_dir``, hand-assembled with a correct RECORD; returns its path.

    ``data_module`` adds a top-level module of that name under
    ``<name>-<version>.data/purelib/``: where an installer puts it beside the
    package, which unzipping the wheel does not."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\n"
                                  f"Version: {version}\n").encode(),
        f"{dist_info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: ember-test\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    if data_module:
        files[f"{name}-{version}.data/purelib/{data_module}.py"] = (
            f"VALUE = {value!r}\n".encode())
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = os.path.join(out_dir, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
    return path

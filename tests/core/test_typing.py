"""Static typing of the public API (tests/typing/): mypy verdicts, and the typed example runs."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TYPING_DIR = Path(__file__).resolve().parents[2] / "tests" / "typing"


def test_mypy_accepts_typed_ok_and_rejects_typed_bad(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed here (CI runs check_typing.sh in the hatch default env)")
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not available")
    # check_typing.sh runs `python -m mypy`: make `python` this interpreter (a
    # wrapper, not a symlink, so that a virtualenv's python keeps its venv).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
               MYPY_CACHE_DIR=str(tmp_path / "mypy_cache"))
    proc = subprocess.run([bash, str(TYPING_DIR / "check_typing.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"check_typing.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert "typing checks passed" in proc.stdout


def test_typed_example_behaves_as_typed(cluster):
    # Not added to sys.modules, so cloudpickle ships its functions by value.
    spec = importlib.util.spec_from_file_location("ember_typed_ok", TYPING_DIR / "typed_ok.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.run()

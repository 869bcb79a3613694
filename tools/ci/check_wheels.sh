#!/usr/bin/env bash
# Packaging check, the way a user installs Ember (no workspace, no editable):
#   1. build a wheel for every packages/*/ member;
#   2. check the namespace layout inside them (only ember-core ships
#      ember/__init__.py; a library's copy would overwrite core's on install);
#   3. install ONLY the ember-core wheel into a fresh venv (dependencies from the
#      index) and run a remote task on a local cluster with it;
#   4. report the installed footprint of ember-core plus its dependencies.
# Needs only python3 (>= 3.10) with pip and venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building wheels"
for pkg in packages/*/; do
    # pip runs the package's own PEP 517 backend (hatchling) in an isolated
    # build env, so this needs nothing but pip.
    "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$pkg"
done
ls -l "$work/wheels"

echo "== checking wheel contents"
"$PYTHON" - "$work/wheels" <<'EOF'
import sys, zipfile
from pathlib import Path

ok = True
for whl in sorted(Path(sys.argv[1]).glob("*.whl")):
    names = set(zipfile.ZipFile(whl).namelist())
    is_core = whl.name.startswith("ember_core-")
    if is_core and "ember/__init__.py" not in names:
        print(f"{whl.name}: missing ember/__init__.py"); ok = False
    if not is_core and "ember/__init__.py" in names:
        print(f"{whl.name}: ships ember/__init__.py (only ember-core may)"); ok = False
    if not any(n.startswith("ember/") for n in names):
        print(f"{whl.name}: contains no ember/ code"); ok = False
sys.exit(0 if ok else 1)
EOF

echo "== installing the ember-core wheel into a clean venv"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$work"/wheels/ember_core-*.whl

echo "== smoke test"
# Run from an empty directory with PYTHONPATH unset so that only the installed
# wheel, not the source tree, can be imported.
mkdir "$work/run"
(
    cd "$work/run"
    # A hung cluster must not stall CI.
    env -u PYTHONPATH timeout 300 "$work/venv/bin/python" - "$work/venv" <<'EOF'
import sys
import ember

assert ember.__file__.startswith(sys.argv[1]), f"imported {ember.__file__}, not the wheel"
ember.init(num_cpus=1)

@ember.remote
def f(x):
    return x + 1

assert ember.get(f.remote(1)) == 2
ember.shutdown()
print("smoke test passed:", ember.__file__)
EOF
)

# Installed size of ember-core and its dependencies: the venv's site-packages
# without the tooling venv puts there (pip, setuptools and friends).
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
kb=$(du -sk "$site" \
    --exclude='pip' --exclude='pip-*' \
    --exclude='setuptools' --exclude='setuptools-*' \
    --exclude='_distutils_hack' --exclude='pkg_resources' --exclude='distutils-precedence.pth' \
    | cut -f1)
echo "ember-core installed size with dependencies: $((kb / 1024)) MB"

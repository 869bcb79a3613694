#!/usr/bin/env bash
# Installed size of ember-core with its dependencies, in a clean venv.
#   bash tools/bench/install_size.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
python3 -m pip wheel -q --no-deps -w "$tmp/wheels" "$root/packages/core" 2>&1 | grep -v "is ignored" || true
"$tmp/venv/bin/pip" install -q "$tmp"/wheels/ember_core-*.whl 2>&1 | grep -v "is ignored" || true
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
total=$(du -sk --exclude='pip' --exclude='pip-*' --exclude='setuptools*' --exclude='_distutils_hack' "$site" | cut -f1)
echo "ember-core installed size with dependencies: $((total / 1024)) MB"
"$tmp/venv/bin/pip" list 2>/dev/null | grep -vE '^(pip|setuptools|Package|-)' || true

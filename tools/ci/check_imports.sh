#!/usr/bin/env bash
# Import-layering checks (core <-> libraries); see tools/ci/check_imports.py.
# Needs lint-imports on PATH: run as `hatch run lint:imports`.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python tools/ci/check_imports.py "$@"

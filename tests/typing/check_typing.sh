#!/usr/bin/env bash
# Static-typing check of Ember's public API (CI: `hatch run bash tests/typing/check_typing.sh`).
#
#   typed_ok.py   must pass mypy (repo config + --strict);
#   typed_bad.py  must fail, with an error carrying the expected code on every
#                 line marked `# E: <code>[, <code>...]` and on no other line,
#                 so the check cannot pass vacuously (e.g. if ember's types
#                 degraded to Any and mypy stopped reporting anything).
#
# Uses `python -m mypy` of the python on PATH. Errors inside ember's own modules
# are not this check's business (--follow-imports=silent): only how user code
# type-checks against the API. Set MYPY_CACHE_DIR to keep mypy's cache elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=tests/typing
MYPY=(python -m mypy --config-file pyproject.toml --strict --follow-imports=silent
      --no-pretty --show-error-codes --no-color-output)

python -m mypy --version

echo "--- mypy $HERE/typed_ok.py (must pass)"
ok_rc=0
"${MYPY[@]}" "$HERE/typed_ok.py" || ok_rc=$?
if [[ $ok_rc -ne 0 ]]; then
    echo "FAIL: mypy exited $ok_rc on $HERE/typed_ok.py (expected 0)" >&2
    exit 1
fi

echo "--- mypy $HERE/typed_bad.py (must fail on exactly the '# E:' lines)"
bad_out=$(mktemp)
trap 'rm -f "$bad_out"' EXIT
bad_rc=0
"${MYPY[@]}" "$HERE/typed_bad.py" >"$bad_out" 2>&1 || bad_rc=$?
if [[ $bad_rc -ne 1 ]]; then
    cat "$bad_out" >&2
    echo "FAIL: mypy exited $bad_rc on $HERE/typed_bad.py (expected 1: type errors found)" >&2
    exit 1
fi

python - "$HERE/typed_bad.py" "$bad_out" <<'EOF'
import re
import sys

source, output = sys.argv[1], sys.argv[2]

expected = {}  # line -> set of error codes
with open(source) as f:
    for lineno, line in enumerate(f, 1):
        m = re.search(r"#\s*E:\s*([a-z0-9-]+(?:\s*,\s*[a-z0-9-]+)*)\s*$", line)
        if m:
            expected[lineno] = {c.strip() for c in m.group(1).split(",")}
        elif re.search(r"#\s*E:", line):
            sys.exit(f"{source}:{lineno}: malformed marker: use '# E: <code>[, <code>]' "
                     "at the end of the line, e.g. '# E: arg-type'")
if not expected:
    sys.exit(f"FAIL: no '# E: <code>' markers in {source}")

reported = {}  # line -> set of error codes
pattern = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z0-9-]+)\]$")
with open(output) as f:
    lines = f.read().splitlines()
for line in lines:
    m = pattern.match(line)
    if m:
        if m.group("file").replace("\\", "/") != source:
            sys.exit(f"FAIL: unexpected error outside {source}: {line}")
        reported.setdefault(int(m.group("line")), set()).add(m.group("code"))
    elif ": error:" in line:
        sys.exit(f"FAIL: cannot parse mypy error line (no [code]?): {line}")

problems = []
for lineno, codes in sorted(expected.items()):
    got = reported.get(lineno, set())
    missing = codes - got
    if missing:
        problems.append(f"{source}:{lineno}: expected error {', '.join(sorted(missing))}, "
                        f"mypy reported {', '.join(sorted(got)) or 'nothing'}")
for lineno, codes in sorted(reported.items()):
    if lineno not in expected:
        problems.append(f"{source}:{lineno}: unexpected error {', '.join(sorted(codes))} "
                        f"(mark the line '# E: <code>' if intended)")
if problems:
    print("\n".join(lines), file=sys.stderr)
    print("\n".join(["FAIL:"] + problems), file=sys.stderr)
    sys.exit(1)
print(f"typed_bad.py: {len(expected)} expected errors reported, none elsewhere")
EOF

echo "typing checks passed"

"""`ember job` end to end against `ember start --head` (issue #8): submit (streaming
the job's output, exit status from the job's), submit --no-wait + logs --follow +
stop, status/list/delete, and clear errors for bad input.

Runs with its own EMBER_TMPDIR, so `ember stop` here only sees this test's cluster."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from ember.testing import ember_processes, wait_for_condition

CLI = [sys.executable, "-m", "ember._private.cli"]


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


@pytest.fixture
def head(tmp_path, monkeypatch):
    """A CLI head (with its job server) private to the test; its job server URL."""
    root = str(tmp_path / "root")
    monkeypatch.setenv("EMBER_TMPDIR", root)
    for var in ("EMBER_CLUSTER_TOKEN", "EMBER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    started = run("start", "--head", "--port", "0", "--num-cpus", "1",
                  "--include-dashboard", "false")
    try:
        assert started.returncode == 0, started.stderr
        url = re.search(r"job server: (http://[\d.]+:\d+)", started.stdout).group(1)
        yield url
    finally:
        run("stop")
        if ember_processes([root]):
            run("stop", "--force")
        assert ember_processes([root]) == []


def test_submit_streams_the_output_and_exits_with_the_jobs_status(head, tmp_path):
    ok = run("job", "submit", "--address", head, "--", sys.executable, "-c",
             "print('hi from the job')")
    assert ok.returncode == 0, ok.stderr
    assert "hi from the job" in ok.stdout
    assert re.search(r"Job 'ember_submit_\w+' submitted successfully", ok.stderr)
    assert "succeeded" in ok.stderr

    bad = run("job", "submit", "--address", head, "--submission-id", "cli-fails",
              "--", "sh", "-c", "echo about to fail; exit 4")
    assert bad.returncode == 1 and "about to fail" in bad.stdout
    assert "Job 'cli-fails' failed" in bad.stderr
    # Without --address: the newest cluster on this machine.
    status = run("job", "status", "cli-fails")
    assert status.returncode == 0, status.stderr
    assert "Status for job 'cli-fails': FAILED" in status.stdout
    assert "Exit code: 4" in status.stdout


def test_no_wait_then_follow_then_stop(head, tmp_path):
    script = tmp_path / "ticker.py"
    printed = tmp_path / "printed"      # how many ticks the job has written so far
    script.write_text(textwrap.dedent(f"""
        import itertools, time
        for i in itertools.count():
            print("tick", i, flush=True)
            open({str(printed)!r}, "w").write(str(i + 1))
            time.sleep(0.2)
    """))
    sub = run("job", "submit", "--address", head, "--no-wait", "--submission-id", "ticker",
              "--", sys.executable, str(script))
    assert sub.returncode == 0, sub.stderr
    assert "ember job logs --follow ticker" in sub.stderr

    follow = subprocess.Popen(CLI + ["job", "logs", "--follow", "--address", head, "ticker"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = [follow.stdout.readline() for _ in range(3)]   # streamed while the job runs
        assert seen == ["tick 0\n", "tick 1\n", "tick 2\n"]
        # Stop only once "tick 3" is in the log: what was written before the stop must
        # all reach --follow (on a loaded machine the stop can beat the next tick).
        wait_for_condition(lambda: printed.exists() and int(printed.read_text() or 0) >= 4,
                           timeout=30)
        stop = run("job", "stop", "--address", head, "ticker")
        assert stop.returncode == 0, stop.stderr
        assert "Job 'ticker' was stopped" in stop.stdout
        rest = follow.stdout.read()              # --follow ends with the job
        assert follow.wait(30) == 0, rest
        assert "tick 3\n" in rest
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()

    status = run("job", "status", "--address", head, "ticker")
    assert "STOPPED" in status.stdout
    again = run("job", "stop", "--address", head, "ticker")
    assert again.returncode == 0 and "had already ended (STOPPED)" in again.stdout
    logs = run("job", "logs", "--address", head, "ticker")
    assert logs.stdout.startswith("tick 0\ntick 1\n")
    listed = run("job", "list", "--address", head)
    assert re.search(r"ticker\s+STOPPED", listed.stdout), listed.stdout
    deleted = run("job", "delete", "--address", head, "ticker")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert "ticker" not in run("job", "list", "--address", head).stdout


def test_bad_input(head):
    bad_json = run("job", "submit", "--address", head, "--runtime-env-json", "{bad", "--",
                   "true")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    unknown = run("job", "status", "--address", head, "no-such-job")
    assert unknown.returncode == 1
    assert "no job with submission id 'no-such-job'" in unknown.stderr
    missing_dir = run("job", "submit", "--address", head, "--working-dir", "/no/such/dir",
                      "--", "true")
    assert missing_dir.returncode == 1 and "does not exist" in missing_dir.stderr
    nowhere = run("job", "status", "--address", "http://127.0.0.1:9", "x")
    assert nowhere.returncode == 1
    assert "no cluster token" in nowhere.stderr or "could not reach" in nowhere.stderr

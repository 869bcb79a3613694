"""log_rotation: the decisions (pure), a real process rotating its own stdout, and a
cluster whose workers' logs stay under the caps."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ember._private.log_rotation import (LogFile, RotationConfig, enforce_session_cap,
                                         is_rotated, rotation_renames, select_for_deletion)
from ember.testing import wait_for_condition


# ------------------------------------------------------------ pure
def test_rotation_renames_shift_oldest_first():
    assert rotation_renames("w.out", 3) == [("w.out.2", "w.out.3"), ("w.out.1", "w.out.2"),
                                            ("w.out", "w.out.1")]
    assert rotation_renames("w.out", 1) == [("w.out", "w.out.1")]
    assert rotation_renames("w.out", 0) == []


def test_is_rotated():
    assert is_rotated("worker-1.out.3") and is_rotated("node_manager.log.1")
    assert not is_rotated("worker-1.out") and not is_rotated("gcs.log")


def test_select_for_deletion_oldest_rotated_first_never_live():
    files = [LogFile("a.out", 50, 1.0), LogFile("a.out.2", 40, 2.0),
             LogFile("a.out.1", 40, 3.0), LogFile("b.err.1", 30, 2.5)]
    assert select_for_deletion(files, 0) == []             # no cap
    assert select_for_deletion(files, 160) == []           # fits
    assert select_for_deletion(files, 100) == ["a.out.2", "b.err.1"]
    # Live files alone over the cap: every rotated file goes, the live one stays.
    assert select_for_deletion(files, 10) == ["a.out.2", "b.err.1", "a.out.1"]


def test_select_for_deletion_spares_unread_and_fresh_files():
    files = [LogFile("a.out", 10, 9.0, ino=1), LogFile("a.out.3", 40, 1.0, ino=4),
             LogFile("a.out.2", 40, 2.0, ino=3), LogFile("a.out.1", 40, 5.0, ino=2)]
    assert select_for_deletion(files, 60) == ["a.out.3", "a.out.2"]
    # a.out.2 is not read yet: it stays, and the next oldest goes instead.
    assert select_for_deletion(files, 60, keep={3}) == ["a.out.3", "a.out.1"]
    # a.out.1 was written after the monitor looked: it stays even over the cap.
    assert select_for_deletion(files, 60, keep={3}, newer_than=4.0) == ["a.out.3"]


def test_session_cap_never_deletes_what_the_monitor_has_not_read(tmp_path: Path):
    """A burst rotates many files between two polls; the cap then runs: the files the
    tail has not reached must survive it, so every line still reaches the drivers."""
    from ember._private.log_monitor import LogMonitor
    out, err = tmp_path / "w.out", tmp_path / "w.err"
    err.write_bytes(b"")
    monitor = LogMonitor(str(tmp_path))
    monitor.add(1, str(out), str(err))
    n = 0

    def write(lines):
        nonlocal n
        with open(out, "ab") as f:
            for _ in range(lines):
                f.write(f"line {n:04d} ".encode() + b"z" * 50 + b"\n")
                n += 1

    write(10)
    got = [ln.line for ln in monitor.poll_once()]
    for _ in range(6):                                   # six rotations, no poll between
        for src, dst in rotation_renames(str(out), 10):
            if os.path.exists(src):
                os.rename(src, dst)
        write(10)
    cap = 2 * 10 * 61                                    # room for two files of the seven
    deleted = enforce_session_cap(str(tmp_path), cap, keep=monitor.unread_inodes())
    assert deleted == []        # every rotated file is still unread
    while True:
        lines = monitor.poll_once()
        if not lines:
            break
        got += [ln.line for ln in lines]
    assert [int(line.split()[1]) for line in got] == list(range(n))
    # Read now: the cap may take them.
    deleted = enforce_session_cap(str(tmp_path), cap, keep=monitor.unread_inodes())
    assert len(deleted) == 5
    assert not os.path.exists(f"{out}.6") and os.path.exists(out)


def test_tail_steps_over_the_hole_a_rotation_in_progress_leaves(tmp_path: Path):
    """Mid-rotation (w.out.2 -> w.out.3 done, w.out.1 -> w.out.2 not yet) the numbers
    have a hole at .2. A tail done with w.out.4 must go on to w.out.3, not take the
    hole for the end of the chain and jump to the newest files (losing w.out.3)."""
    from ember._private.log_monitor import LogMonitor
    out, err = tmp_path / "w.out", tmp_path / "w.err"
    err.write_bytes(b"")

    def lines(first):
        return "".join(f"line {i}\n" for i in range(first, first + 10)).encode()

    out.write_bytes(lines(0))
    monitor = LogMonitor(str(tmp_path))
    monitor.add(1, str(out), str(err))
    got = [ln.line for ln in monitor.poll_once()]
    os.rename(out, f"{out}.4")                   # the file the tail has open
    Path(f"{out}.3").write_bytes(lines(10))
    Path(f"{out}.1").write_bytes(lines(20))      # no w.out.2: the hole
    out.write_bytes(lines(30))
    while batch := monitor.poll_once():
        got += [ln.line for ln in batch]
    assert got == [f"line {i}" for i in range(40)]


def test_enforce_session_cap_deletes_files(tmp_path: Path):
    for name, size, age in (("w.out", 100, 0), ("w.out.1", 100, 10), ("w.out.2", 100, 20)):
        p = tmp_path / name
        p.write_bytes(b"x" * size)
        os.utime(p, (1000 - age, 1000 - age))
    assert enforce_session_cap(str(tmp_path), 250) == [str(tmp_path / "w.out.2")]
    assert sorted(os.listdir(tmp_path)) == ["w.out", "w.out.1"]
    assert enforce_session_cap(str(tmp_path / "missing"), 10) == []


def test_config_from_env():
    assert RotationConfig.from_env({}) == RotationConfig()
    cfg = RotationConfig.from_env({"EMBER_LOG_ROTATION_MAX_BYTES": "1000",
                                   "EMBER_LOG_ROTATION_BACKUP_COUNT": "2",
                                   "EMBER_LOG_SESSION_MAX_BYTES": "0"})
    assert (cfg.max_bytes, cfg.backup_count, cfg.session_max_bytes) == (1000, 2, 0)
    with pytest.raises(ValueError, match="EMBER_LOG_ROTATION_MAX_BYTES"):
        RotationConfig.from_env({"EMBER_LOG_ROTATION_MAX_BYTES": "1MB"})
    with pytest.raises(ValueError, match="EMBER_LOG_ROTATION_BACKUP_COUNT"):
        RotationConfig.from_env({"EMBER_LOG_ROTATION_BACKUP_COUNT": "-1"})


# ------------------------------------------------------------ a real writer
WRITER = textwrap.dedent("""
    import os, sys
    from ember._private import log_rotation
    rotators = log_rotation.install(log_rotation.RotationConfig(1000, 3, 0))
    assert len(rotators) == 1 and rotators[0].fds == [1, 2], rotators
    for i in range(200):
        print(f"line {i:04d} " + "x" * 40)          # Python-level: rotates at once
    os.write(1, b"from C " * 400 + b"\\n")           # descriptor-level: rotated by check()
    rotators[0].check()
    print("after", file=sys.stderr)
    print("rotations", rotators[0].rotations, file=sys.stderr)
""")


def test_process_rotates_its_own_stdout(tmp_path: Path):
    log = tmp_path / "w.out"
    with open(log, "ab") as f:
        proc = subprocess.run([sys.executable, "-c", WRITER], stdout=f, stderr=f, timeout=60)
    assert proc.returncode == 0, log.read_text()
    names = sorted(os.listdir(tmp_path))
    assert names == ["w.out", "w.out.1", "w.out.2", "w.out.3"]     # backup count honoured
    for name in names[1:]:
        assert os.path.getsize(tmp_path / name) <= 1000 + 2900     # one write past the limit
    # Nothing lost or reordered inside what was kept: files oldest first form a
    # contiguous tail of what was written.
    text = "".join((tmp_path / n).read_text() for n in ["w.out.3", "w.out.2", "w.out.1", "w.out"])
    numbers = [int(ln.split()[1]) for ln in text.splitlines() if ln.startswith("line ")]
    assert numbers == list(range(numbers[0], 200))
    assert "from C" in (tmp_path / "w.out.1").read_text()            # C output was rotated
    assert (tmp_path / "w.out").read_text().startswith("after")


def test_terminal_or_pipe_is_left_alone():
    code = ("from ember._private import log_rotation; "
            "print(len(log_rotation.install(log_rotation.RotationConfig(10, 1, 0))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


# ------------------------------------------------------------ a cluster
MAX_BYTES = 20_000
SESSION_CAP = 400_000


@pytest.fixture
def small_logs_cluster(monkeypatch):
    import ember
    if ember.is_initialized():
        ember.shutdown()
    monkeypatch.setenv("EMBER_LOG_ROTATION_MAX_BYTES", str(MAX_BYTES))
    monkeypatch.setenv("EMBER_LOG_ROTATION_BACKUP_COUNT", "50")
    monkeypatch.setenv("EMBER_LOG_SESSION_MAX_BYTES", str(SESSION_CAP))
    info = ember.init(num_cpus=1)
    yield ember, info["session_dir"]
    ember.shutdown()


def test_worker_logs_rotate_stay_under_cap_and_reach_driver(small_logs_cluster, capfd):
    ember, session_dir = small_logs_cluster
    lines = 6000          # ~ 600 KB: 30 rotations at 20 KB, more than the session cap

    @ember.remote
    def chatty(n):
        for i in range(n):
            print(f"chatty line {i:05d} " + "y" * 80)
        return os.getpid()

    pid = ember.get(chatty.remote(lines), timeout=120)
    logs = os.path.join(session_dir, "logs")
    rotated = glob.glob(os.path.join(logs, "worker-*.out.*"))
    assert rotated, os.listdir(logs)

    def under_cap():
        total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(logs, "*"))
                    if os.path.isfile(p))
        return total <= SESSION_CAP
    wait_for_condition(under_cap, timeout=30)
    for path in glob.glob(os.path.join(logs, "worker-*.out*")):
        assert os.path.getsize(path) <= MAX_BYTES + 200

    # Every line reached the driver, in order, across the rotations.
    seen: list[str] = []

    def all_seen():
        out, _ = capfd.readouterr()
        seen.extend(ln for ln in out.splitlines() if f"(chatty pid={pid}) chatty line" in ln)
        return len(seen) >= lines

    def missing() -> str:
        got = {int(ln.split("chatty line ")[1].split()[0]) for ln in seen}
        lost = sorted(set(range(lines)) - got)
        return f"{len(seen)} of {lines} lines reached the driver; missing {lost[:3]}..{lost[-3:]}"
    try:
        wait_for_condition(all_seen, timeout=60)
    except RuntimeError:
        raise AssertionError(missing()) from None
    assert [int(ln.split()[4]) for ln in seen] == list(range(lines))

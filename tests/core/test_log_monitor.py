"""LogMonitor: tailing worker log files and fanning lines out to subscribers.

Most tests call ``poll_once`` directly so they are deterministic; one runs the
background thread to check it delivers on its own.
"""
from __future__ import annotations

import os
import queue
from pathlib import Path

import pytest

from ember._private.log_monitor import TASK_NAME_MARKER, LogMonitor


def lines_of(batch) -> list[tuple[int, str, str, bool]]:
    return [(ln.pid, ln.task_name, ln.line, ln.is_err) for ln in batch]


def polled(mon: LogMonitor, polls: int = 5) -> list[tuple[int, str, str, bool]]:
    """The lines of several polls (one poll may stop at a file of a rotation chain)."""
    return [line for _ in range(polls) for line in lines_of(mon.poll_once())]


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with open(path, "ab") as f:
        f.write(data)


@pytest.fixture
def setup(tmp_path: Path):
    log_dir = tmp_path / "logs"
    mon = LogMonitor(str(log_dir))
    out, err = log_dir / "worker-1.out", log_dir / "worker-1.err"
    out.touch()
    err.touch()
    mon.add(1, str(out), str(err))
    q: queue.Queue = queue.Queue()
    mon.subscribe(q)
    return mon, out, err, q


def test_creates_log_dir(tmp_path: Path) -> None:
    LogMonitor(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()


def test_appended_lines_delivered_with_task_names(setup) -> None:
    mon, out, _err, q = setup
    append(out, f"before any task\n{TASK_NAME_MARKER}f\nhello\nagain\n{TASK_NAME_MARKER}g\nworld\n")
    expected = [
        (1, "", "before any task", False),
        (1, "f", "hello", False),
        (1, "f", "again", False),
        (1, "g", "world", False),
    ]
    assert lines_of(mon.poll_once()) == expected
    assert lines_of(q.get_nowait()) == expected  # one batch per poll
    assert q.empty()


def test_task_name_persists_across_polls(setup) -> None:
    mon, out, _err, q = setup
    append(out, f"{TASK_NAME_MARKER}f\n")
    assert mon.poll_once() == []  # the marker alone delivers nothing
    assert q.empty()
    append(out, "later\n")
    assert lines_of(mon.poll_once()) == [(1, "f", "later", False)]


def test_only_new_lines_are_delivered(setup) -> None:
    mon, out, _err, q = setup
    append(out, "one\n")
    assert lines_of(mon.poll_once()) == [(1, "", "one", False)]
    assert mon.poll_once() == []
    append(out, "two\n")
    assert lines_of(mon.poll_once()) == [(1, "", "two", False)]
    assert [lines_of(q.get_nowait()) for _ in range(2)] == [
        [(1, "", "one", False)], [(1, "", "two", False)]]
    assert q.empty()


def test_partial_line_held_until_newline(setup) -> None:
    mon, out, _err, q = setup
    append(out, "abc")
    assert mon.poll_once() == []
    assert q.empty()
    append(out, "def")
    assert mon.poll_once() == []
    append(out, "ghi\nnext")
    assert lines_of(mon.poll_once()) == [(1, "", "abcdefghi", False)]
    append(out, "\n")
    assert lines_of(mon.poll_once()) == [(1, "", "next", False)]


def test_partial_marker_line_held_until_newline(setup) -> None:
    mon, out, _err, _q = setup
    append(out, TASK_NAME_MARKER + "ta")
    assert mon.poll_once() == []
    append(out, "sk\nx\n")
    assert lines_of(mon.poll_once()) == [(1, "task", "x", False)]


def test_multibyte_character_split_across_reads(setup) -> None:
    mon, out, _err, _q = setup
    data = "héllo\n".encode()
    append(out, data[:2])  # ends in the middle of "é"
    assert mon.poll_once() == []
    append(out, data[2:])
    assert lines_of(mon.poll_once()) == [(1, "", "héllo", False)]


def test_stderr_lines_flagged_is_err(setup) -> None:
    mon, out, err, q = setup
    append(err, f"{TASK_NAME_MARKER}f\nboom\n")
    append(out, "fine\n")
    got = lines_of(mon.poll_once())
    assert sorted(got) == [(1, "", "fine", False), (1, "f", "boom", True)]
    assert sorted(lines_of(q.get_nowait())) == sorted(got)


def test_several_workers(setup, tmp_path: Path) -> None:
    mon, out, _err, _q = setup
    out2 = tmp_path / "logs" / "worker-2.out"
    out2.touch()
    mon.add(2, str(out2), str(tmp_path / "logs" / "worker-2.err"))  # err file never created
    append(out, "from one\n")
    append(out2, "from two\n")
    assert sorted(lines_of(mon.poll_once())) == [(1, "", "from one", False),
                                                 (2, "", "from two", False)]


def test_missing_file_is_skipped(tmp_path: Path) -> None:
    mon = LogMonitor(str(tmp_path))
    mon.add(5, str(tmp_path / "nope.out"), str(tmp_path / "nope.err"))
    assert mon.poll_once() == []
    append(tmp_path / "nope.out", "appeared\n")
    assert lines_of(mon.poll_once()) == [(5, "", "appeared", False)]


def test_finished_pid_read_to_end_then_dropped(setup) -> None:
    mon, out, err, q = setup
    append(out, "last words\n")
    append(err, "last error\n")
    mon.finish(1)
    got = lines_of(mon.poll_once())
    assert sorted(got) == [(1, "", "last error", True), (1, "", "last words", False)]
    q.get_nowait()
    append(out, "ghost\n")
    append(err, "ghost\n")
    assert mon.poll_once() == []
    assert q.empty()


def test_finish_only_drops_that_pid(setup, tmp_path: Path) -> None:
    mon, out, _err, _q = setup
    out2 = tmp_path / "logs" / "worker-2.out"
    mon.add(2, str(out2), str(tmp_path / "logs" / "worker-2.err"))
    mon.finish(1)
    mon.poll_once()
    append(out, "ghost\n")
    append(out2, "alive\n")
    assert lines_of(mon.poll_once()) == [(2, "", "alive", False)]


def test_finished_pid_unterminated_last_line_delivered(setup) -> None:
    mon, out, _err, _q = setup
    append(out, "complete\nno newline at exit")
    mon.finish(1)
    assert lines_of(mon.poll_once()) == [(1, "", "complete", False),
                                         (1, "", "no newline at exit", False)]


def test_unsubscribe_stops_delivery(setup) -> None:
    mon, out, _err, q = setup
    q2: queue.Queue = queue.Queue()
    mon.subscribe(q2)
    append(out, "both\n")
    mon.poll_once()
    assert lines_of(q.get_nowait()) == lines_of(q2.get_nowait()) == [(1, "", "both", False)]
    mon.unsubscribe(q)
    mon.unsubscribe(q)  # twice: no error
    append(out, "only q2\n")
    mon.poll_once()
    assert q.empty()
    assert lines_of(q2.get_nowait()) == [(1, "", "only q2", False)]


def test_background_thread_delivers(setup) -> None:
    mon, out, _err, q = setup
    mon.start()
    try:
        append(out, f"{TASK_NAME_MARKER}bg\nthreaded\n")
        batch = q.get(timeout=10)
        assert lines_of(batch) == [(1, "bg", "threaded", False)]
    finally:
        mon.stop()


def _rotate(path: Path, backups: int) -> None:
    """What a worker's log_rotation does: shift the rotated names, start a new file."""
    for i in range(backups, 1, -1):
        if Path(f"{path}.{i - 1}").exists():
            os.replace(f"{path}.{i - 1}", f"{path}.{i}")
    os.replace(path, f"{path}.1")
    path.touch()


def test_follows_rotations_without_losing_or_repeating_lines(setup) -> None:
    mon, out, _err, _q = setup
    append(out, f"{TASK_NAME_MARKER}t\none\ntw")
    assert lines_of(mon.poll_once()) == [(1, "t", "one", False)]
    append(out, "o\n")           # the rest of the line, written before the rotation
    _rotate(out, 5)
    append(out, "three\n")
    # Several rotations between two polls: every file is read, oldest first.
    _rotate(out, 5)
    append(out, "four\n")
    _rotate(out, 5)
    append(out, "five\n")
    assert polled(mon) == [(1, "t", line, False) for line in ("two", "three", "four", "five")]


def test_rotations_before_the_first_poll_are_read_from_the_oldest_file(setup) -> None:
    # A forked worker can run a task, print and rotate before the monitor's first
    # poll opens its file; opening the live name then lost the marker and every
    # line before it.
    mon, out, _err, _q = setup
    append(out, f"{TASK_NAME_MARKER}t\none\n")
    _rotate(out, 5)
    append(out, "two\n")
    _rotate(out, 5)
    append(out, "three\n")
    assert polled(mon) == [(1, "t", line, False) for line in ("one", "two", "three")]


def test_file_being_read_deleted_goes_on_with_the_next_one(setup) -> None:
    mon, out, _err, _q = setup
    append(out, "one\n")
    assert len(mon.poll_once()) == 1
    _rotate(out, 5)
    append(out, "two\n")
    _rotate(out, 5)
    append(out, "three\n")
    os.unlink(f"{out}.2")    # "one", already read: the session cap took the oldest
    assert [ln[2] for ln in polled(mon, 4)] == ["two", "three"]


def test_unread_files_deleted_go_on_with_what_is_left(setup) -> None:
    mon, out, _err, _q = setup
    append(out, "one\n")
    assert len(mon.poll_once()) == 1
    _rotate(out, 5)
    append(out, "lost\n")
    _rotate(out, 5)
    append(out, "kept\n")
    os.unlink(f"{out}.2")
    os.unlink(f"{out}.1")
    assert [ln[2] for ln in polled(mon, 3)] == ["kept"]

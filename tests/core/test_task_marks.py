"""task_marks.py: marker lines at once when the task name changes, otherwise only
before a task's first output."""
from __future__ import annotations

import io

from ember._private.log_service import task_lines
from ember._private.task_marks import MarkedStream, TaskMarks


def _pair():
    out, err = MarkedStream(io.StringIO()), MarkedStream(io.StringIO())
    return out, err, TaskMarks((out, err))


def test_a_new_name_is_marked_at_once_on_both_streams():
    out, err, marks = _pair()
    marks.mark("f", b"\x01")
    marks.mark("g", b"\x02")
    expected = ":task_name:f :task_id:01\n:task_name:g :task_id:02\n"
    assert out.getvalue() == expected and err.getvalue() == expected


def test_the_same_name_is_marked_only_before_output_on_that_stream():
    out, err, marks = _pair()
    marks.mark("A", b"\x01")
    for i in range(2, 6):
        marks.mark("A", bytes([i]))
        if i == 4:
            print("from 4", file=out)
    assert out.getvalue() == (":task_name:A :task_id:01\n"
                              ":task_name:A :task_id:04\nfrom 4\n")
    assert err.getvalue() == ":task_name:A :task_id:01\n"


def test_a_pending_marker_is_superseded_by_a_new_name():
    out, _, marks = _pair()
    marks.mark("f", b"\x01")
    marks.mark("f", b"\x02")          # pending, nothing printed
    marks.mark("g", b"\x03")
    out.write("x\n")
    assert out.getvalue() == ":task_name:f :task_id:01\n:task_name:g :task_id:03\nx\n"


def test_lookup_by_id_finds_each_tasks_lines_and_none_for_a_silent_task():
    out, _, marks = _pair()
    marks.mark("A", b"\x01")
    out.write("one\n")
    marks.mark("A", b"\x02")         # prints nothing
    marks.mark("A", b"\x03")
    out.writelines(["three\n", "more\n"])
    log = out.getvalue()
    assert task_lines(log, "A", "01") == "one\n"
    assert task_lines(log, "A", "02") == ""
    assert task_lines(log, "A", "03") == "three\nmore\n"
    assert task_lines(log, "A") == "one\nthree\nmore\n"


def test_plain_streams_are_marked_every_time():
    # Without MarkedStream (a worker whose streams were not wrapped) nothing can be
    # deferred: every task start is written.
    out, err = io.StringIO(), io.StringIO()
    marks = TaskMarks((out, err))
    marks.mark("A", b"\x01")
    marks.mark("A", b"\x02")
    assert out.getvalue().count(":task_name:A") == 2


def test_marked_stream_passes_everything_else_through():
    inner = io.StringIO()
    s = MarkedStream(inner)
    assert s.getvalue() == "" and not s.closed
    s.flush()

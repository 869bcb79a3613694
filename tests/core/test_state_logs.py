"""`ember logs` printing (state_logs.py), against a fake log service: no cluster."""
from __future__ import annotations

from types import SimpleNamespace

from ember._private import state_logs

LOG = (":task_name:Talker.maybe :task_id:aa\nmaybe says 0\n"
       ":task_name:Talker.maybe :task_id:cc\nmaybe says 2\n")


class _Stub:
    def GetLog(self, request, timeout=None):
        # In two pieces, split inside a marker line.
        return iter([SimpleNamespace(error="", data=LOG[:30].encode()),
                     SimpleNamespace(error="", data=LOG[30:].encode())])


def _printed(capsys, task):
    state_logs._stream(_Stub(), None, False, 5.0, True, task, 0, lambda fn: fn())
    return capsys.readouterr().out


def test_a_task_id_alone_shows_only_that_tasks_lines(capsys):
    # The executor's events (its pid) may reach the control service before the
    # owner's (its name): with the id alone, still only that task's lines.
    assert _printed(capsys, ("", "cc")) == "maybe says 2\n"
    assert _printed(capsys, ("Talker.maybe", "aa")) == "maybe says 0\n"
    assert _printed(capsys, ("", "dd")) == ""       # printed nothing: no lines


def test_no_task_shows_the_whole_log_without_markers(capsys):
    assert _printed(capsys, ("", "")) == "maybe says 0\nmaybe says 2\n"

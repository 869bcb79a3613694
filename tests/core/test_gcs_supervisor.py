"""RestartPolicy: when the supervisor restarts a control service that exited (pure).

The supervisor process itself is exercised for real in test_gcs_restart.py.
"""
from __future__ import annotations

import signal

from ember._private.gcs_supervisor import (
    GiveUp,
    Restart,
    RestartPolicy,
    command,
    describe_exit,
)


def test_killed_or_crashed_restarts_at_once():
    assert RestartPolicy().on_exit(-signal.SIGKILL, stopping=False, now=0.0) == Restart(0.0)
    assert RestartPolicy().on_exit(1, stopping=False, now=0.0) == Restart(0.0)


def test_clean_exit_or_stop_is_never_restarted():
    assert isinstance(RestartPolicy().on_exit(0, stopping=False, now=0.0), GiveUp)
    stopped = RestartPolicy().on_exit(-signal.SIGKILL, stopping=True, now=0.0)
    assert stopped == GiveUp("it was asked to stop")


def test_crash_loop_slows_down_then_gives_up():
    policy = RestartPolicy(max_restarts=4, window_s=60, base_delay_s=0.2, max_delay_s=0.5)
    delays = [policy.on_exit(1, False, float(t)) for t in range(4)]
    assert delays == [Restart(0.0), Restart(0.2), Restart(0.4), Restart(0.5)]
    verdict = policy.on_exit(1, False, 4.0)
    assert isinstance(verdict, GiveUp) and "5 times within 60 s" in verdict.reason
    assert "EMBER_GCS_MAX_RESTARTS" in verdict.reason


def test_old_restarts_fall_out_of_the_window():
    policy = RestartPolicy(max_restarts=2, window_s=10)
    assert policy.on_exit(-9, False, 0.0) == Restart(0.0)
    assert isinstance(policy.on_exit(-9, False, 1.0), Restart)
    assert isinstance(policy.on_exit(-9, False, 2.0), GiveUp)
    # Much later, a death is a fresh incident again.
    assert policy.on_exit(-9, False, 100.0) == Restart(0.0)


def test_zero_restarts_allowed_disables_supervision():
    assert isinstance(RestartPolicy(max_restarts=0).on_exit(-9, False, 0.0), GiveUp)


def test_describe_exit_and_command():
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(3) == "exited with code 3"
    argv = command("127.0.0.1", 6379, "/tmp/ember/session_x", "ab12")
    assert argv[:2] == ["-m", "ember._private.gcs_supervisor"]
    assert argv[argv.index("--port") + 1] == "6379"
    assert argv[argv.index("--session-name") + 1] == "session_x"
    assert "--head-node-id" not in command("127.0.0.1", 1, "/x/session_y")

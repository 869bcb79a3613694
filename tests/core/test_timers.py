"""Timers: callbacks run when due, in deadline order, on one thread."""
from __future__ import annotations

import threading
import time

from ember._private.timers import Timers

JOIN = 10.0  # generous bound on waits; never asserted as a duration


def test_callbacks_run_in_deadline_order() -> None:
    timers = Timers("test-timers")
    ran: list[str] = []
    done = threading.Event()
    timers.schedule(0.2, lambda: (ran.append("late"), done.set()))
    timers.schedule(0.05, lambda: ran.append("early"))
    # Due before the head: the thread must wake for it.
    timers.schedule(0.0, lambda: ran.append("now"))
    assert done.wait(JOIN)
    assert ran == ["now", "early", "late"]
    timers.stop()


def test_not_run_before_due() -> None:
    timers = Timers("test-timers")
    ran = threading.Event()
    start = time.monotonic()
    timers.schedule(0.3, ran.set)
    assert not ran.wait(0.1)
    assert ran.wait(JOIN) and time.monotonic() - start >= 0.3
    timers.stop()


def test_a_failing_callback_does_not_stop_the_thread() -> None:
    timers = Timers("test-timers")
    ran = threading.Event()
    timers.schedule(0.0, lambda: 1 / 0)
    timers.schedule(0.01, ran.set)
    assert ran.wait(JOIN)
    timers.stop()


def test_stop_drops_pending_callbacks() -> None:
    timers = Timers("test-timers")
    ran = threading.Event()
    timers.schedule(0.2, ran.set)
    timers.stop()
    assert not ran.wait(0.5)

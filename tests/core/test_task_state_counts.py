"""task_state_counts: a process's tasks by state from its task events (pure)."""
from __future__ import annotations

from ember._private.task_events import (ACTOR_CREATION_TASK, FAILED, FINISHED,
                                        PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, RUNNING,
                                        SUBMITTED_TO_WORKER)
from ember._private.task_state_counts import TaskStateCounts


def ev(task, state, attempt=0, payload=None):
    return (task, attempt, state, 0.0, payload)


def nonzero(c):
    return {k: v for k, v in c.counts().items() if v}


def test_owner_side_life_of_a_task():
    c = TaskStateCounts()
    c.apply([ev(b"a", PENDING_ARGS_AVAIL), ev(b"b", PENDING_ARGS_AVAIL)])
    assert nonzero(c) == {"PENDING_ARGS_AVAIL": 2}
    c.apply([ev(b"a", PENDING_NODE_ASSIGNMENT), ev(b"a", SUBMITTED_TO_WORKER)])
    assert nonzero(c) == {"PENDING_ARGS_AVAIL": 1, "SUBMITTED_TO_WORKER": 1}
    c.apply([ev(b"a", FINISHED), ev(b"b", FAILED)])
    assert nonzero(c) == {"FINISHED": 1, "FAILED": 1}


def test_states_never_move_back():
    c = TaskStateCounts()
    c.apply([ev(b"a", SUBMITTED_TO_WORKER), ev(b"a", PENDING_NODE_ASSIGNMENT)])
    assert nonzero(c) == {"SUBMITTED_TO_WORKER": 1}


def test_executor_side_counts_running_only():
    c = TaskStateCounts()
    c.apply([ev(b"x", RUNNING)])
    assert nonzero(c) == {"RUNNING": 1}
    c.apply([ev(b"x", FINISHED)])
    assert nonzero(c) == {}              # the owner counts how it ended


def test_a_process_running_its_own_call_counts_both_sides_once():
    c = TaskStateCounts()
    c.apply([ev(b"s", PENDING_ARGS_AVAIL), ev(b"s", SUBMITTED_TO_WORKER), ev(b"s", RUNNING)])
    assert nonzero(c) == {"SUBMITTED_TO_WORKER": 1, "RUNNING": 1}
    c.apply([ev(b"s", FINISHED), ev(b"s", FINISHED)])   # executor's, then owner's
    assert nonzero(c) == {"FINISHED": 1}


def test_retries_are_separate_attempts():
    c = TaskStateCounts()
    c.apply([ev(b"r", PENDING_ARGS_AVAIL), ev(b"r", SUBMITTED_TO_WORKER),
             ev(b"r", FAILED), ev(b"r", PENDING_NODE_ASSIGNMENT, attempt=1)])
    assert nonzero(c) == {"FAILED": 1, "PENDING_NODE_ASSIGNMENT": 1}


def test_actor_constructors_count_only_where_they_run():
    c = TaskStateCounts()
    c.apply([ev(b"c", PENDING_ARGS_AVAIL, payload=("A", 1, b"id", ACTOR_CREATION_TASK)),
             ev(b"c", PENDING_NODE_ASSIGNMENT)])
    assert nonzero(c) == {}

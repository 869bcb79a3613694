"""Task events without processes: the per-process buffer, the wire format, and the
control service's bounded store (issue #7, easy to see into).

The store is fed event tuples exactly as AddTaskEvents delivers them; every
test here would fail if merging, eviction or counting went wrong.
"""
from __future__ import annotations

import pickle

import pytest

from ember._private import serialization
from ember._private.protos import ember_pb2 as pb
from ember._private.state_filters import apply_filters, check_filters, parse_filter
from ember._private.state_service import load_events
from ember._private.task_event_store import FILTER_COLUMNS, TaskEventStore
from ember._private.task_events import (ACTOR_TASK, FAILED, FINISHED, NORMAL_TASK,
                                        PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, RUNNING,
                                        SUBMITTED_TO_WORKER, NoTaskEvents, TaskEventBuffer,
                                        encode, error_info, from_env)
from ember.exceptions import TaskCancelledError, TaskError, WorkerCrashedError
from ember.util.state.common import TaskState


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def info(name: str = "f", job: int = 1, kind: str = NORMAL_TASK, actor: bytes = b"") -> tuple:
    """A created task's payload, as task_events.TaskEventBuffer.submitted records it."""
    return (name, job, actor, kind, b"", (("CPU", 1.0),), b"")


def rows(store: TaskEventStore, *filters) -> list[dict]:
    return store.query(list(filters))[0]


# ------------------------------------------------------------------ buffer
def test_buffer_records_in_order_and_drains_everything():
    buf = TaskEventBuffer(max_events=10)
    for state in (PENDING_ARGS_AVAIL, SUBMITTED_TO_WORKER, FINISHED):
        buf.record(tid(1), 0, state)
    events = buf.drain()
    assert [e[2] for e in events] == [PENDING_ARGS_AVAIL, SUBMITTED_TO_WORKER, FINISHED]
    assert all(e[0] == tid(1) and e[1] == 0 and e[3] > 0 for e in events)
    assert buf.drain() == []


def test_buffer_is_bounded_and_counts_what_it_drops():
    buf = TaskEventBuffer(max_events=3)
    for i in range(10):
        buf.record(tid(i), 0, RUNNING)
    assert len(buf.drain()) == 3
    assert buf.dropped == 7


def test_flush_sends_one_batch_with_the_dropped_count_then_resets_it():
    buf = TaskEventBuffer(max_events=2)
    sent = []
    buf.start(lambda events, dropped, timeout: sent.append((load_events(events), dropped)))
    buf.stop(flush=False)       # no background flushes: this test flushes by hand
    for i in range(5):
        buf.record(tid(i), 0, RUNNING)
    buf.flush()
    buf.flush()                 # nothing new: no second call
    assert len(sent) == 1
    events, dropped = sent[0]
    assert [e[0] for e in events] == [tid(0), tid(1)] and dropped == 3
    assert buf.dropped == 0


def test_periodic_sends_carry_one_batch_each_and_listeners_see_every_event_at_once():
    # Ray's task_events_send_batch_size: a busy process sends at most a batch per
    # interval, oldest first; an explicit flush sends all, still in batches.
    buf = TaskEventBuffer(max_events=100, send_batch=3)
    sent, seen = [], []
    buf.listeners.append(lambda events: seen.append(len(events)))
    buf.start(lambda events, dropped, timeout: sent.append([e[0] for e in load_events(events)]))
    buf.stop(flush=False)
    for i in range(8):
        buf.record(tid(i), 0, RUNNING)
    buf.flush(everything=False)
    assert sent == [[tid(0), tid(1), tid(2)]] and seen == [8]
    buf.flush(everything=False)
    assert sent[-1] == [tid(3), tid(4), tid(5)] and seen == [8, 0]
    buf.record(tid(8), 0, RUNNING)
    buf.flush()
    assert sent[2:] == [[tid(6), tid(7), tid(8)]] and seen == [8, 0, 1]
    buf.flush()
    assert len(sent) == 3                   # nothing left: no empty send


def test_events_waiting_to_be_sent_are_bounded_oldest_dropped_first():
    buf = TaskEventBuffer(max_events=4, send_batch=2)
    sent = []
    buf.start(lambda events, dropped, timeout: sent.append(
        ([e[0] for e in load_events(events)], dropped)))
    buf.stop(flush=False)
    for round_ in range(3):
        for i in range(4):
            buf.record(tid(10 * round_ + i), 0, RUNNING)
        buf.flush(everything=False)
    # Each round takes 4 and sends 2; waiting ones beyond 4 go, oldest first.
    assert sent[0] == ([tid(0), tid(1)], 0)
    assert sent[1] == ([tid(10), tid(11)], 2)           # tid 2 and 3 dropped
    assert sent[2] == ([tid(20), tid(21)], 2)           # tid 12 and 13 dropped
    assert buf.dropped == 0


def test_a_failed_send_counts_its_events_as_dropped():
    buf = TaskEventBuffer()

    def fail(events, dropped, timeout):
        raise ConnectionError("control service gone")

    buf.start(fail)
    buf.stop(flush=False)
    buf.record(tid(1), 0, RUNNING)
    buf.flush()                 # must not raise: observability never breaks work
    assert buf.dropped == 1


def test_submitted_retrying_and_finished_describe_the_task():
    buf = TaskEventBuffer()
    spec = pb.TaskSpec(task_id=tid(7), name="f", job_id=3)
    key = ((("CPU", 1.0),), "", b"", False)
    buf.submitted(spec, key, None)
    buf.retrying(spec, ("WORKER_DIED", "its worker died"))
    assert spec.attempt_number == 1
    buf.finished(tid(7), 1, [pb.ReturnObject(data=b"ok")])
    events = load_events(encode(buf.drain()))
    assert [(e[1], e[2]) for e in events] == [(0, PENDING_ARGS_AVAIL), (0, FAILED),
                                              (1, PENDING_NODE_ASSIGNMENT), (1, FINISHED)]
    name, job_id, _, kind, _, resources, _ = events[0][4]
    assert (name, job_id, kind, dict(resources)) == ("f", 3, NORMAL_TASK, {"CPU": 1.0})
    assert events[1][4] == ("WORKER_DIED", "its worker died")


def test_actor_call_and_nested_task_are_typed_and_take_the_parents_job():
    buf = TaskEventBuffer()

    class Parent:
        spec = pb.TaskSpec(task_id=tid(1), job_id=5)

    call = pb.TaskSpec(task_id=tid(2), name="A.m", actor_id=b"a" * 16)   # job 0: a worker
    buf.submitted(call, ("actor", b"a" * 16), Parent())
    _, job_id, actor_id, kind, parent, _, _ = load_events(encode(buf.drain()))[0][4]
    assert kind == ACTOR_TASK and actor_id == b"a" * 16
    assert job_id == 5 and parent == tid(1)


def test_finished_with_an_error_return_records_the_failure_and_its_type():
    buf = TaskEventBuffer()
    err = TaskError.from_exception(ValueError("boom"), "f", 1)
    data = serialization.to_bytes(serialization.serialize(err))
    buf.finished(tid(1), 0, [pb.ReturnObject(is_error=True, data=data)])
    (event,) = load_events(encode(buf.drain()))
    assert event[2] == FAILED
    etype, message = event[4]
    assert etype == "TASK_EXECUTION_EXCEPTION" and "boom" in message


def test_error_types_follow_rays_names():
    assert error_info(TaskCancelledError("ab"))[0] == "TASK_CANCELLED"
    assert error_info(WorkerCrashedError("died"))[0] == "WORKER_DIED"
    assert error_info(serialization.to_bytes(serialization.serialize(
        WorkerCrashedError("died"))))[0] == "WORKER_DIED"
    assert error_info(("OUT_OF_MEMORY", "x")) == ("OUT_OF_MEMORY", "x")
    assert error_info(b"not a pickle")[0] == "TASK_EXECUTION_EXCEPTION"


def test_from_env_can_turn_recording_off(monkeypatch):
    monkeypatch.setenv("EMBER_TASK_EVENTS", "0")
    off = from_env()
    assert isinstance(off, NoTaskEvents) and not off.enabled
    off.record(tid(1), 0, RUNNING)          # a no-op, and no error
    monkeypatch.setenv("EMBER_TASK_EVENTS", "1")
    monkeypatch.setenv("EMBER_TASK_EVENTS_BUFFER", "lots")
    with pytest.raises(ValueError, match="EMBER_TASK_EVENTS_BUFFER"):
        from_env()


# ------------------------------------------------------------------ wire format
def test_batches_decode_only_to_primitives():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(ValueError, match="primitive"):
        load_events(pickle.dumps([(tid(1), 0, RUNNING, 1.0, Evil())]))
    with pytest.raises(ValueError, match="list of"):
        load_events(pickle.dumps([(tid(1), 0)]))


# ------------------------------------------------------------------ store
def test_a_record_only_moves_forward_whatever_order_events_arrive_in():
    store = TaskEventStore()
    # The executor's batch lands before the owner's.
    store.add([(tid(1), 0, RUNNING, 2.0, None), (tid(1), 0, FINISHED, 3.0, None)],
              node_id="n1", worker_id="w1", pid=42)
    store.add([(tid(1), 0, PENDING_ARGS_AVAIL, 1.0, info()),
               (tid(1), 0, SUBMITTED_TO_WORKER, 1.5, None),
               (tid(1), 0, FINISHED, 3.2, None)], node_id="n0", worker_id="driver", pid=1)
    (row,) = rows(store)
    assert row["state"] == "FINISHED" and row["name"] == "f" and row["job_id"] == "00000001"
    # Node, worker and pid are the executor's, not the owner's.
    assert (row["node_id"], row["worker_id"], row["worker_pid"]) == ("n1", "w1", 42)
    assert [e["state"] for e in row["events"]] == [
        "PENDING_ARGS_AVAIL", "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED"]
    assert (row["creation_time_ms"], row["start_time_ms"], row["end_time_ms"]) == (
        1000, 2000, 3000)     # the first time each state was reached


def test_failure_keeps_the_first_error_and_ends_the_attempt():
    store = TaskEventStore()
    store.add([(tid(1), 0, PENDING_ARGS_AVAIL, 1.0, info()), (tid(1), 0, RUNNING, 2.0, None),
               (tid(1), 0, FAILED, 3.0, ("TASK_EXECUTION_EXCEPTION", "ValueError: boom"))])
    store.add([(tid(1), 0, FAILED, 3.5, ("WORKER_DIED", "later news"))])
    (row,) = rows(store)
    assert row["state"] == "FAILED" and row["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert row["error_message"] == "ValueError: boom" and row["end_time_ms"] == 3000


def test_a_retry_is_a_new_attempt_that_inherits_the_task_description():
    store = TaskEventStore()
    store.add([(tid(1), 0, PENDING_ARGS_AVAIL, 1.0, info("g")),
               (tid(1), 0, FAILED, 2.0, ("WORKER_DIED", "x")),
               (tid(1), 1, PENDING_NODE_ASSIGNMENT, 2.0, None),
               (tid(1), 1, FINISHED, 3.0, None)])
    attempts = rows(store, ("task_id", "=", tid(1).hex()))
    assert [(r["attempt_number"], r["state"], r["name"]) for r in attempts] == [
        (0, "FAILED", "g"), (1, "FINISHED", "g")]
    # A summary counts the task once, by its latest attempt.
    assert store.summary()["summary"]["g"]["state_counts"] == {"FINISHED": 1}


def test_eviction_drops_the_oldest_finished_first_and_counts_it():
    store = TaskEventStore(max_tasks=3)
    store.add([(tid(1), 0, RUNNING, 1.0, None),          # oldest, but still running
               (tid(2), 0, FINISHED, 2.0, None),
               (tid(3), 0, FINISHED, 3.0, None)])
    store.add([(tid(4), 0, RUNNING, 4.0, None)])
    assert [r["task_id"] for r in rows(store)] == [tid(i).hex() for i in (1, 3, 4)]
    assert store.num_evicted == 1 and store.num_dropped == 1
    # With nothing finished left to drop, the oldest goes.
    store.add([(tid(5), 0, RUNNING, 5.0, None), (tid(6), 0, RUNNING, 6.0, None)])
    assert [r["task_id"] for r in rows(store)] == [tid(i).hex() for i in (4, 5, 6)]
    assert store.num_evicted == 3 and len(store) == 3


def test_late_events_of_an_evicted_attempt_do_not_bring_it_back():
    store = TaskEventStore(max_tasks=1)
    store.add([(tid(1), 0, FINISHED, 1.0, None)])
    store.add([(tid(2), 0, RUNNING, 2.0, None)])       # evicts task 1
    store.add([(tid(1), 0, FINISHED, 1.1, None)])      # the owner's copy, late
    assert [r["task_id"] for r in rows(store)] == [tid(2).hex()]


def test_drops_at_the_source_are_added_to_the_count():
    store = TaskEventStore()
    store.add([], dropped=5)
    store.add([(tid(1), 0, RUNNING, 1.0, None)], dropped=2)
    assert store.num_dropped_at_source == 7 and store.num_dropped == 7


def test_query_filters_limits_and_reports_the_total():
    store = TaskEventStore()
    for i in range(10):
        state = FAILED if i % 3 == 0 else FINISHED
        store.add([(tid(i), 0, PENDING_ARGS_AVAIL, float(i), info("f" if i < 5 else "g")),
                   (tid(i), 0, state, i + 0.5, None)], pid=100 + i)
    failed, total = store.query([("state", "=", "failed")])        # case-insensitive
    assert total == 4 and {r["state"] for r in failed} == {"FAILED"}
    some, total = store.query([("name", "!=", "f")], limit=2)
    assert total == 5 and len(some) == 2 and {r["name"] for r in some} == {"g"}
    _, total = store.query([("state", "=", "FINISHED"), ("name", "=", "g")])
    assert total == 3


def test_summary_counts_per_function_and_kind():
    store = TaskEventStore()
    store.add([(tid(1), 0, PENDING_ARGS_AVAIL, 1.0, info("f")), (tid(1), 0, FINISHED, 2.0, None),
               (tid(2), 0, PENDING_ARGS_AVAIL, 1.0, info("f")), (tid(2), 0, FAILED, 2.0, None),
               (tid(3), 0, PENDING_ARGS_AVAIL, 1.0, info("A.m", kind=ACTOR_TASK)),
               (tid(4), 0, PENDING_ARGS_AVAIL, 1.0, info("A.__init__",
                                                          kind="ACTOR_CREATION_TASK"))])
    summary = store.summary()
    assert summary["summary"]["f"]["state_counts"] == {"FINISHED": 1, "FAILED": 1}
    assert summary["summary"]["A"]["type"] == "ACTOR_CREATION_TASK"
    assert (summary["total_tasks"], summary["total_actor_tasks"],
            summary["total_actor_scheduled"]) == (2, 1, 1)


def test_rows_have_the_fields_of_taskstate_and_filters_match_its_columns():
    store = TaskEventStore()
    store.add([(tid(1), 0, PENDING_ARGS_AVAIL, 1.0, info())])
    (row,) = rows(store)
    TaskState.from_row(row, detail=True)     # every field it needs, none it lacks
    assert set(FILTER_COLUMNS) == set(TaskState.FILTERS)
    with pytest.raises(ValueError):
        TaskEventStore(max_tasks=0)


# ------------------------------------------------------------------ filters
def test_filters_parse_validate_and_compare_by_type():
    assert parse_filter("state!=RUNNING") == ("state", "!=", "RUNNING")
    assert parse_filter(" pid = 7 ") == ("pid", "=", "7")
    with pytest.raises(ValueError, match="key=value"):
        parse_filter("state")
    with pytest.raises(ValueError, match="cannot filter tasks by .colour.: filter by one of"):
        check_filters([("colour", "=", "red")], ["state"], "tasks")
    with pytest.raises(ValueError, match="predicate"):
        check_filters([("state", "~", "x")], ["state"], "tasks")
    table = [{"pid": 7, "alive": True, "name": None}, {"pid": 8, "alive": False, "name": "x"}]
    assert apply_filters(table, [("pid", "=", "7")]) == [table[0]]
    assert apply_filters(table, [("alive", "=", "false")]) == [table[1]]
    assert apply_filters(table, [("alive", "=", False)]) == [table[1]]
    assert apply_filters(table, [("name", "!=", "X")]) == [table[0]]


def test_an_actor_constructor_names_its_actor_when_it_runs():
    store = TaskEventStore()
    store.add([(tid(1), 0, PENDING_ARGS_AVAIL, 1.0, info("A.__init__",
                                                          kind="ACTOR_CREATION_TASK"))])
    store.add([(tid(1), 0, RUNNING, 2.0, b"\x07" * 16)], node_id="n", worker_id="w", pid=9)
    (row,) = rows(store)
    assert row["actor_id"] == (b"\x07" * 16).hex() and row["func_or_class_name"] == "A"


def test_listeners_see_each_batch_even_when_sending_fails():
    buf = TaskEventBuffer()
    seen: list = []
    buf.listeners.append(seen.extend)
    buf.listeners.append(lambda events: 1 / 0)        # a broken listener changes nothing

    def fail(events, dropped, timeout):
        raise ConnectionError("gone")

    buf.start(fail)
    buf.stop(flush=False)
    buf.record(tid(1), 0, RUNNING)
    buf.flush()
    assert [e[0] for e in seen] == [tid(1)]

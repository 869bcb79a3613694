"""The state API on a running cluster (issue #7, easy to see into): ``ember.util.state``.

One module cluster runs a small workload (tasks that finish and fail, an
actor, objects) and every list/get/summary is checked against it. Task events
reach the control service about once a second, so checks on tasks wait for
them. The tests that need a cluster of their own (other settings) come last.
"""
from __future__ import annotations

import json
import logging
import os
import time

import pytest

import ember
from ember._private.timeline import chrome_trace
from ember.exceptions import GetTimeoutError
from ember.testing import wait_for_condition
from ember.util import state
from ember.util.state import common


@ember.remote
def square(x):
    return x * x


@ember.remote
def boom():
    raise ValueError("boom in a task")


@ember.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def pid(self):
        return os.getpid()


@ember.remote
class Holder:
    def keep(self, refs):
        self.refs = refs
        return True


class Workload:
    pass


@pytest.fixture(scope="module")
def work(cluster):
    w = Workload()
    w.counter = Counter.options(name="state-counter").remote()
    assert ember.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    assert ember.get(w.counter.incr.remote()) == 1
    w.counter_pid = ember.get(w.counter.pid.remote())
    w.failed = boom.remote()
    with pytest.raises(ValueError):
        ember.get(w.failed)
    w.put = ember.put(b"x" * 300_000)
    w.holder = Holder.remote()
    assert ember.get(w.holder.keep.remote([w.put]))    # a worker borrows it
    names = {"square": 3, "boom": 1, "Counter.incr": 1, "Counter.pid": 1,
             "Holder.keep": 1}

    def all_done() -> bool:
        # Ended (the owner's news) and run (the worker's, which may come later).
        tasks = state.list_tasks(limit=1000)
        done = [t.name for t in tasks if t.state in ("FINISHED", "FAILED") and t.worker_pid]
        return all(done.count(n) >= k for n, k in names.items())

    wait_for_condition(all_done, timeout=30, message="task events of the workload")
    return w


def only(items):
    assert len(items) == 1, items
    return items[0]


# ------------------------------------------------------------------ tasks
def test_finished_and_failed_tasks_have_their_states_and_fields(work):
    ctx = ember.get_runtime_context()
    squares = state.list_tasks(filters=[("name", "=", "square")])
    assert [t.state for t in squares] == ["FINISHED"] * 3
    for t in squares:
        assert isinstance(t, common.TaskState)
        assert t.type == "NORMAL_TASK" and t.func_or_class_name == "square"
        assert t.job_id == ctx.get_job_id() and t.node_id == ctx.get_node_id()
        assert t.worker_pid and t.worker_id and t.attempt_number == 0
        assert t.error_type is None
    failed = only(state.list_tasks(filters=[("state", "=", "FAILED")]))
    assert failed.name == "boom" and failed.task_id == work.failed.task_id().hex()
    assert failed.error_type == "TASK_EXECUTION_EXCEPTION"
    assert failed.error_message is None          # a detail field


def test_detail_fills_error_message_events_and_times(work):
    failed = only(state.list_tasks(filters=[("name", "=", "boom")], detail=True))
    assert "boom in a task" in failed.error_message
    assert [e["state"] for e in failed.events][-2:] == ["RUNNING", "FAILED"]
    assert failed.creation_time_ms <= failed.start_time_ms <= failed.end_time_ms
    assert failed.required_resources == {"CPU": 1.0}


def test_actor_tasks_name_their_actor(work):
    actor_id = work.counter._actor_id.hex()
    calls = state.list_tasks(filters=[("actor_id", "=", actor_id)], detail=True)
    kinds = {t.name: t.type for t in calls}
    assert kinds["Counter.incr"] == "ACTOR_TASK"
    assert kinds["Counter.__init__"] == "ACTOR_CREATION_TASK"
    assert {t.worker_pid for t in calls} == {work.counter_pid}


def test_filters_limit_and_get_task(work):
    assert len(state.list_tasks(filters=[("name", "=", "square")], limit=2)) == 2
    others = state.list_tasks(filters=[("name", "!=", "square"), ("type", "=", "normal_task")],
                              limit=1000)
    assert "square" not in {t.name for t in others} and "boom" in {t.name for t in others}
    got = state.get_task(work.failed.task_id().hex())
    assert isinstance(got, common.TaskState) and got.state == "FAILED"
    assert got.error_message                      # get_* fill every field
    assert state.get_task("00" * 16) is None


def test_summarize_tasks_counts_by_function(work):
    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"]["square"]["state_counts"] == {"FINISHED": 3}
    assert summary["summary"]["boom"]["state_counts"] == {"FAILED": 1}
    assert summary["summary"]["Counter"]["type"] == "ACTOR_CREATION_TASK"
    assert summary["total_tasks"] >= 4 and summary["total_actor_tasks"] >= 3


def test_a_retried_task_shows_each_attempt(cluster, tmp_path):
    @ember.remote(max_retries=1)
    def crash_once(marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return "second try"

    ref = crash_once.remote(str(tmp_path / "crashed"))
    assert ember.get(ref, timeout=60) == "second try"

    def two_attempts():
        got = state.get_task(ref.task_id().hex())
        return isinstance(got, list) and got[-1].state == "FINISHED"

    wait_for_condition(two_attempts, timeout=20)
    first, second = state.get_task(ref.task_id().hex())
    assert (first.attempt_number, first.state, first.error_type) == (0, "FAILED", "WORKER_DIED")
    assert (second.attempt_number, second.state, second.name) == (1, "FINISHED", "crash_once")


# ------------------------------------------------------------------ actors, nodes, jobs
def test_actors_list_get_and_summary(work):
    actor = only(state.list_actors(filters=[("name", "=", "state-counter")]))
    assert isinstance(actor, common.ActorState)
    assert actor.state == "ALIVE" and actor.class_name == "Counter"
    assert actor.pid == work.counter_pid and actor.node_id == ember.get_runtime_context(
        ).get_node_id()
    assert actor.num_restarts is None                  # detail only
    full = state.get_actor(work.counter._actor_id.hex())
    assert full.num_restarts == 0 and full.is_detached is False
    assert state.get_actor("ff" * 16) is None
    summary = state.summarize_actors()["cluster"]
    assert summary["summary"]["Counter"]["state_counts"] == {"ALIVE": 1}


def test_nodes_jobs_and_workers(work):
    ctx = ember.get_runtime_context()
    node = only(state.list_nodes())
    assert node.node_id == ctx.get_node_id() and node.is_head_node and node.state == "ALIVE"
    assert node.resources_total["CPU"] == 2
    assert state.get_node(node.node_id).start_time_ms > 0
    job = only(state.list_jobs(filters=[("job_id", "=", ctx.get_job_id())]))
    assert job.status == "RUNNING" and job.type == "DRIVER"
    assert job.driver_info["pid"] == str(os.getpid())
    workers = state.list_workers(limit=1000)
    driver = only([w for w in workers if w.worker_type == "DRIVER" and w.is_alive])
    assert driver.pid == os.getpid() and driver.worker_id == ctx.get_worker_id()
    assert work.counter_pid in {w.pid for w in workers if w.worker_type == "WORKER"}
    assert state.get_worker(ctx.get_worker_id()).worker_type == "DRIVER"


def test_placement_groups(cluster):
    from ember.util import placement_group, remove_placement_group
    pg = placement_group([{"CPU": 1}], name="state-pg")
    ember.get(pg.ready(), timeout=30)
    try:
        group = only(state.list_placement_groups(filters=[("name", "=", "state-pg")],
                                                 detail=True))
        assert group.state == "CREATED" and group.placement_group_id == pg.id.hex()
        assert group.bundles[0]["unit_resources"] == {"CPU": 1.0}
        assert state.get_placement_group(pg.id.hex()).name == "state-pg"
    finally:
        remove_placement_group(pg)


# ------------------------------------------------------------------ objects
def test_objects_show_the_owner_and_the_borrower(work):
    refs = state.get_objects(work.put.hex())
    by_type = {o.type: o for o in refs}
    assert set(by_type) == {"DRIVER", "WORKER"}
    owner, borrower = by_type["DRIVER"], by_type["WORKER"]
    assert owner.is_owner and owner.pid == os.getpid()
    assert owner.object_size >= 300_000 and owner.in_shared_memory
    assert owner.reference_type == "LOCAL_REFERENCE" and owner.task_status == "FINISHED"
    assert not borrower.is_owner and borrower.object_size is None
    assert borrower.reference_type == "LOCAL_REFERENCE"
    listed = state.list_objects(filters=[("object_id", "=", work.put.hex()),
                                         ("type", "=", "DRIVER")])
    assert only(listed).object_size == owner.object_size
    summary = state.summarize_objects()["cluster"]
    assert summary["total_objects"] >= 1 and summary["total_size_mb"] >= 300_000 / 2 ** 20


# ------------------------------------------------------------------ bad input
def test_bad_filters_and_limits_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="cannot filter tasks by 'colour': filter by one of"):
        state.list_tasks(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="predicate"):
        state.list_actors(filters=[("state", ">", "ALIVE")])
    with pytest.raises(ValueError, match="limit"):
        state.list_nodes(limit=0)
    with pytest.raises(ValueError, match="timeout"):
        state.list_nodes(timeout=-1)


# ------------------------------------------------------------------ timeline
def test_timeline_is_a_valid_chrome_trace_of_the_runs(work):
    rows = [t.asdict() for t in state.list_tasks(detail=True, limit=10_000)]
    trace = json.loads(json.dumps(chrome_trace(rows)))
    runs = [e for e in trace if e["ph"] == "X"]
    assert len(runs) == sum(1 for r in rows if r["start_time_ms"])
    assert {"square", "boom", "Counter.incr"} <= {e["name"] for e in runs}
    for e in runs:
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert isinstance(e["ts"], int) and e["dur"] >= 0
    named = {(e["pid"], e.get("tid")) for e in trace if e["ph"] == "M"}
    assert {(e["pid"], e["tid"]) for e in runs} <= named
    assert any(e["name"] == "process_name" for e in trace)


# ------------------------------------------------------------------ stalled get
def _stall_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ember.get has waited" in r.getMessage()]


def test_a_stalled_get_says_which_task_waits_for_what(cluster, monkeypatch, caplog):
    monkeypatch.setenv("EMBER_GET_STALL_WARNING_S", "1")
    caplog.set_level(logging.WARNING, logger="ember")

    @ember.remote(num_cpus=64)
    def too_big():
        return 1

    ref = too_big.remote()
    with pytest.raises(GetTimeoutError):
        ember.get(ref, timeout=4)
    ember.cancel(ref)
    (message,) = _stall_warnings(caplog)
    assert "too_big" in message and ref.task_id().hex() in message
    assert "no node has" in message and "'CPU': 64.0" in message


def test_a_get_on_an_actor_that_cannot_be_placed_says_so(cluster, monkeypatch, caplog):
    monkeypatch.setenv("EMBER_GET_STALL_WARNING_S", "1")
    caplog.set_level(logging.WARNING, logger="ember")

    @ember.remote(resources={"no-such-thing": 1})
    class Nowhere:
        def f(self):
            return 1

    actor = Nowhere.remote()
    with pytest.raises(GetTimeoutError):
        ember.get(actor.f.remote(), timeout=4)
    ember.kill(actor)
    (message,) = _stall_warnings(caplog)
    assert "Nowhere.f" in message and "not running yet" in message
    assert "no-such-thing" in message


def test_a_long_running_task_is_not_a_stall(cluster, monkeypatch, caplog):
    monkeypatch.setenv("EMBER_GET_STALL_WARNING_S", "1")
    caplog.set_level(logging.WARNING, logger="ember")

    @ember.remote
    def slow():
        time.sleep(3)
        return "done"

    assert ember.get(slow.remote(), timeout=60) == "done"
    assert _stall_warnings(caplog) == []


# ------------------------------------------------------------------ own clusters (last)
def test_the_control_service_keeps_at_most_max_tasks(fresh, monkeypatch):
    monkeypatch.setenv("EMBER_TASK_EVENTS_MAX", "5")
    ember.init(num_cpus=1)
    assert ember.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]

    def bounded_and_warned() -> bool:
        with pytest.warns(RuntimeWarning, match="dropped") as caught:
            tasks = state.list_tasks(limit=100)
        dropped = int(str(caught[0].message).split()[0])
        return len(tasks) <= 5 and dropped >= 15

    wait_for_condition(bounded_and_warned, timeout=20)


def test_task_events_can_be_turned_off(fresh, monkeypatch):
    monkeypatch.setenv("EMBER_TASK_EVENTS", "0")
    ember.init(num_cpus=1)
    assert ember.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    time.sleep(2.5)      # well past the 1 s flush interval
    assert state.list_tasks() == []

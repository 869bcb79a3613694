"""Remote functions end to end on an embedded cluster (issue #2 sections 3-4)."""
from __future__ import annotations

import os
import time

import pytest

import ember
from ember.exceptions import GetTimeoutError, TaskCancelledError, TaskError
from ember.testing import wait_for_condition


@ember.remote
def add(a, b=0):
    return a + b


@ember.remote
def fail(msg):
    raise ValueError(msg)


def test_basic_and_kwargs(cluster):
    assert ember.get(add.remote(1, 2)) == 3
    assert ember.get(add.remote(1, b=5)) == 6
    assert ember.get([add.remote(i, i) for i in range(10)]) == [2 * i for i in range(10)]


def test_top_level_refs_resolved_nested_refs_stay_refs(cluster):
    @ember.remote
    def inspect_args(x, nested):
        return type(x).__name__, type(nested[0]).__name__, ember.get(nested[0])

    r = ember.put(41)
    assert ember.get(inspect_args.remote(r, [r])) == ("int", "ObjectRef", 41)
    assert ember.get(add.remote(add.remote(1, 1), add.remote(2, 2))) == 6


def test_num_returns(cluster):
    @ember.remote(num_returns=3)
    def three():
        return 1, 2, 3

    @ember.remote(num_returns=0)
    def none():
        return None

    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert ember.get(refs) == [1, 2, 3]
    assert none.remote() is None
    bad = three.options(num_returns=2).remote()
    with pytest.raises(ValueError, match="num_returns=2"):
        ember.get(bad[0])


def test_error_is_task_error_and_user_class_with_traceback(cluster):
    ref = fail.remote("boom")
    with pytest.raises(ValueError) as info:
        ember.get(ref)
    err = info.value
    assert isinstance(err, TaskError)
    assert "boom" in str(err)
    assert "in fail" in str(err) and "Traceback" in str(err)
    # Propagates through dependent tasks, still catchable as the user's class.
    with pytest.raises(ValueError, match="boom"):
        ember.get(add.remote(ref, 1))


def test_custom_exception_class(cluster):
    class MyError(Exception):
        pass

    class Unrebuildable(Exception):
        # args do not match __init__, so it cannot be unpickled: still reported.
        def __init__(self, a, b):
            super().__init__(f"{a}-{b}")

    @ember.remote
    def raise_custom(kind):
        raise MyError("mine") if kind else Unrebuildable(1, 2)

    with pytest.raises(MyError, match="mine") as info:
        ember.get(raise_custom.remote(True))
    assert isinstance(info.value, TaskError)
    with pytest.raises(TaskError, match="Unrebuildable: 1-2"):
        ember.get(raise_custom.remote(False))


def test_get_timeout(cluster):
    @ember.remote
    def slow():
        time.sleep(3)

    t0 = time.monotonic()
    with pytest.raises(GetTimeoutError):
        ember.get(slow.remote(), timeout=0.2)
    assert isinstance(GetTimeoutError("x"), TimeoutError)
    assert time.monotonic() - t0 < 2.5


def test_wait(cluster):
    @ember.remote
    def sleep(t):
        time.sleep(t)
        return t

    fast, slow = sleep.remote(0), sleep.remote(2)
    ready, not_ready = ember.wait([slow, fast], num_returns=1, timeout=1.5)
    assert ready == [fast] and not_ready == [slow]
    ready, not_ready = ember.wait([slow, fast], num_returns=2, timeout=0.1)
    assert ready == [fast] and not_ready == [slow]
    ready, _ = ember.wait([slow, fast], num_returns=2)
    assert set(ready) == {slow, fast}


def test_runtime_context_and_env_vars(cluster):
    @ember.remote(runtime_env={"env_vars": {"EMBER_TEST_VAR": "hello"}})
    def ctx():
        c = ember.get_runtime_context()
        return (os.environ.get("EMBER_TEST_VAR"), c.get_task_id(), c.get_node_id(),
                c.get_job_id(), c.get_assigned_resources(), os.getpid())

    var, task_id, node_id, job_id, res, pid = ember.get(ctx.remote())
    assert var == "hello"
    assert task_id and len(task_id) == 32
    assert node_id == ember.get_runtime_context().get_node_id()
    assert job_id == ember.get_runtime_context().get_job_id()
    assert res == {"CPU": 1.0}
    assert pid != os.getpid()
    assert ember.get_runtime_context().get_task_id() is None


def test_resources_queries(cluster):
    assert ember.cluster_resources()["CPU"] == 2
    nodes = ember.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"]
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2)

    @ember.remote(num_cpus=2)
    def hold():
        time.sleep(1.5)

    ref = hold.remote()
    wait_for_condition(lambda: ember.available_resources().get("CPU", 0) == 0, timeout=5)
    ember.get(ref)
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2, timeout=5)


def test_tasks_queue_until_resources_free(cluster):
    @ember.remote(num_cpus=2)
    def whole_node(t):
        start = time.time()
        time.sleep(t)
        return start, time.time()

    (s1, e1), (s2, e2) = ember.get([whole_node.remote(0.3), whole_node.remote(0.3)])
    # Each needs both CPUs, so they cannot overlap.
    assert s2 >= e1 - 0.01 or s1 >= e2 - 0.01


def test_nested_tasks_do_not_deadlock(cluster):
    @ember.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ember.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ember.get(fib.remote(6), timeout=60) == 8


def test_max_calls_restarts_worker(cluster):
    @ember.remote(max_calls=1)
    def pid():
        return os.getpid()

    pids = {ember.get(pid.remote()) for _ in range(3)}
    assert len(pids) == 3


def test_generator_task_streams(cluster):
    @ember.remote(num_returns="streaming")
    def gen(n):
        for i in range(n):
            yield i
            time.sleep(0.2)

    g = gen.remote(3)
    t0 = time.monotonic()
    first = next(g)
    assert ember.get(first) == 0
    assert time.monotonic() - t0 < 0.6  # arrived before the generator finished
    assert [ember.get(r) for r in g] == [1, 2]

    @ember.remote
    def plain_gen():
        yield "a"
        raise KeyError("late")

    refs = list(plain_gen.remote())
    assert ember.get(refs[0]) == "a"
    with pytest.raises(KeyError):
        ember.get(refs[1])


def test_cancel_pending_and_running(cluster):
    @ember.remote
    def sleep_long():
        time.sleep(30)

    running = [sleep_long.remote() for _ in range(2)]
    pending = sleep_long.remote()
    time.sleep(0.5)
    ember.cancel(pending)
    with pytest.raises(TaskCancelledError):
        ember.get(pending, timeout=10)
    for r in running:
        ember.cancel(r)
    for r in running:
        with pytest.raises(TaskCancelledError):
            ember.get(r, timeout=10)
    assert ember.get(add.remote(1, 1), timeout=10) == 2


def test_cancel_force_kills_worker(cluster):
    @ember.remote(max_retries=0)
    def busy():
        while True:
            pass

    ref = busy.remote()
    time.sleep(0.5)
    ember.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        ember.get(ref, timeout=10)
    assert ember.get(add.remote(2, 2), timeout=10) == 4


def test_worker_output_reaches_driver_with_prefix(cluster, capfd):
    @ember.remote
    def talker():
        print("line from task")
        return os.getpid()

    pid = ember.get(talker.remote())

    def seen():
        out, _ = capfd.readouterr()
        seen.acc += out
        return f"(talker pid={pid}) line from task" in seen.acc

    seen.acc = ""
    wait_for_condition(seen, timeout=5)


def test_object_ref_awaitable_and_future(cluster):
    import asyncio
    import pickle

    ref = add.remote(20, 22)
    assert ref.future().result(timeout=10) == 42

    async def main():
        return await add.remote(1, 1)

    assert asyncio.run(main()) == 2
    assert hash(ref) == hash(pickle.loads(pickle.dumps(ref)))
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert {ref: 1}[ref] == 1


def test_worker_crash_surfaces_as_error(cluster):
    from ember.exceptions import WorkerCrashedError

    @ember.remote(max_retries=0)
    def die():
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        ember.get(die.remote(), timeout=20)
    assert ember.get(add.remote(3, 3), timeout=10) == 6


def test_an_interrupted_worker_is_retired(cluster, tmp_path):
    # SIGINT may land in the middle of anything (an import, a lock): the worker
    # that took it answers "cancelled" and exits, and is never reused.
    @ember.remote
    def note_pid_then_sleep(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(30)

    marker = tmp_path / "pid"
    ref = note_pid_then_sleep.remote(str(marker))
    from ember.testing import pid_alive, wait_for_condition
    wait_for_condition(lambda: marker.exists() and marker.read_text(), timeout=10)
    victim = int(marker.read_text())
    ember.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ember.get(ref, timeout=10)

    wait_for_condition(lambda: not pid_alive(victim), timeout=10,
                       message="the interrupted worker is still running")
    assert ember.get(add.remote(3, 4), timeout=30) == 7


def test_wait_on_streaming_generators(cluster):
    @ember.remote(num_returns="streaming")
    def slow_items(delay):
        time.sleep(delay)
        yield "first"
        time.sleep(delay)
        yield "second"

    # slow is cancelled below long before its first item: its delay only has to be
    # beyond what fast and plain can take on a loaded machine (3 s was not, once).
    fast, slow = slow_items.remote(0.05), slow_items.remote(60.0)
    plain = add.remote(1, 2)
    ready, not_ready = ember.wait([slow, fast, plain], num_returns=2, timeout=30)
    assert {id(r) for r in ready} == {id(fast), id(plain)}
    assert [id(r) for r in not_ready] == [id(slow)]
    assert ember.get(next(fast)) == "first"
    ready, _ = ember.wait([slow], timeout=0.1)
    assert ready == []                   # its first item is still seconds away
    ember.cancel(slow)

"""Actors (issue #3): creation, calls, ordering, concurrency, errors, handles."""
from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import ember
from ember.exceptions import ActorDiedError, TaskCancelledError, TaskError
from ember.testing import wait_for_condition


@ember.remote
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def value(self) -> int:
        return self.n

    def pid(self) -> int:
        return os.getpid()

    def fail(self) -> None:
        raise KeyError("no such row")


# ---------------------------------------------------------------- basics
def test_state_lives_in_the_actor(cluster):
    c = Counter.remote(10)
    assert ember.get(c.incr.remote()) == 11
    assert ember.get(c.incr.remote(5)) == 16
    assert ember.get(c.value.remote()) == 16


def test_200_calls_from_one_caller_run_in_order(cluster):
    c = Counter.remote()
    refs = [c.incr.remote() for _ in range(200)]
    assert ember.get(refs) == list(range(1, 201))


def test_order_is_kept_behind_a_call_waiting_for_its_argument(cluster):
    @ember.remote
    def slow(x):
        time.sleep(0.3)
        return x

    @ember.remote
    class Log:
        def __init__(self):
            self.items = []

        def add(self, x):
            self.items.append(x)
            return list(self.items)

    log = Log.remote()
    log.add.remote(slow.remote("first"))   # its argument is not ready for 0.3 s
    last = log.add.remote("second")
    assert ember.get(last) == ["first", "second"]


def test_each_actor_is_its_own_process(cluster):
    a, b = Counter.remote(), Counter.remote()
    pa, pb = ember.get([a.pid.remote(), b.pid.remote()])
    assert pa != pb and os.getpid() not in (pa, pb)


def test_ref_arguments_are_resolved_for_constructor_and_methods(cluster):
    start = ember.put(100)
    c = Counter.remote(start)
    assert ember.get(c.incr.remote(ember.put(1))) == 101


def test_method_error_raises_task_error_and_actor_lives_on(cluster):
    c = Counter.remote(1)
    with pytest.raises(KeyError) as info:
        ember.get(c.fail.remote())
    assert isinstance(info.value, TaskError)
    assert "no such row" in str(info.value) and "Counter.fail" in str(info.value)
    assert ember.get(c.incr.remote()) == 2


def test_constructor_error_fails_every_call_with_its_traceback(cluster):
    @ember.remote
    class Broken:
        def __init__(self):
            raise ValueError("cannot open the database")

        def f(self):
            return 1

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError) as info:
            ember.get(b.f.remote(), timeout=30)
        text = str(info.value)
        assert "cannot open the database" in text and "__init__" in text
        assert "Traceback" in text or "raise ValueError" in text


def test_calls_to_a_dead_actor_fail_quickly(cluster):
    c = Counter.remote()
    ember.get(c.value.remote())
    ember.kill(c)
    with pytest.raises(ActorDiedError, match="killed by ember.kill"):
        ember.get(c.value.remote(), timeout=30)
    start = time.monotonic()
    with pytest.raises(ActorDiedError):
        ember.get(c.value.remote(), timeout=30)
    assert time.monotonic() - start < 2.0   # known dead: no round trip to a missing worker


def test_multiple_returns_and_method_decorator(cluster):
    @ember.remote
    class Pairs:
        @ember.method(num_returns=2)
        def pair(self, x):
            return x, x * 2

        def triple(self, x):
            return x, x, x

    p = Pairs.remote()
    a, b = p.pair.remote(3)
    assert ember.get([a, b]) == [3, 6]
    refs = p.triple.options(num_returns=3).remote(1)
    assert ember.get(refs) == [1, 1, 1]


def test_generator_methods_stream_refs(cluster):
    @ember.remote
    class Source:
        def count(self, n):
            for i in range(n):
                yield i * i

        async def acount(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

    s = Source.remote()
    assert [ember.get(r) for r in s.count.remote(4)] == [0, 1, 4, 9]
    assert [ember.get(r) for r in s.acount.remote(3)] == [0, 1, 2]


# ---------------------------------------------------------------- concurrency
def test_async_actor_runs_20_one_second_calls_concurrently(cluster):
    @ember.remote
    class Sleeper:
        async def nap(self, s):
            await asyncio.sleep(s)
            return s

    s = Sleeper.remote()
    ember.get(s.nap.remote(0))
    start = time.monotonic()
    assert ember.get([s.nap.remote(1) for _ in range(20)]) == [1] * 20
    assert time.monotonic() - start < 5.0


def test_threaded_actor_overlaps_4_sleeps(cluster):
    @ember.remote(max_concurrency=4)
    class Pool:
        def nap(self, s):
            time.sleep(s)
            return threading.get_ident()

    p = Pool.remote()
    ember.get(p.nap.remote(0))
    start = time.monotonic()
    idents = ember.get([p.nap.remote(1) for _ in range(4)])
    assert time.monotonic() - start < 2.5
    assert len(set(idents)) == 4


def test_default_actor_runs_one_call_at_a_time(cluster):
    @ember.remote
    class Single:
        def __init__(self):
            self.active = 0
            self.peak = 0

        def work(self):
            self.active += 1
            self.peak = max(self.peak, self.active)
            time.sleep(0.02)
            self.active -= 1
            return self.peak

    s = Single.remote()
    assert max(ember.get([s.work.remote() for _ in range(10)])) == 1


def test_concurrency_groups_limit_each_group(cluster):
    @ember.remote(concurrency_groups={"io": 2, "compute": 1})
    class Grouped:
        def __init__(self):
            self.lock = threading.Lock()
            self.active = {"io": 0, "compute": 0}
            self.peak = {"io": 0, "compute": 0}

        def _run(self, group):
            with self.lock:
                self.active[group] += 1
                self.peak[group] = max(self.peak[group], self.active[group])
            time.sleep(0.2)
            with self.lock:
                self.active[group] -= 1

        @ember.method(concurrency_group="io")
        def read(self):
            self._run("io")

        @ember.method(concurrency_group="compute")
        def crunch(self):
            self._run("compute")

        def peaks(self):
            return dict(self.peak)

    g = Grouped.remote()
    ember.get([g.read.remote() for _ in range(4)] + [g.crunch.remote() for _ in range(3)])
    assert ember.get(g.peaks.remote()) == {"io": 2, "compute": 1}
    with pytest.raises(ValueError, match="concurrency group 'gpu'"):
        ember.get(g.peaks.options(concurrency_group="gpu").remote())


def test_async_actor_concurrency_group_limit(cluster):
    @ember.remote(concurrency_groups={"one": 1})
    class AsyncGrouped:
        def __init__(self):
            self.active = 0
            self.peak = 0

        @ember.method(concurrency_group="one")
        async def serial(self):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.05)
            self.active -= 1
            return self.peak

    a = AsyncGrouped.remote()
    assert max(ember.get([a.serial.remote() for _ in range(5)])) == 1


def test_cancel_queued_and_async_calls(cluster):
    @ember.remote
    class Slow:
        async def nap(self, s):
            await asyncio.sleep(s)
            return "done"

    s = Slow.remote()
    ref = s.nap.remote(30)
    time.sleep(0.3)
    ember.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ember.get(ref, timeout=10)
    assert ember.get(s.nap.remote(0)) == "done"
    with pytest.raises(ValueError, match="force=True"):
        ember.cancel(s.nap.remote(1), force=True)


# ---------------------------------------------------------------- handles
def test_handles_pass_to_tasks_and_actors_and_come_back(cluster):
    c = Counter.remote()

    @ember.remote
    def bump(handle, times):
        return ember.get([handle.incr.remote() for _ in range(times)])[-1]

    @ember.remote
    class Relay:
        def __init__(self, target):
            self.target = target

        def bump(self):
            return ember.get(self.target.incr.remote(100))

    @ember.remote
    def make():
        return Counter.options(lifetime="detached", name="made-in-task").remote(7)

    assert ember.get(bump.remote(c, 3)) == 3
    relay = Relay.remote(c)
    assert ember.get(relay.bump.remote()) == 103
    boxed = ember.get(ember.put({"h": c}))
    assert ember.get(boxed["h"].value.remote()) == 103
    made = ember.get(make.remote())
    assert ember.get(made.incr.remote()) == 8
    ember.kill(made)


def test_runtime_context_inside_an_actor(cluster):
    @ember.remote
    class Me:
        def ids(self):
            ctx = ember.get_runtime_context()
            return ctx.get_actor_id(), ctx.current_actor

        def ping(self):
            return "pong"

    m = Me.remote()
    actor_id, handle = ember.get(m.ids.remote())
    assert actor_id == m._actor_id.hex()
    assert handle == m and ember.get(handle.ping.remote()) == "pong"
    assert ember.get_runtime_context().get_actor_id() is None
    with pytest.raises(RuntimeError, match="only valid inside an actor"):
        ember.get_runtime_context().current_actor


def test_exit_actor_stops_it_for_good(cluster):
    @ember.remote(max_restarts=3)
    class Quitter:
        def quit(self):
            ember.actor.exit_actor()

        def ping(self):
            return "pong"

    q = Quitter.remote()
    assert ember.get(q.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ember.get(q.quit.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        ember.get(q.ping.remote(), timeout=30)
    with pytest.raises(TypeError, match="outside an actor"):
        ember.actor.exit_actor()


# ---------------------------------------------------------------- names and resources
def test_named_actors_live_in_namespaces(cluster):
    a = Counter.options(name="shared", namespace="ns1").remote(1)
    b = Counter.options(name="shared", namespace="ns2").remote(2)
    assert ember.get(ember.get_actor("shared", namespace="ns1").value.remote()) == 1
    assert ember.get(ember.get_actor("shared", namespace="ns2").value.remote()) == 2
    with pytest.raises(ValueError, match="'shared' already exists in namespace 'ns1'"):
        Counter.options(name="shared", namespace="ns1").remote()
    same = Counter.options(name="shared", namespace="ns1", get_if_exists=True).remote(99)
    assert ember.get(same.value.remote()) == 1
    with pytest.raises(ValueError, match="Failed to look up actor with name 'nobody'"):
        ember.get_actor("nobody")
    ember.kill(a)
    wait_for_condition(lambda: _lookup_fails("shared", "ns1"), timeout=10)
    ember.kill(b)


def _lookup_fails(name, namespace):
    try:
        ember.get_actor(name, namespace=namespace)
        return False
    except ValueError:
        return True


def test_killed_actor_frees_its_resources_at_once(cluster):
    @ember.remote(num_cpus=1)
    class Holder:
        def ping(self):
            return 1

    h = Holder.remote()
    ember.get(h.ping.remote())
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 1.0, timeout=5)
    ember.kill(h)
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2.0, timeout=1,
                       message="CPU not freed within 1 s of ember.kill")


def test_default_actor_needs_a_cpu_to_place_but_holds_none(cluster):
    actors = [Counter.remote() for _ in range(4)]     # more actors than CPUs
    assert ember.get([a.incr.remote() for a in actors]) == [1, 1, 1, 1]
    assert ember.available_resources().get("CPU") == 2.0


def test_actor_stops_when_its_last_handle_is_dropped(cluster):
    @ember.remote(num_cpus=1)
    class Holder:
        def ping(self):
            return 1

    h = Holder.remote()
    ember.get(h.ping.remote())
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 1.0, timeout=5)
    del h
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2.0, timeout=5,
                       message="actor kept its CPU after its last handle was dropped")


def test_calls_made_before_the_last_handle_went_still_run_then_the_actor_stops(cluster):
    @ember.remote(num_cpus=1)
    class Slow:
        def work(self, seconds, size):
            time.sleep(seconds)
            return b"x" * size

    # The handle is gone as soon as the calls are made, before the actor is even up
    # (Ray runs them: ``ember.get(A.remote().f.remote())`` is a common idiom).
    assert ember.get(Slow.remote().work.remote(0, 10), timeout=60) == b"x" * 10
    h = Slow.remote()
    refs = [h.work.remote(0.5, 10), h.work.remote(0.1, 5 << 20)]   # the big one in the store
    del h
    small, big = ember.get(refs, timeout=60)
    assert small == b"x" * 10 and len(big) == 5 << 20
    # ... and then both actors stop and give their CPU back.
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2.0, timeout=10,
                       message="an actor kept its CPU after its calls were done")


def test_restart_after_crash_with_max_restarts_and_task_retries(cluster):
    @ember.remote(max_restarts=1, max_task_retries=1)
    class Fragile:
        def __init__(self):
            self.calls = 0

        def pid(self):
            return os.getpid()

        def crash(self):
            os._exit(1)

        def count(self):
            self.calls += 1
            return self.calls

    f = Fragile.remote()
    first = ember.get(f.pid.remote())
    ember.kill(f, no_restart=False)                   # counts as a crash: it restarts
    second = ember.get(f.pid.remote(), timeout=30)
    assert second != first
    assert ember.get(f.count.remote()) == 1           # state starts over in the new process
    with pytest.raises(ActorDiedError):               # no restarts left: the crash is final
        ember.get(f.crash.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        ember.get(f.count.remote(), timeout=30)


# ---------------------------------------------------------------- bad input
def test_instantiating_an_actor_class_directly_points_to_remote():
    with pytest.raises(TypeError, match=r"use 'Counter.remote\(...\)'"):
        Counter()


def test_unknown_method_fails_at_the_call_site_naming_the_class(cluster):
    c = Counter.remote()
    with pytest.raises(AttributeError, match="actor class 'Counter' has no method 'incrr'"):
        c.incrr.remote()


def test_calling_a_method_directly_points_to_remote(cluster):
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"actor.incr.remote\(...\)"):
        c.incr()


def test_bad_actor_options_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="max_retries"):
        @ember.remote(max_retries=2, max_restarts=1)
        class Nope:
            pass
    with pytest.raises(ValueError, match="get_if_exists"):
        Counter.options(get_if_exists=True)
    with pytest.raises(ValueError, match="num_returns"):
        @ember.remote
        class Bad:
            @ember.method(num_returns=-3)
            def f(self):
                pass


def test_kill_rejects_non_handles(cluster):
    with pytest.raises(TypeError, match="ember.cancel"):
        ember.kill(ember.put(1))
    with pytest.raises(ValueError, match="non-empty actor name"):
        ember.get_actor("")


def test_max_pending_calls_refuses_more_calls(cluster):
    from ember.exceptions import PendingCallsLimitExceeded

    @ember.remote(max_pending_calls=2)
    class Busy:
        def nap(self):
            time.sleep(0.5)

    b = Busy.remote()
    refs = [b.nap.remote(), b.nap.remote()]
    with pytest.raises(PendingCallsLimitExceeded, match="max_pending_calls=2"):
        b.nap.remote()
    ember.get(refs)
    ember.get(b.nap.remote())


def test_builtin_methods_ready_call_and_terminate(cluster):
    c = Counter.remote(5)
    assert ember.get(c.__ray_ready__.remote()) is True
    assert ember.get(c.__ray_call__.remote(lambda self, k: self.n + k, 2)) == 7
    with pytest.raises(ActorDiedError):
        ember.get(c.__ray_terminate__.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        ember.get(c.value.remote(), timeout=30)


def test_list_named_actors(cluster):
    a = Counter.options(name="listed").remote()
    b = Counter.options(name="elsewhere", namespace="other-ns").remote()
    ember.get([a.value.remote(), b.value.remote()])
    assert "listed" in ember.util.list_named_actors()
    assert "elsewhere" not in ember.util.list_named_actors()
    everywhere = ember.util.list_named_actors(all_namespaces=True)
    assert {"name": "elsewhere", "namespace": "other-ns"} in everywhere
    ember.kill(a)
    assert "listed" not in ember.util.list_named_actors()
    ember.kill(b)


def test_leases_held_by_a_killed_actor_are_released(cluster):
    @ember.remote
    def nap():
        time.sleep(30)

    @ember.remote(num_cpus=0)
    class Parent:
        def run(self):
            return ember.get(nap.remote())

    p = Parent.remote()
    p.run.remote()
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 1.0, timeout=10)
    ember.kill(p)   # its child's lease must not outlive it
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2.0, timeout=5,
                       message="a dead actor's child lease kept its CPU")


def test_streaming_call_that_cannot_run_raises_when_iterated(cluster):
    @ember.remote
    class Source:
        def count(self, n):
            yield from range(n)

    s = Source.remote()
    assert [ember.get(r) for r in s.count.remote(2)] == [0, 1]
    gen = s.count.options(concurrency_group="nope").remote(3)
    with pytest.raises(ValueError, match="concurrency group 'nope'"):
        ember.get(next(gen))
    ember.kill(s)
    dead = s.count.remote(3)
    with pytest.raises(ActorDiedError):
        ember.get(next(dead))


def test_constructor_arguments_are_released_with_the_actor(cluster):
    import numpy as np

    from ember._private import worker_state
    big = ember.put(np.ones(1 << 18))          # 2 MiB: lives in shared memory
    oid = big.binary()
    c = Counter.remote(0)

    @ember.remote
    class Holder:
        def __init__(self, arr):
            self.n = int(arr.sum())

        def n_(self):
            return self.n

    h = Holder.remote(big)
    assert ember.get(h.n_.remote()) == 1 << 18
    del big
    core = worker_state.core
    assert core.memory_store.get(oid) is not None    # pinned while the actor may restart
    ember.kill(h)
    wait_for_condition(lambda: core.memory_store.get(oid) is None, timeout=10,
                       message="the dead actor's constructor argument was never freed")
    ember.kill(c)


def test_method_call_options_name_and_rejected_retry_exceptions(cluster):
    c = Counter.remote()
    with pytest.raises(KeyError) as info:
        ember.get(c.fail.options(name="nightly-cleanup").remote())
    assert "nightly-cleanup" in str(info.value)
    with pytest.raises(ValueError, match="retry_exceptions"):
        c.fail.options(retry_exceptions=True)
    with pytest.raises(ValueError, match="retry_exceptions"):
        @ember.method(retry_exceptions=True)
        def f(self):
            pass

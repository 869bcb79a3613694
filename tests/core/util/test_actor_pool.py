"""ember.util.ActorPool: Ray's ActorPool semantics on real actors."""
from __future__ import annotations

import os
import time

import pytest

import ember
from ember.exceptions import ActorDiedError
from ember.util import ActorPool


@ember.remote
class Worker:
    def double(self, v):
        return 2 * v

    def sleep_double(self, v, seconds):
        time.sleep(seconds)
        return 2 * v

    def pid_of(self, v):
        return v, os.getpid()

    def fail(self, v):
        raise ValueError(f"bad value {v}")

    def pair(self, v):
        return v, -v


@pytest.fixture(scope="module")
def workers(cluster):
    """Two long-lived actors, shared by the tests that leave them idle (they go
    with the cluster at the end of the module)."""
    actors = [Worker.remote(), Worker.remote()]
    ember.get([a.double.remote(0) for a in actors])  # started
    return actors


def double(a, v):
    return a.double.remote(v)


def test_map_is_ordered_map_unordered_yields_in_completion_order(workers):
    # Value 0 takes long on one actor while the other actor runs all the rest.
    def call(a, v):
        return a.sleep_double.remote(v, 0.6 if v == 0 else 0.0)

    pool = ActorPool(workers)
    assert list(pool.map(call, range(5))) == [0, 2, 4, 6, 8]
    out = list(pool.map_unordered(call, range(5)))
    assert sorted(out) == [0, 2, 4, 6, 8]
    assert out[-1] == 0, out  # the slow one comes last
    assert not pool.has_next()


def test_each_actor_runs_one_call_at_a_time(workers):
    pool = ActorPool(workers)
    results = list(pool.map(lambda a, v: a.pid_of.remote(v), range(6)))
    assert [v for v, _ in results] == list(range(6))
    assert len({pid for _, pid in results}) == 2
    for v in range(3):
        pool.submit(double, v)
    # Two actors: the third value waits for one of them.
    assert len(pool._future_to_actor) == 2 and len(pool._pending_submits) == 1
    assert [pool.get_next() for _ in range(3)] == [0, 2, 4]


def test_submit_get_next_and_exhaustion(workers):
    pool = ActorPool(workers)
    assert not pool.has_next()
    pool.submit(double, 1)
    pool.submit(double, 2)
    assert pool.has_next()
    assert pool.get_next() == 2
    assert pool.get_next(timeout=10) == 4
    assert not pool.has_next()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next_unordered()


def test_get_next_timeout_keeps_or_ignores_the_call(cluster):
    actors = [Worker.remote(), Worker.remote()]  # private: the slow calls keep them busy
    pool = ActorPool(actors)
    pool.submit(lambda a, v: a.sleep_double.remote(v, 0.6), 1)
    pool.submit(double, 2)
    with pytest.raises(TimeoutError, match="Timed out waiting for result"):
        pool.get_next(timeout=0.05)
    assert pool.has_next()
    assert pool.get_next() == 2  # still the first value: a plain timeout drops nothing
    assert pool.get_next() == 4

    pool.submit(lambda a, v: a.sleep_double.remote(v, 0.6), 1)
    pool.submit(double, 2)
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.05, ignore_if_timedout=True)
    assert pool.get_next(timeout=10) == 4  # moved past the ignored call
    assert not pool.has_next()
    for a in actors:
        ember.kill(a)


def test_get_next_unordered_timeout(cluster):
    actor = Worker.remote()
    pool = ActorPool([actor])
    pool.submit(lambda a, v: a.sleep_double.remote(v, 0.5), 3)
    with pytest.raises(TimeoutError):  # (had it waited for the call, there would be a result)
        pool.get_next_unordered(timeout=0.05)
    assert pool.get_next_unordered(timeout=10) == 6
    pool.submit(double, 1)
    with pytest.raises(ValueError, match=">= 0"):
        pool.get_next(timeout=-1)
    assert pool.get_next() == 2
    ember.kill(actor)


def test_get_next_after_get_next_unordered_is_refused(workers):
    pool = ActorPool(workers)
    pool.submit(lambda a, v: a.sleep_double.remote(v, 0.5), 1)
    pool.submit(double, 2)
    assert pool.get_next_unordered() == 4  # the second call finished first
    # In-order results can no longer be told apart from skipped ones.
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()
    assert pool.get_next_unordered() == 2
    pool.submit(double, 3)
    assert pool.get_next() == 6  # fine again for new submissions


def test_has_free_pop_idle_push(workers):
    a, b = workers
    pool = ActorPool([a])
    assert pool.has_free()
    pool.submit(double, 1)
    assert not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert pool.has_free()
    assert pool.pop_idle() == a
    assert not pool.has_free() and pool.pop_idle() is None

    pool.submit(double, 5)  # no actor: waits
    assert not pool.has_free()
    pool.push(b)  # picks up the waiting value at once
    assert pool.has_next()
    assert pool.get_next(timeout=10) == 10
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(b)
    pool.push(a)
    assert pool.has_free()


def test_errors_reraise_and_the_actor_stays_in_the_pool(workers):
    pool = ActorPool(workers[:1])
    pool.submit(lambda a, v: a.fail.remote(v), 7)
    with pytest.raises(ValueError, match="bad value 7"):
        pool.get_next()
    assert pool.has_free()
    assert list(pool.map(double, [1, 2])) == [2, 4]

    with pytest.raises(TypeError, match="must return an ObjectRef"):
        pool.submit(lambda a, v: v, 1)
    assert pool.has_free() and not pool.has_next()
    with pytest.raises(TypeError, match="fn"):
        pool.submit(None, 1)  # type: ignore[arg-type]


def test_dead_actor_leaves_the_pool(cluster):
    doomed, alive = Worker.remote(), Worker.remote()
    ember.kill(doomed)
    pool = ActorPool([alive, doomed])  # submit takes the last idle actor first
    pool.submit(double, 1)
    with pytest.raises(ActorDiedError):
        pool.get_next()
    assert pool.pop_idle() == alive
    assert pool.pop_idle() is None  # the dead one was not put back
    ember.kill(alive)


def test_methods_with_several_returns(workers):
    pool = ActorPool(workers)
    call = lambda a, v: a.pair.options(num_returns=2).remote(v)  # noqa: E731
    assert list(pool.map(call, [1, 2, 3])) == [[1, -1], [2, -2], [3, -3]]
    assert sorted(pool.map_unordered(call, [1, 2])) == [[1, -1], [2, -2]]


def test_map_discards_results_nobody_fetched(workers):
    pool = ActorPool(workers)
    pool.submit(double, 100)
    assert list(pool.map(double, [1, 2, 3])) == [2, 4, 6]
    pool.submit(double, 100)
    assert sorted(pool.map_unordered(double, [1, 2, 3])) == [2, 4, 6]

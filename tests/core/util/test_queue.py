"""ember.util.queue.Queue: an actor-backed FIFO shared by the driver, tasks and actors."""
from __future__ import annotations

import asyncio
import pickle
import queue as stdlib_queue
import time

import pytest

import ember
from ember.exceptions import ActorDiedError
from ember.util.queue import Empty, Full, Queue


@ember.remote
def produce(q, items, delay=0.0):
    time.sleep(delay)
    for item in items:
        q.put(item)
    return len(items)


@ember.remote
def consume(q, n, delay=0.0):
    time.sleep(delay)
    return [q.get(timeout=30) for _ in range(n)]


@ember.remote
class AsyncConsumer:
    async def take(self, q, n):
        return [await q.get_async(timeout=30) for _ in range(n)]

    async def give(self, q, items):
        for item in items:
            await q.put_async(item, timeout=30)
        return len(items)


def test_fifo_size_empty_full(cluster):
    q = Queue()
    assert q.empty() and q.size() == 0 and not q.full()
    for i in range(5):
        q.put(i)
    assert q.size() == q.qsize() == len(q) == 5
    assert not q.empty() and not q.full()  # unbounded
    assert [q.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert q.empty()
    bounded = Queue(maxsize=2)
    bounded.put("a")
    bounded.put_nowait("b")
    assert bounded.full()
    assert bounded.get_nowait() == "a" and not bounded.full()


def test_get_on_empty_raises_empty_after_the_timeout(cluster):
    q = Queue()
    assert issubclass(Empty, stdlib_queue.Empty) and issubclass(Full, stdlib_queue.Full)
    t0 = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert time.monotonic() - t0 >= 0.25  # it did wait
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False, timeout=100)  # timeout is ignored without block
    with pytest.raises(Empty):
        q.get(timeout=0)


def test_put_on_full_raises_full_after_the_timeout(cluster):
    q = Queue(maxsize=1)
    q.put(1)
    t0 = time.monotonic()
    with pytest.raises(Full):
        q.put(2, timeout=0.3)
    assert time.monotonic() - t0 >= 0.25
    with pytest.raises(stdlib_queue.Full):
        q.put_nowait(2)
    with pytest.raises(Full):
        q.put(2, block=False)
    with pytest.raises(Full):
        q.put(2, timeout=0)
    assert q.size() == 1 and q.get() == 1  # the failed puts left nothing behind


def test_zero_timeout_succeeds_when_possible(cluster):
    q = Queue(maxsize=1)
    q.put("x", timeout=0)
    assert q.get(timeout=0) == "x"


def test_blocking_get_and_put_wake_up(cluster):
    q = Queue(maxsize=1)
    ref = produce.remote(q, ["late"], delay=0.3)
    assert q.get(timeout=30) == "late"  # blocks until the task puts
    assert ember.get(ref) == 1

    q.put("first")
    ref = consume.remote(q, 1, delay=0.3)
    q.put("second", timeout=30)  # blocks until the task makes room
    assert ember.get(ref) == ["first"]
    assert q.get_nowait() == "second"


def test_queue_passed_to_tasks_and_consumed_by_the_driver(cluster):
    q = Queue()
    copy = pickle.loads(pickle.dumps(q))
    copy.put("via copy")
    assert q.get(timeout=10) == "via copy"

    refs = [produce.remote(q, [(p, i) for i in range(5)]) for p in range(2)]
    got = [q.get(timeout=30) for _ in range(10)]
    assert ember.get(refs) == [5, 5]
    assert sorted(got) == [(p, i) for p in range(2) for i in range(5)]
    for p in range(2):  # each producer's items stay in its order
        assert [i for pp, i in got if pp == p] == list(range(5))
    assert q.empty()


def test_batches(cluster):
    q = Queue(maxsize=4)
    q.put_nowait_batch([1, 2, 3])
    assert q.size() == 3
    with pytest.raises(Full, match="room for 1"):
        q.put_nowait_batch(["a", "b"])
    assert q.size() == 3  # all or nothing
    q.put_nowait_batch(iter(["d"]))  # any iterable
    assert q.get_nowait_batch(0) == []
    assert q.get_nowait_batch(2) == [1, 2]
    with pytest.raises(Empty, match="holds 2"):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [3, "d"]
    q.put_nowait_batch([])


def test_async_variants_with_asyncio_run(cluster):
    q = Queue(maxsize=1)

    async def main():
        await q.put_async("a")
        with pytest.raises(Full):
            await q.put_async("b", block=False)
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.1)
        item = await q.get_async(timeout=5)
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        # Concurrent waiters inside one event loop do not block each other.
        getters = [asyncio.ensure_future(q.get_async(timeout=10)) for _ in range(3)]
        for i in range(3):
            await q.put_async(i, timeout=10)
        return item, sorted(await asyncio.gather(*getters))

    assert asyncio.run(main()) == ("a", [0, 1, 2])


def test_async_from_inside_an_async_actor(cluster):
    q = Queue()
    actor = AsyncConsumer.remote()
    taken = actor.take.remote(q, 3)  # waits in the actor for items
    time.sleep(0.1)
    for i in range(3):
        q.put(i)
    assert ember.get(taken, timeout=30) == [0, 1, 2]
    assert ember.get(actor.give.remote(q, ["x", "y"]), timeout=30) == 2
    assert q.get_nowait_batch(2) == ["x", "y"]
    ember.kill(actor)


def test_bad_input(cluster):
    q = Queue(maxsize=1)
    for call in (lambda: q.put(1, timeout=-1), lambda: q.get(timeout=-0.5)):
        with pytest.raises(ValueError, match="non-negative"):
            call()
    with pytest.raises(ValueError, match="non-negative"):
        asyncio.run(q.get_async(timeout=-1))
    with pytest.raises(TypeError, match="timeout"):
        q.get(timeout="1")
    with pytest.raises(ValueError, match="num_items"):
        q.get_nowait_batch(-1)
    with pytest.raises(TypeError, match="num_items"):
        q.get_nowait_batch("2")
    with pytest.raises(TypeError, match="iterable"):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError, match="maxsize"):
        Queue(maxsize="3")
    with pytest.raises(TypeError, match="actor_options"):
        Queue(actor_options=["num_cpus"])
    with pytest.raises(ValueError, match="grace_period_s"):
        q.shutdown(grace_period_s=-1)
    assert q.empty()  # none of the above reached the actor
    q.shutdown()


def test_actor_options_and_shutdown(cluster):
    q = Queue(actor_options={"num_cpus": 0, "max_concurrency": 10})
    q.put(1)
    copy = pickle.loads(pickle.dumps(q))
    q.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(2)
    q.shutdown()  # again: nothing to do
    with pytest.raises(ActorDiedError):
        copy.get(timeout=5)  # other copies see the actor gone

    forced = Queue()
    waiter = consume.remote(forced, 1)  # blocked in the actor when it is killed
    time.sleep(0.2)
    forced.shutdown(force=True)
    with pytest.raises(ActorDiedError):
        ember.get(waiter, timeout=30)

"""ember.util.multiprocessing.Pool: multiprocessing.Pool's API on actors."""
from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid

import cloudpickle
import pytest

import ember
from ember.exceptions import ActorDiedError, ActorError, TaskError
from ember.testing import wait_for_condition
from ember.util.multiprocessing import Pool

# Plain functions are pickled by reference to their module, which the workers
# cannot import (this directory is not on their path); ship them by value, as
# cloudpickle does for a script's __main__.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class BadInput(Exception):
    pass


def square(x):
    return x * x


def slow_square(x, slow=0, seconds=0.3):
    if x == slow:
        time.sleep(seconds)
    return x * x


def fail_on_3(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def raise_custom(x):
    raise BadInput(x)


def pid(_=None):
    return os.getpid()


def remember(tag):
    os.environ["EMBER_TEST_POOL_INIT"] = os.environ.get("EMBER_TEST_POOL_INIT", "") + tag + ";"


def init_state(_):
    return os.getpid(), os.environ.get("EMBER_TEST_POOL_INIT", "")


def fail_init():
    raise RuntimeError("initializer failed")


@pytest.fixture(scope="module")
def pool(cluster):
    p = Pool(processes=2)
    yield p
    p.terminate()


def test_map_and_starmap(pool):
    assert pool.map(square, range(20)) == [x * x for x in range(20)]
    for chunksize in (1, 3, 100):
        assert pool.map(square, range(7), chunksize=chunksize) == [x * x for x in range(7)]
    assert pool.map(square, (x for x in range(3))) == [0, 1, 4]  # any iterable
    assert pool.map(square, []) == []
    assert pool.starmap(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]
    assert pool.starmap_async(divmod, [(7, 2)], chunksize=1).get(timeout=30) == [(3, 1)]
    assert pool.map_async(square, range(4)).get(timeout=30) == [0, 1, 4, 9]


def test_work_spreads_over_every_process(pool):
    # A slow first chunk does not hold up the others: they go to the free actor.
    t0 = time.monotonic()
    pids = pool.map(pid, range(8), chunksize=1)
    assert len(set(pids)) == 2
    r = pool.map_async(slow_square, range(6), chunksize=1)
    assert r.get(timeout=30) == [x * x for x in range(6)]
    assert time.monotonic() - t0 < 20


def test_imap_is_ordered_imap_unordered_is_not(pool):
    items = range(6)
    assert list(pool.imap(slow_square, items)) == [x * x for x in items]
    assert list(pool.imap(slow_square, iter(items), chunksize=4)) == [x * x for x in items]
    out = list(pool.imap_unordered(functools.partial(slow_square, seconds=0.6), items))
    assert sorted(out) == [x * x for x in items]
    assert out[-1] == 0, out  # item 0 is slow: it finishes last
    out = list(pool.imap_unordered(square, range(10), chunksize=3))
    assert sorted(out) == [x * x for x in range(10)]
    assert list(pool.imap(square, [])) == []


def test_imap_next_timeout(pool):
    it = pool.imap(slow_square, [0, 1])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.05)
    assert it.next(timeout=30) == 0
    assert next(it) == 1
    with pytest.raises(StopIteration):
        next(it)


def test_imap_reads_its_input_lazily(pool):
    pulled = []

    def source():
        for i in itertools.count():
            pulled.append(i)
            yield i

    it = pool.imap(square, source())
    assert list(itertools.islice(it, 10)) == [i * i for i in range(10)]
    time.sleep(0.2)
    # Only a few chunks (2 per process) run ahead of the consumer.
    assert len(pulled) <= 10 + 2 * 2 + 1, len(pulled)
    assert pool.map(square, [5]) == [25]  # the abandoned iterator blocks nothing


def test_apply_and_apply_async(pool):
    assert pool.apply(divmod, (7, 2)) == (3, 1)
    assert pool.apply(int, ("ff",), {"base": 16}) == 255
    assert pool.apply(int, ("11",), kwargs={"base": 2}) == 3  # Ray's spelling

    got = []
    done = threading.Event()
    r = pool.apply_async(square, (9,), callback=lambda v: (got.append(v), done.set()))
    assert r.get(timeout=30) == 81
    assert done.wait(10) and got == [81]
    assert r.ready() and r.successful()

    slow = pool.apply_async(time.sleep, (0.3,))
    with pytest.raises(multiprocessing.TimeoutError):
        slow.get(timeout=0.05)
    assert not slow.ready()
    with pytest.raises(ValueError, match="not ready"):
        slow.successful()
    slow.wait(timeout=30)
    assert slow.ready() and slow.successful() and slow.get() is None

    results = []
    finished = threading.Event()
    m = pool.map_async(square, [1, 2], callback=lambda v: (results.append(v), finished.set()))
    assert finished.wait(30) and results == [[1, 4]] and m.get() == [1, 4]


def test_errors_reraise_with_the_original_type(pool):
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.map(fail_on_3, range(6))
    assert isinstance(info.value, TaskError)
    assert "fail_on_3" in str(info.value)  # the remote traceback

    errors = []
    failed = threading.Event()
    r = pool.apply_async(fail_on_3, (3,), error_callback=lambda e: (errors.append(e),
                                                                    failed.set()))
    with pytest.raises(ValueError, match="bad item 3"):
        r.get(timeout=30)
    assert r.ready() and not r.successful()
    assert failed.wait(10) and isinstance(errors[0], ValueError)

    with pytest.raises(BadInput):
        pool.apply(raise_custom, (1,))

    # imap raises at the failing item's place and can go on after it.
    it = pool.imap(fail_on_3, range(6))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(it)
    assert list(it) == [4, 5]

    def broken_input():
        yield 1
        raise KeyError("input broke")

    it = pool.imap(square, broken_input())
    assert next(it) == 1
    with pytest.raises(KeyError, match="input broke"):
        next(it)

    with pytest.raises(TypeError):
        lock = threading.Lock()
        pool.map(lambda x: (lock, x), [1])  # cannot be pickled
    assert pool.map(square, [3]) == [9]  # the pool still works


def test_initializer_runs_once_in_each_process(cluster):
    tag = uuid.uuid4().hex
    with Pool(2, initializer=remember, initargs=(tag,)) as p:
        states = p.map(init_state, range(8), chunksize=1)
    assert len({pid for pid, _ in states}) == 2
    for _, seen in states:
        assert seen.count(tag) == 1, seen

    with pytest.raises(RuntimeError, match="initializer failed"):
        Pool(1, initializer=fail_init)


def test_maxtasksperchild_replaces_actors(cluster):
    with Pool(1, maxtasksperchild=2) as p:
        pids = p.map(pid, range(6), chunksize=1)
    assert len(set(pids)) == 3, pids
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]


def raise_actor_died():
    raise ActorDiedError("", "raised by the function, not the pool's actor")


def test_a_dead_actor_is_replaced(cluster):
    with Pool(1) as p:
        first = p.apply(pid)
        # The actor's process exits mid-call (as with os._exit or a crash).
        with pytest.raises(ActorError):
            p.apply(ember.actor.exit_actor)
        second = p.apply(pid)
        assert second != first
        assert p.map(square, range(4)) == [0, 1, 4, 9]
        # An actor error raised by the function itself leaves the actor alone.
        with pytest.raises(ActorDiedError, match="raised by the function"):
            p.apply(raise_actor_died)
        assert p.apply(pid) == second


def test_closed_pool_refuses_work_and_join_waits(cluster):
    p = Pool(2)
    with pytest.raises(ValueError, match="still running"):
        p.join()
    r = p.map_async(slow_square, range(4), chunksize=1)
    p.close()
    for call in (lambda: p.map(square, [1]), lambda: p.apply_async(square, (1,)),
                 lambda: p.imap(square, [1]), lambda: p.starmap(pow, [(1, 1)]),
                 lambda: p.__enter__()):
        with pytest.raises(ValueError, match="Pool not running"):
            call()
    p.join()  # the work submitted before close() still runs
    assert r.ready() and r.get() == [0, 1, 4, 9]
    p.terminate()  # harmless after close


def test_terminate_and_context_manager(cluster):
    with Pool(2) as p:
        pids = set(p.map(pid, range(4), chunksize=1))
        pending = p.apply_async(time.sleep, (30,))
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(square, [1])
    with pytest.raises(RuntimeError, match="terminated"):
        pending.get(timeout=10)

    def gone(p):
        try:
            os.kill(p, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for_condition(lambda: all(gone(p) for p in pids), timeout=10,
                       message="the pool's actor processes did not exit")


def test_bad_arguments(pool):
    with pytest.raises(ValueError, match="at least 1"):
        Pool(0)
    with pytest.raises(ValueError, match="only 2 CPUs"):
        Pool(3)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError, match="initializer"):
        Pool(1, initializer=5)
    with pytest.raises(ValueError, match="Chunksize must be 1"):
        pool.map(square, [1], chunksize=0)
    with pytest.raises(ValueError, match="Chunksize must be 1"):
        pool.imap(square, [1], chunksize=0)
    with pytest.raises(TypeError, match="callable"):
        pool.map(5, [1])
    with pytest.raises(ValueError, match=">= 0"):
        pool.apply_async(square, (1,)).get(timeout=-1)
    with pytest.raises(NotImplementedError, match="pickled"):
        cloudpickle.dumps(pool)


def test_default_size_and_starting_ember(pool):
    assert pool._processes == 2  # the cluster fixture's CPU count
    # Without a cluster, Pool starts one (ember.init) as Ray does.
    code = ("import ember\n"
            "from ember.util.multiprocessing import Pool\n"
            "assert not ember.is_initialized()\n"
            "with Pool(processes=1) as p:\n"
            "    print(p.map(abs, [-1, -2]), ember.cluster_resources()['CPU'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[1, 2] 1.0", out.stderr

"""The executor's scheduling policy and actor CPU reservation (pure: no cluster)."""
from __future__ import annotations

import pytest

from ember.data._internal.policy import (Budget, OpView, plan_actor_cpus, pool_may_grow,
                                         select_next)

MB = 1024 * 1024


def read(**kw):
    return OpView("Read", is_source=True, **kw)


def mapper(name="Map", **kw):
    return OpView(name, **kw)


def test_downstream_operator_goes_first():
    ops = [read(ready_inputs=5), mapper(ready_inputs=1), mapper("Map2", ready_inputs=1)]
    assert select_next(ops, Budget(cpus_free=2, memory_limit=100 * MB)) == 2


def test_nothing_without_inputs_or_cpus():
    ops = [read(ready_inputs=0), mapper(ready_inputs=0)]
    assert select_next(ops, Budget(cpus_free=2, memory_limit=100 * MB)) is None
    ops = [read(ready_inputs=3)]
    assert select_next(ops, Budget(cpus_free=0.5, memory_limit=100 * MB)) is None
    assert select_next(ops, Budget(cpus_free=1, memory_limit=100 * MB)) == 0


def test_fractional_and_gpu_requests():
    ops = [mapper(ready_inputs=1, cpus_per_task=0.25, gpus_per_task=1)]
    assert select_next(ops, Budget(cpus_free=0.25, gpus_free=0)) is None
    assert select_next(ops, Budget(cpus_free=0.25, gpus_free=1)) == 0


def test_concurrency_cap():
    ops = [read(ready_inputs=4, running=2, max_running=2)]
    assert select_next(ops, Budget(cpus_free=8, memory_limit=100 * MB)) is None
    ops = [read(ready_inputs=4, running=1, max_running=2)]
    assert select_next(ops, Budget(cpus_free=8, memory_limit=100 * MB)) == 0


def test_actor_pool_needs_a_free_slot_not_cpus():
    pool = mapper("Pool", ready_inputs=3, uses_actors=True, free_actor_slots=0)
    assert select_next([pool], Budget(cpus_free=0, memory_limit=100 * MB)) is None
    pool = mapper("Pool", ready_inputs=3, uses_actors=True, free_actor_slots=1)
    # Actors hold their CPUs already: zero free CPUs does not block the call.
    assert select_next([pool], Budget(cpus_free=0, memory_limit=100 * MB)) == 0


def test_memory_budget_blocks_sources_but_not_consumers_of_queued_data():
    ops = [read(ready_inputs=5, running=1, est_output_bytes=10 * MB), mapper(ready_inputs=1)]
    over = Budget(cpus_free=2, memory_limit=50 * MB, memory_used=60 * MB)
    assert select_next(ops, over) == 1            # the map drains the queue
    ops = [read(ready_inputs=5, running=1, est_output_bytes=10 * MB), mapper(ready_inputs=0)]
    assert select_next(ops, over) is None         # the read would add more: wait


def test_source_launch_must_fit_its_estimated_output():
    ops = [read(ready_inputs=5, running=1, est_output_bytes=10 * MB)]
    assert select_next(ops, Budget(cpus_free=2, memory_limit=50 * MB,
                                   memory_used=45 * MB)) is None
    assert select_next(ops, Budget(cpus_free=2, memory_limit=50 * MB,
                                   memory_used=40 * MB)) == 0


def test_progress_guard_when_nothing_runs():
    # One block larger than the whole budget must not hang the dataset.
    ops = [read(ready_inputs=1, est_output_bytes=500 * MB)]
    assert select_next(ops, Budget(cpus_free=2, memory_limit=50 * MB)) == 0
    # ... but not while the consumer has output to read: reading it frees memory.
    assert select_next(ops, Budget(cpus_free=2, memory_limit=50 * MB,
                                   memory_used=60 * MB, consumer_has_output=True)) is None


def test_no_guard_while_something_runs():
    ops = [read(ready_inputs=1, running=1, est_output_bytes=500 * MB)]
    assert select_next(ops, Budget(cpus_free=2, memory_limit=50 * MB)) is None


@pytest.mark.parametrize("total, pools, task_ops, expected", [
    (2, [(2, 1.0)], 1, [0.5]),           # 2 CPUs: two actors share one, reads get the other
    (8, [(2, 1.0)], 1, [1.0]),           # room for everyone: unchanged
    (2, [(2, 1.0)], 0, [1.0]),           # no task operator to protect
    (4, [(2, 2.0)], 1, [1.0]),           # scaled to 1.5, rounded down to a whole CPU
    (1, [(1, 1.0)], 1, [0.5]),           # 1 CPU: keep half for tasks
    (2, [(1, 1.0), (1, 1.0)], 1, [0.5, 0.5]),
    (2, [(2, 0.0)], 1, [0.0]),           # zero-CPU actors stay zero
])
def test_plan_actor_cpus(total, pools, task_ops, expected):
    got = plan_actor_cpus(total, pools, task_ops=task_ops)
    assert got == pytest.approx(expected)
    used = sum(size * cpus for (size, _), cpus in zip(pools, got))
    if task_ops:
        assert used <= total - min(1.0, total / 2) + 1e-9 or used == 0


def test_plan_actor_cpus_never_raises_a_request():
    assert plan_actor_cpus(64, [(2, 0.25)], task_ops=3) == [0.25]


@pytest.mark.parametrize("total,used,actors,new,task_need,expected", [
    # 2 CPUs, one 1-CPU actor, a read still to come: a second actor would take the
    # read's CPU and the pool would wait forever for input (the deadlock CI hit).
    (2, 1, 1, 1, 1, False),
    # The reads are done (nothing unfinished needs a CPU): the pool may take it all.
    (2, 1, 1, 1, 0, True),
    # A running read holds a CPU now, but even once it ends there is no room.
    (4, 3, 2, 1, 2, False),
    # Room for the new actor and for one 1-CPU task afterwards.
    (4, 2, 1, 1, 1, True),
    # Fractional actors leave a whole CPU for the read.
    (2, 0.5, 0.5, 0.5, 1, True),
    # No CPU free right now, even if the reserve would allow it.
    (4, 4, 1, 1, 1, False),
])
def test_pool_may_grow(total, used, actors, new, task_need, expected):
    assert pool_may_grow(total_cpus=total, cpus_used=used, actor_cpus=actors,
                         new_actor_cpus=new, task_cpus_needed=task_need) is expected

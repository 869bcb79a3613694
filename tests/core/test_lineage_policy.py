"""The lineage table (ember._private.lineage): what to re-run, budgets, pinning, eviction.

Pure: no processes. Object ids are built the way the runtime builds them
(task id + return index), so ``task_id_of`` finds the producing task.
"""
from __future__ import annotations

import pytest

from ember._private import ids
from ember._private.lineage import Failure, LineageTable, ObjectStatus


def _task(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _obj(task: int, index: int = 1) -> bytes:
    return ids.object_id_for(_task(task), index)


def _put(n: int) -> bytes:
    return ids.object_id_for(_task(1000 + n), ids.PUT_INDEX_BASE)


def _add(table: LineageTable, task: int, deps=(), retries=3, size=100, returns=1,
         reason: str = "", name: str = "") -> None:
    table.add(_task(task), tuple(_obj(task, i + 1) for i in range(returns)), tuple(deps),
              payload=f"T{task}", retries_left=retries, size=size, name=name or f"t{task}",
              reason=reason)


def _statuses(**by_task: ObjectStatus):
    """status callback: objects of the named tasks (t1=...) have that status, others AVAILABLE."""
    table = {_task(int(k[1:])): v for k, v in by_task.items()}
    return lambda oid: table.get(ids.task_id_of(oid), ObjectStatus.AVAILABLE)


def test_lost_object_resubmits_its_task_and_spends_one_retry():
    table = LineageTable()
    _add(table, 1, retries=3)
    plan = table.recover(_obj(1), _statuses(t1=ObjectStatus.LOST))
    assert plan.error is None
    assert [s.payload for s in plan.resubmit] == ["T1"]
    assert plan.resubmit[0].retries_left == 2
    assert plan.resubmit[0].return_ids == (_obj(1),)
    assert table.retries_left(_task(1)) == 2


def test_lost_and_freed_inputs_are_rebuilt_first_available_ones_are_not():
    table = LineageTable()
    _add(table, 1)                       # lost input
    _add(table, 2)                       # freed input (value dropped, lineage pinned)
    _add(table, 3)                       # available input
    _add(table, 4, deps=[_obj(1), _obj(2), _obj(3)])
    status = _statuses(t1=ObjectStatus.LOST, t2=ObjectStatus.FREED, t4=ObjectStatus.LOST)
    plan = table.recover(_obj(4), status)
    order = [s.payload for s in plan.resubmit]
    assert set(order) == {"T1", "T2", "T4"} and order[-1] == "T4"


def test_chain_is_rebuilt_producers_first_and_shared_inputs_once():
    table = LineageTable()
    _add(table, 1)
    _add(table, 2, deps=[_obj(1)])
    _add(table, 3, deps=[_obj(1)])
    _add(table, 4, deps=[_obj(2), _obj(3)])
    plan = table.recover(_obj(4), lambda oid: ObjectStatus.LOST)
    order = [s.payload for s in plan.resubmit]
    assert order[0] == "T1" and order[-1] == "T4" and sorted(order) == ["T1", "T2", "T3", "T4"]


def test_pending_input_is_waited_for_not_rerun():
    table = LineageTable()
    _add(table, 1)
    _add(table, 2, deps=[_obj(1)])
    plan = table.recover(_obj(2), _statuses(t1=ObjectStatus.PENDING, t2=ObjectStatus.LOST))
    assert [s.payload for s in plan.resubmit] == ["T2"]


def test_budget_runs_out_then_max_attempts():
    table = LineageTable()
    _add(table, 1, retries=1)
    lost = _statuses(t1=ObjectStatus.LOST)
    assert table.recover(_obj(1), lost).error is None
    plan = table.recover(_obj(1), lost)
    assert plan.resubmit == () and plan.error.failure is Failure.MAX_ATTEMPTS
    assert "t1" in plan.error.detail


def test_max_retries_zero_is_never_rebuilt_and_negative_is_unlimited():
    table = LineageTable()
    _add(table, 1, retries=0)
    _add(table, 2, retries=-1)
    assert table.recover(_obj(1), lambda o: ObjectStatus.LOST).error.failure is Failure.MAX_ATTEMPTS
    for _ in range(5):
        plan = table.recover(_obj(2), lambda o: ObjectStatus.LOST)
        assert plan.error is None and plan.resubmit[0].retries_left == -1


def test_update_keeps_the_budget_left_by_ordinary_retries():
    table = LineageTable()
    _add(table, 1, retries=3)
    table.update(_task(1), retries_left=0)     # a crash retry used the rest
    assert table.recover(_obj(1), lambda o: ObjectStatus.LOST).error.failure is Failure.MAX_ATTEMPTS


def test_failed_input_fails_the_plan_and_spends_nothing():
    table = LineageTable()
    _add(table, 1, retries=0)
    _add(table, 2, deps=[_obj(1)], retries=3)
    plan = table.recover(_obj(2), lambda o: ObjectStatus.LOST)
    assert plan.error.failure is Failure.MAX_ATTEMPTS and plan.error.object_id == _obj(1)
    assert _obj(2).hex() in plan.error.detail           # says which object needed it
    assert table.retries_left(_task(2)) == 3


def test_put_objects_cannot_be_rebuilt_nor_their_consumers():
    table = LineageTable()
    assert table.recover(_put(1), lambda o: ObjectStatus.LOST).error.failure is Failure.PUT
    _add(table, 2, deps=[_put(1)])
    plan = table.recover(_obj(2), lambda o: ObjectStatus.LOST)
    assert plan.error.failure is Failure.PUT and plan.error.object_id == _put(1)


def test_actor_calls_are_not_reconstructable_and_unknown_tasks_say_so():
    table = LineageTable()
    _add(table, 1, reason="actor calls are not rebuilt", name="Counter.incr")
    plan = table.recover(_obj(1), lambda o: ObjectStatus.LOST)
    assert plan.error.failure is Failure.NOT_RECONSTRUCTABLE
    assert "Counter.incr" in plan.error.detail and "actor" in plan.error.detail
    assert table.recover(_obj(99), lambda o: ObjectStatus.LOST).error.failure is Failure.UNKNOWN


def test_lineage_goes_when_returns_are_released():
    table = LineageTable()
    _add(table, 1, returns=2)
    table.release(_obj(1, 1))
    assert _task(1) in table
    table.release(_obj(1, 2))
    assert _task(1) not in table and table.total_bytes == 0


def test_freed_input_keeps_its_lineage_while_a_consumer_needs_it():
    table = LineageTable()
    _add(table, 1)
    _add(table, 2, deps=[_obj(1)])
    table.release(_obj(1))                 # the input's value is freed...
    assert _task(1) in table               # ...but its lineage is pinned by t2
    plan = table.recover(_obj(2), _statuses(t1=ObjectStatus.FREED, t2=ObjectStatus.LOST))
    assert [s.payload for s in plan.resubmit] == ["T1", "T2"]
    table.release(_obj(2))                 # the consumer goes: the whole chain goes
    assert len(table) == 0 and table.total_bytes == 0


def test_long_chains_release_without_recursion():
    table = LineageTable()
    n = 5000
    _add(table, 1)
    for i in range(2, n + 1):
        _add(table, i, deps=[_obj(i - 1)])
        table.release(_obj(i - 1))
    plan = table.recover(_obj(n), lambda o: ObjectStatus.FREED if o != _obj(n) else ObjectStatus.LOST)
    assert len(plan.resubmit) == n and plan.resubmit[0].payload == "T1"
    table.release(_obj(n))
    assert len(table) == 0


def test_eviction_drops_the_oldest_lineage_first():
    table = LineageTable(max_bytes=250)
    _add(table, 1, size=100)
    _add(table, 2, size=100)
    _add(table, 3, size=100)              # over the bound: t1 (oldest) goes
    assert table.total_bytes == 200
    assert table.is_evicted(_task(1)) and not table.is_evicted(_task(2))
    plan = table.recover(_obj(1), lambda o: ObjectStatus.LOST)
    assert plan.error.failure is Failure.EVICTED
    assert table.recover(_obj(3), lambda o: ObjectStatus.LOST).error is None


def test_evicted_input_fails_a_consumers_rebuild():
    table = LineageTable(max_bytes=150)
    _add(table, 1, size=100)
    _add(table, 2, deps=[_obj(1)], size=100)   # evicts t1
    plan = table.recover(_obj(2), _statuses(t1=ObjectStatus.FREED, t2=ObjectStatus.LOST))
    assert plan.error.failure is Failure.EVICTED and plan.error.object_id == _obj(1)


def test_evicted_tombstone_goes_with_its_objects_and_unpins_inputs():
    table = LineageTable(max_bytes=150)
    _add(table, 1, size=10)
    table.release(_obj(1))                 # pinned only by t2 below
    _add(table, 2, deps=[_obj(1)], size=100)
    _add(table, 3, size=100)               # evicts t1 then t2 (oldest first)
    assert _task(1) not in table           # t2's eviction unpinned it: gone
    assert table.is_evicted(_task(2))
    table.release(_obj(2))
    assert _task(2) not in table


def test_update_resizes_and_can_evict():
    table = LineageTable(max_bytes=300)
    _add(table, 1, size=100)
    _add(table, 2, size=100)
    table.update(_task(2), retries_left=3, size=250)   # resolved args made it bigger
    assert table.is_evicted(_task(1)) and table.total_bytes == 250


def test_negative_bound_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        LineageTable(max_bytes=-1)

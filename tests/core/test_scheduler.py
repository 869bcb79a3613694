"""LeaseScheduler: the node manager's pure lease state machine.

Every test drives the scheduler with events and checks the exact actions it
returns and the resource accounting it leaves behind; no processes or sockets.
"""
from __future__ import annotations

import contextlib

import pytest

from ember._private.resources import Allocation, NodeResources
from ember._private.scheduler import (
    Grant,
    Infeasible,
    KillWorker,
    LeaseScheduler,
    StartWorker,
)


def make(cpus: float = 4, gpu_ids: list[str] | None = None, **kw) -> LeaseScheduler:
    gpu_ids = gpu_ids or []
    total: dict[str, float] = {"CPU": cpus}
    if gpu_ids:
        total["GPU"] = len(gpu_ids)
    return LeaseScheduler(NodeResources(total, gpu_ids), **kw)


def cpu_free(sched: LeaseScheduler) -> float:
    return sched.resources.available.get("CPU", 0.0)


def grants(actions: list) -> list[Grant]:
    return [a for a in actions if isinstance(a, Grant)]


def only_grant(actions: list, request_id: int, worker_id: str) -> Grant:
    """Assert ``actions`` is exactly one Grant of ``request_id`` to ``worker_id``."""
    assert len(actions) == 1, actions
    (grant,) = actions
    assert isinstance(grant, Grant)
    assert grant.request_id == request_id
    assert grant.worker_id == worker_id
    assert isinstance(grant.allocation, Allocation)
    assert isinstance(grant.lease_id, bytes) and len(grant.lease_id) == 8
    return grant


# ------------------------------------------------------------------ starting workers


def test_request_without_workers_starts_one_then_grants_on_register() -> None:
    sched = make(cpus=4)
    assert sched.request_lease(1, {"CPU": 1}) == [StartWorker("")]
    assert sched.starting == {"": 1}
    assert cpu_free(sched) == 4.0  # nothing is taken while the worker starts
    assert 1 in sched.pending

    grant = only_grant(sched.worker_registered("w1", "", now=0.0), 1, "w1")
    assert grant.allocation.resources == {"CPU": 1}
    assert sched.starting == {"": 0}
    assert sched.pending == {}
    assert sched.lease_of("w1") == grant.lease_id
    assert cpu_free(sched) == 3.0


def test_worker_starts_are_bounded_by_max_starting() -> None:
    sched = make(cpus=8, max_starting=2)
    started = []
    for rid in range(1, 6):
        started += sched.request_lease(rid, {"CPU": 1})
    assert started == [StartWorker(""), StartWorker("")]
    assert sched.starting == {"": 2}

    # One registers: it takes the oldest request, and the freed start slot is
    # used for the requests still without a worker.
    actions = sched.worker_registered("w1", "", now=0.0)
    assert [type(a) for a in actions] == [Grant, StartWorker]
    assert actions[0].request_id == 1 and actions[0].worker_id == "w1"
    assert actions[1] == StartWorker("")
    assert sched.starting == {"": 2}


def test_no_worker_started_for_request_that_cannot_fit_now() -> None:
    sched = make(cpus=1, max_starting=4)
    sched.worker_registered("w1", "", now=0.0)
    only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    # All CPU is leased: a new worker could not run the request anyway.
    assert sched.request_lease(2, {"CPU": 1}) == []
    assert sched.starting.get("", 0) == 0


def test_worker_start_failed_lets_a_new_start_happen() -> None:
    sched = make(cpus=4, max_starting=1)
    assert sched.request_lease(1, {"CPU": 1}) == [StartWorker("")]
    assert sched.request_lease(2, {"CPU": 1}) == []  # the one start slot is busy
    assert sched.starting == {"": 1}

    assert sched.worker_start_failed("") == [StartWorker("")]
    assert sched.starting == {"": 1}
    assert set(sched.pending) == {1, 2}


def test_worker_start_failed_without_pending_starts_nothing() -> None:
    sched = make(cpus=4, max_starting=1)
    sched.request_lease(1, {"CPU": 1})
    sched.cancel_request(1)
    assert sched.worker_start_failed("") == []
    assert sched.starting == {"": 0}


# ------------------------------------------------------------------ ordering


def test_grants_are_fifo() -> None:
    sched = make(cpus=1, max_starting=1)
    assert sched.request_lease(1, {"CPU": 1}) == [StartWorker("")]
    assert sched.request_lease(2, {"CPU": 1}) == []
    assert sched.request_lease(3, {"CPU": 1}) == []

    g1 = only_grant(sched.worker_registered("w1", "", now=0.0), 1, "w1")
    g2 = only_grant(sched.return_lease(g1.lease_id, False, now=1.0), 2, "w1")
    g3 = only_grant(sched.return_lease(g2.lease_id, False, now=2.0), 3, "w1")
    assert len({g1.lease_id, g2.lease_id, g3.lease_id}) == 3
    assert sched.return_lease(g3.lease_id, False, now=3.0) == []
    assert sched.pending == {}
    assert cpu_free(sched) == 1.0


def test_fifo_among_requests_that_fit_when_several_wait() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=0.0)
    g1 = only_grant(sched.request_lease(1, {"CPU": 2}), 1, "w1")
    assert sched.request_lease(2, {"CPU": 1}) == []
    assert sched.request_lease(3, {"CPU": 1}) == []
    actions = sched.return_lease(g1.lease_id, False, now=1.0)
    assert [(g.request_id, g.worker_id) for g in grants(actions)] == [(2, "w1"), (3, "w2")]


def test_no_head_of_line_blocking() -> None:
    sched = make(cpus=4)
    for wid in ("w1", "w2"):
        assert sched.worker_registered(wid, "", now=0.0) == []
    assert sched.num_idle() == 2
    only_grant(sched.request_lease(1, {"CPU": 2}), 1, "w1")
    # 4 CPUs do not fit in the 2 left: the big request waits...
    assert sched.request_lease(2, {"CPU": 4}) == []
    # ...but does not block a later request that fits now.
    g3 = only_grant(sched.request_lease(3, {"CPU": 1}), 3, "w2")
    assert g3.allocation.resources == {"CPU": 1}
    assert set(sched.pending) == {2}
    assert cpu_free(sched) == 1.0


# ------------------------------------------------------------------ returning leases


def test_resources_taken_at_grant_and_released_on_return() -> None:
    sched = make(cpus=4)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=0.0)
    g1 = only_grant(sched.request_lease(1, {"CPU": 1.5}), 1, "w1")
    assert cpu_free(sched) == 2.5
    g2 = only_grant(sched.request_lease(2, {"CPU": 2}), 2, "w2")
    assert cpu_free(sched) == 0.5
    assert sched.num_idle() == 0

    assert sched.return_lease(g1.lease_id, False, now=1.0) == []
    assert cpu_free(sched) == 2.0
    assert sched.lease_of("w1") is None
    assert sched.num_idle() == 1
    assert "w1" in sched.workers  # kept for reuse

    assert sched.return_lease(g2.lease_id, False, now=1.0) == []
    assert sched.resources.available == {"CPU": 4}
    assert sched.leases == {}


def test_return_unknown_or_already_returned_lease_is_noop() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.return_lease(b"\x00" * 8, False, now=1.0) == []
    assert cpu_free(sched) == 1.0
    assert sched.return_lease(g.lease_id, False, now=1.0) == []
    # A second return must not release the CPU twice.
    assert sched.return_lease(g.lease_id, True, now=2.0) == []
    assert cpu_free(sched) == 2.0
    assert "w1" in sched.workers


def test_return_with_kill_worker_emits_kill() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.return_lease(g.lease_id, True, now=1.0) == [KillWorker("w1")]
    assert "w1" not in sched.workers
    assert sched.num_idle() == 0
    assert cpu_free(sched) == 2.0


def test_kill_on_return_then_pending_request_starts_a_new_worker() -> None:
    sched = make(cpus=1)
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.request_lease(2, {"CPU": 1}) == []
    # The killed worker cannot serve request 2, so a new one is started.
    assert sched.return_lease(g.lease_id, True, now=1.0) == [KillWorker("w1"), StartWorker("")]


# ------------------------------------------------------------------ worker death


def test_worker_died_releases_lease_and_grants_pending() -> None:
    sched = make(cpus=1)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=0.0)
    g1 = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.request_lease(2, {"CPU": 1}) == []  # w2 idle, but no CPU
    assert cpu_free(sched) == 0.0

    g2 = only_grant(sched.worker_died("w1"), 2, "w2")
    assert "w1" not in sched.workers
    assert g1.lease_id not in sched.leases
    assert g2.lease_id in sched.leases
    assert cpu_free(sched) == 0.0  # released by w1, taken by request 2
    assert sched.pending == {}

    # The dead worker's lease is gone: returning it now is a no-op.
    assert sched.return_lease(g1.lease_id, False, now=1.0) == []
    assert cpu_free(sched) == 0.0


def test_idle_or_unknown_worker_died_changes_nothing() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    assert sched.worker_died("w1") == []
    assert sched.workers == {}
    assert sched.worker_died("nobody") == []
    assert cpu_free(sched) == 2.0


# ------------------------------------------------------------------ infeasible


def test_infeasible_request_reported_exactly_once_and_stays_pending() -> None:
    sched = make(cpus=2)
    actions = sched.request_lease(1, {"CPU": 3}, name="big_task")
    assert len(actions) == 1
    (inf,) = actions
    assert isinstance(inf, Infeasible)
    assert inf.request_id == 1
    assert "big_task" in inf.message and "CPU: 3" in inf.message and "CPU: 2" in inf.message
    assert 1 in sched.pending
    assert sched.starting.get("", 0) == 0  # no worker started for it

    # Repeated scheduling passes from other events never report it again.
    assert sched.request_lease(2, {"CPU": 1}) == [StartWorker("")]
    g = only_grant(sched.worker_registered("w1", "", now=0.0), 2, "w1")
    assert sched.return_lease(g.lease_id, False, now=1.0) == []
    assert sched.worker_start_failed("") == []
    assert 1 in sched.pending
    assert sched.infeasible() == ["big_task {CPU: 3}"]


def test_infeasible_unknown_resource_and_default_name() -> None:
    sched = make(cpus=2)
    (inf,) = sched.request_lease(7, {"CPU": 1, "TPU": 1})
    assert isinstance(inf, Infeasible) and inf.request_id == 7
    assert "a task requests" in inf.message
    assert sched.infeasible() == ["task {CPU: 1, TPU: 1}"]


def test_cancel_infeasible_request_clears_report() -> None:
    sched = make(cpus=2)
    sched.request_lease(1, {"CPU": 3})
    assert sched.cancel_request(1) == []
    assert sched.pending == {}
    assert sched.infeasible() == []


def test_cancel_request_removes_it() -> None:
    sched = make(cpus=2)
    assert sched.request_lease(1, {"CPU": 1}) == [StartWorker("")]
    assert sched.cancel_request(1) == []
    assert sched.pending == {}
    # The worker that was started for it registers and stays idle.
    assert sched.worker_registered("w1", "", now=0.0) == []
    assert sched.num_idle() == 1
    assert cpu_free(sched) == 2.0
    assert sched.cancel_request(12345) == []  # unknown id: no error


def test_invalid_gpu_request_does_not_poison_scheduler() -> None:
    sched = make(cpus=2, gpu_ids=["0", "1"])
    actions = sched.request_lease(1, {"GPU": 1.5})
    assert len(actions) == 1 and isinstance(actions[0], Infeasible)
    assert "invalid" in actions[0].message
    assert sched.request_lease(2, {"CPU": 1}) == [StartWorker("")]


# ------------------------------------------------------------------ blocking in get


def test_blocked_worker_lends_cpu_so_nested_task_runs() -> None:
    sched = make(cpus=1)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=0.0)
    only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.request_lease(2, {"CPU": 1}) == []  # the child task waits for CPU

    # The parent blocks in get(): its CPU is lent and the child is granted.
    only_grant(sched.set_blocked("w1", True), 2, "w2")
    assert cpu_free(sched) == 0.0
    assert sched.set_blocked("w1", True) == []  # already blocked: no double lend
    assert cpu_free(sched) == 0.0

    # Unblocking takes the CPU back even though that oversubscribes.
    assert sched.set_blocked("w1", False) == []
    assert cpu_free(sched) == -1.0
    assert sched.set_blocked("w1", False) == []
    assert cpu_free(sched) == -1.0


def test_blocked_worker_lending_starts_worker_when_none_idle() -> None:
    sched = make(cpus=1, max_starting=1)
    sched.worker_registered("w1", "", now=0.0)
    g1 = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.request_lease(2, {"CPU": 1}) == []
    assert sched.set_blocked("w1", True) == [StartWorker("")]
    g2 = only_grant(sched.worker_registered("w2", "", now=1.0), 2, "w2")
    assert cpu_free(sched) == 0.0
    sched.set_blocked("w1", False)
    assert cpu_free(sched) == -1.0
    # Returning both leases restores exactly the node's CPU.
    sched.return_lease(g2.lease_id, False, now=2.0)
    sched.return_lease(g1.lease_id, False, now=2.0)
    assert cpu_free(sched) == 1.0


def test_return_while_blocked_does_not_mint_cpu() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    sched.set_blocked("w1", True)
    assert cpu_free(sched) == 2.0
    assert sched.return_lease(g.lease_id, False, now=1.0) == []
    assert cpu_free(sched) == 2.0


def test_worker_died_while_blocked_does_not_mint_cpu() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    sched.set_blocked("w1", True)
    assert sched.worker_died("w1") == []
    assert cpu_free(sched) == 2.0


def test_set_blocked_on_idle_or_unknown_worker_is_noop() -> None:
    sched = make(cpus=1)
    sched.worker_registered("w1", "", now=0.0)
    assert sched.set_blocked("w1", True) == []
    assert sched.set_blocked("ghost", True) == []
    assert cpu_free(sched) == 1.0


# ------------------------------------------------------------------ idle reaping


def test_tick_reaps_idle_workers_beyond_soft_limit_after_timeout() -> None:
    sched = make(cpus=4, soft_limit=1, idle_timeout=10.0)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=1.0)
    sched.worker_registered("w3", "", now=2.0)

    assert sched.tick(now=9.9) == []  # nobody idle long enough
    assert sched.tick(now=10.5) == [KillWorker("w1")]  # the longest idle goes first
    assert set(sched.workers) == {"w2", "w3"}
    assert sched.tick(now=11.0) == [KillWorker("w2")]
    # Down to the soft limit: the last one is kept however long it idles.
    assert sched.tick(now=1000.0) == []
    assert set(sched.workers) == {"w3"}


def test_tick_reaps_several_at_once() -> None:
    sched = make(cpus=4, soft_limit=1, idle_timeout=5.0)
    for i, wid in enumerate(("a", "b", "c")):
        sched.worker_registered(wid, "", now=float(i))
    assert sched.tick(now=100.0) == [KillWorker("a"), KillWorker("b")]
    assert set(sched.workers) == {"c"}


def test_tick_never_reaps_leased_workers_and_return_resets_idle_clock() -> None:
    sched = make(cpus=4, soft_limit=0, idle_timeout=10.0)
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.tick(now=100.0) == []  # busy
    sched.return_lease(g.lease_id, False, now=100.0)
    assert sched.tick(now=105.0) == []  # idle for 5s only
    assert sched.tick(now=110.0) == [KillWorker("w1")]
    assert sched.workers == {}


def test_tick_within_soft_limit_reaps_nothing() -> None:
    sched = make(cpus=4, soft_limit=2, idle_timeout=1.0)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=0.0)
    assert sched.tick(now=1000.0) == []
    assert set(sched.workers) == {"w1", "w2"}


# ------------------------------------------------------------------ GPUs


def test_gpu_requests_get_gpu_ids() -> None:
    sched = make(cpus=4, gpu_ids=["0", "1"])
    for wid in ("w1", "w2", "w3"):
        sched.worker_registered(wid, "", now=0.0)
    g1 = only_grant(sched.request_lease(1, {"CPU": 1, "GPU": 1}), 1, "w1")
    g2 = only_grant(sched.request_lease(2, {"CPU": 1, "GPU": 1}), 2, "w2")
    assert g1.allocation.gpu_ids == ("0",)
    assert g2.allocation.gpu_ids == ("1",)
    assert sched.resources.available.get("GPU", 0.0) == 0.0

    assert sched.request_lease(3, {"GPU": 0.5}) == []  # no GPU share left
    # The first idle worker (in registration order) is reused: w1 again.
    g3 = only_grant(sched.return_lease(g1.lease_id, False, now=1.0), 3, "w1")
    assert g3.allocation.gpu_ids == ("0",)
    assert sched.resources.gpu_free == {"0": 0.5, "1": 0.0}


def test_cpu_only_request_gets_no_gpu_ids() -> None:
    sched = make(cpus=2, gpu_ids=["0"])
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert g.allocation.gpu_ids == ()
    assert sched.resources.gpu_free == {"0": 1.0}


def test_multi_gpu_request_gets_that_many_ids() -> None:
    sched = make(cpus=2, gpu_ids=["0", "1", "2"])
    sched.worker_registered("w1", "", now=0.0)
    g = only_grant(sched.request_lease(1, {"GPU": 2}), 1, "w1")
    assert g.allocation.gpu_ids == ("0", "1")
    assert sched.resources.gpu_free == {"0": 0.0, "1": 0.0, "2": 1.0}


# ------------------------------------------------------------------ runtime envs


def test_env_hash_separates_workers() -> None:
    sched = make(cpus=4)
    assert sched.worker_registered("wa", "a", now=0.0) == []
    # The idle "a" worker must not run a "b" request: start a "b" worker.
    assert sched.request_lease(1, {"CPU": 1}, env_hash="b") == [StartWorker("b")]
    assert sched.starting == {"b": 1}
    assert sched.lease_of("wa") is None
    assert cpu_free(sched) == 4.0

    only_grant(sched.worker_registered("wb", "b", now=1.0), 1, "wb")
    assert sched.starting == {"b": 0}
    only_grant(sched.request_lease(2, {"CPU": 1}, env_hash="a"), 2, "wa")


def test_worker_of_other_env_registering_does_not_take_request() -> None:
    sched = make(cpus=4)
    assert sched.request_lease(1, {"CPU": 1}, env_hash="b") == [StartWorker("b")]
    assert sched.worker_registered("wa", "a", now=0.0) == []
    assert 1 in sched.pending
    assert sched.starting == {"b": 1}


def test_max_starting_is_shared_across_envs() -> None:
    sched = make(cpus=4, max_starting=1)
    assert sched.request_lease(1, {"CPU": 1}, env_hash="a") == [StartWorker("a")]
    assert sched.request_lease(2, {"CPU": 1}, env_hash="b") == []
    # Once "a"'s start is done the slot goes to "b".
    actions = sched.worker_registered("wa", "a", now=0.0)
    assert [type(a) for a in actions] == [Grant, StartWorker]
    assert actions[0].request_id == 1 and actions[0].worker_id == "wa"
    assert actions[1] == StartWorker("b")


# ------------------------------------------------------------------ owner death


def test_owner_died_returns_its_leases_and_kills_their_workers() -> None:
    sched = make(cpus=2)
    sched.worker_registered("w1", "", now=0.0)
    sched.worker_registered("w2", "", now=0.0)
    mine = only_grant(sched.request_lease(1, {"CPU": 1}, owner="driver-a"), 1, "w1")
    only_grant(sched.request_lease(2, {"CPU": 1}, owner="driver-b"), 2, "w2")
    assert sched.request_lease(3, {"CPU": 1}, owner="driver-a") == []   # waits: node full
    assert sched.owner_died("driver-a", now=1.0) == [KillWorker("w1")]
    assert mine.lease_id not in sched.leases
    assert 3 not in sched.pending           # its waiting request is dropped too
    assert cpu_free(sched) == 1.0           # driver-b's lease is untouched
    assert sched.owner_died("driver-a", now=2.0) == []


def test_owner_died_ignores_leases_without_an_owner() -> None:
    sched = make(cpus=1)
    sched.worker_registered("w1", "", now=0.0)
    only_grant(sched.request_lease(1, {"CPU": 1}), 1, "w1")
    assert sched.owner_died("", now=1.0) == []
    assert cpu_free(sched) == 0.0


def test_owner_node_died_releases_leases_of_every_process_there() -> None:
    sched = make(cpus=3)
    for w in ("w1", "w2", "w3"):
        sched.worker_registered(w, "", now=0.0)
    only_grant(sched.request_lease(1, {"CPU": 1}, owner="drv", owner_node="n1"), 1, "w1")
    only_grant(sched.request_lease(2, {"CPU": 1}, owner="wk", owner_node="n1"), 2, "w2")
    only_grant(sched.request_lease(3, {"CPU": 1}, owner="other", owner_node="n2"), 3, "w3")
    actions = sched.owner_node_died("n1", now=1.0)
    assert sorted(a.worker_id for a in actions if isinstance(a, KillWorker)) == ["w1", "w2"]
    assert cpu_free(sched) == 2.0
    assert sched.owner_node_died("", now=2.0) == []


# ------------------------------------------------------------------ retried requests (lost replies)
def test_a_granted_request_id_finds_its_lease_until_it_is_returned():
    s = make(cpus=2)
    s.worker_registered("w1", "", now=0)
    g = only_grant(s.request_lease(1, {"CPU": 1}, client_request_id="owner:7"), 1, "w1")
    lease = s.lease_for_request("owner:7")
    assert lease is not None and lease.lease_id == g.lease_id and lease.worker_id == "w1"
    assert s.lease_for_request("owner:8") is None and s.lease_for_request("") is None
    s.return_lease(g.lease_id, False, now=1)
    assert s.lease_for_request("owner:7") is None


def test_a_queued_request_id_is_found_and_can_be_replaced():
    s = make(cpus=1)
    s.request_lease(1, {"CPU": 1}, client_request_id="owner:1")   # no worker yet: queued
    assert s.pending_for_request("owner:1") == 1
    s.cancel_request(1)
    assert s.pending_for_request("owner:1") is None


def test_leases_remember_retriability_and_grant_order_for_the_memory_monitor():
    s = make(cpus=2)
    s.worker_registered("w1", "", now=0)
    s.worker_registered("w2", "", now=0)
    s.request_lease(1, {"CPU": 1}, name="f", retriable=False)
    s.request_lease(2, {"CPU": 1}, name="actor A", for_actor=True)
    first, second = sorted(s.leases.values(), key=lambda lease: lease.seq)
    assert (first.name, first.retriable, first.for_actor) == ("f", False, False)
    assert (second.name, second.retriable, second.for_actor) == ("actor A", True, True)

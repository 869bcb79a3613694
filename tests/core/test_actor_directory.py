"""ActorDirectory: the control service's pure actor lifecycle state machine.

Every test feeds the directory events and checks the exact actions it returns
(Place, StopWorker) and the state it leaves behind; no processes or sockets.
"""
from __future__ import annotations

from typing import Callable

import pytest

from ember._private.actor_directory import (
    ALIVE,
    DEAD,
    PENDING,
    RESTARTING,
    ActorDirectory,
    ActorRecord,
    NameTaken,
    Place,
    StopWorker,
)

SPEC = object()  # the directory treats the spec as opaque
DRIVER = "driver-worker"

A, B, C, D, E = b"actor-a", b"actor-b", b"actor-c", b"actor-d", b"actor-e"


def register(directory: ActorDirectory, actor_id: bytes = A, *, name: str = "",
             namespace: str = "ns", detached: bool = False, owner: str = DRIVER,
             max_restarts: int = 0) -> ActorRecord:
    """Register a new actor and assert it was created with exactly one Place."""
    record, created, actions = directory.register(
        actor_id, SPEC, name=name, namespace=namespace, detached=detached,
        owner_worker_id=owner, max_restarts=max_restarts)
    assert created is True
    assert actions == [Place(actor_id, 1)]
    assert record.state == PENDING and record.attempt == 1
    return record


def place(directory: ActorDirectory, actor_id: bytes, *, node: str = "node-1",
          lease: bytes = b"lease-1", worker: str = "worker-1") -> ActorRecord:
    """Report the current placement attempt as placed on ``worker``."""
    record = directory.get(actor_id)
    assert record is not None
    assert directory.placed(actor_id, record.attempt, node_id=node, lease_id=lease,
                            worker_id=worker) == []
    return record


def start(directory: ActorDirectory, actor_id: bytes, *, node: str = "node-1",
          lease: bytes = b"lease-1", worker: str = "worker-1") -> ActorRecord:
    """Place the current attempt on ``worker`` and run its constructor: ALIVE."""
    record = place(directory, actor_id, node=node, lease=lease, worker=worker)
    assert directory.created(actor_id, record.attempt, f"{worker}:7000", pid=42) == []
    assert record.state == ALIVE
    return record


def stop_of(actor_id: bytes, node: str = "node-1", lease: bytes = b"lease-1",
            worker: str = "worker-1") -> StopWorker:
    return StopWorker(actor_id, node, lease, worker)


def assert_not_hosted(record: ActorRecord) -> None:
    """The record no longer points at any worker or lease."""
    assert record.worker_id == ""
    assert record.lease_id == b""
    assert record.address == ""


# ------------------------------------------------------------------ registering


def test_register_returns_place_and_stores_the_actor() -> None:
    directory = ActorDirectory()
    record, created, actions = directory.register(
        A, SPEC, name="counter", namespace="ns", detached=True, owner_worker_id=DRIVER,
        max_restarts=3)
    assert (created, actions) == (True, [Place(A, 1)])
    assert directory.get(A) is record
    assert directory.by_name("counter", "ns") is record
    assert record.spec is SPEC
    assert (record.name, record.namespace, record.detached) == ("counter", "ns", True)
    assert (record.owner_worker_id, record.max_restarts) == (DRIVER, 3)
    assert (record.state, record.attempt, record.num_restarts) == (PENDING, 1, 0)
    assert record.version > 0
    assert_not_hosted(record)


def test_register_same_actor_id_again_returns_it_without_a_new_placement() -> None:
    directory = ActorDirectory()
    first = register(directory, A, name="counter")
    version = first.version
    again, created, actions = directory.register(
        A, SPEC, name="counter", namespace="ns", detached=False, owner_worker_id=DRIVER,
        max_restarts=0)
    assert (again, created, actions) == (first, False, [])
    assert again is first
    assert (first.attempt, first.version) == (1, version)


def test_name_taken_in_same_namespace_raises_naming_actor_and_fixes() -> None:
    directory = ActorDirectory()
    first = register(directory, A, name="counter", namespace="team")
    start(directory, A)
    with pytest.raises(NameTaken) as info:
        directory.register(B, SPEC, name="counter", namespace="team", detached=False,
                           owner_worker_id=DRIVER, max_restarts=0)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'counter'" in message and "'team'" in message
    assert "ember.get_actor('counter')" in message
    assert "get_if_exists=True" in message
    # The loser is not recorded and the name still belongs to the first actor.
    assert directory.get(B) is None
    assert directory.by_name("counter", "team") is first
    assert set(directory.actors) == {A}


@pytest.mark.parametrize("state", ["pending", "alive", "restarting"])
def test_name_stays_taken_while_actor_is_not_dead(state: str) -> None:
    directory = ActorDirectory()
    first = register(directory, A, name="counter", max_restarts=1)
    if state != "pending":
        start(directory, A)
    if state == "restarting":
        directory.worker_died("worker-1", "crash")
    assert first.state == {"pending": PENDING, "alive": ALIVE, "restarting": RESTARTING}[state]
    with pytest.raises(NameTaken):
        directory.register(B, SPEC, name="counter", namespace="ns", detached=False,
                           owner_worker_id=DRIVER, max_restarts=0)
    assert directory.by_name("counter", "ns") is first


def test_same_name_in_another_namespace_is_allowed() -> None:
    directory = ActorDirectory()
    a = register(directory, A, name="counter", namespace="one")
    b = register(directory, B, name="counter", namespace="two")
    assert directory.by_name("counter", "one") is a
    assert directory.by_name("counter", "two") is b
    assert directory.by_name("counter", "three") is None


def test_unnamed_actors_never_collide() -> None:
    directory = ActorDirectory()
    register(directory, A)
    register(directory, B)
    assert set(directory.actors) == {A, B}
    assert directory.names == {}
    assert directory.by_name("", "ns") is None


def test_get_if_exists_returns_existing_record_with_created_false() -> None:
    directory = ActorDirectory()
    first = start(directory, register(directory, A, name="counter").actor_id)
    version = first.version
    record, created, actions = directory.register(
        B, SPEC, name="counter", namespace="ns", detached=False, owner_worker_id=DRIVER,
        max_restarts=0, get_if_exists=True)
    assert record is first
    assert (created, actions) == (False, [])
    assert directory.get(B) is None
    assert (first.state, first.version) == (ALIVE, version)


def test_get_if_exists_without_existing_actor_creates_one() -> None:
    directory = ActorDirectory()
    record, created, actions = directory.register(
        A, SPEC, name="counter", namespace="ns", detached=False, owner_worker_id=DRIVER,
        max_restarts=0, get_if_exists=True)
    assert (created, actions) == (True, [Place(A, 1)])
    assert directory.by_name("counter", "ns") is record


def fail_constructor(directory: ActorDirectory) -> list:
    record = directory.get(A)
    assert record is not None
    return directory.creation_failed(A, record.attempt, b"err", "init raised")


# Every way an actor dies must free its name.
DEATHS: dict[str, Callable[[ActorDirectory], list]] = {
    "kill": lambda d: d.kill(A, True, "killed"),
    "creation_failed": fail_constructor,
    "owner_died": lambda d: d.owner_died(DRIVER),
    "owner_worker_died": lambda d: d.worker_died(DRIVER, "owner crashed"),
    "worker_died_no_restarts": lambda d: d.worker_died("worker-1", "crash"),
    "node_died_no_restarts": lambda d: d.node_died("node-1"),
}


@pytest.mark.parametrize("death", list(DEATHS))
def test_dead_actors_name_is_free_again(death: str) -> None:
    directory = ActorDirectory()
    old = register(directory, A, name="counter", max_restarts=0)
    place(directory, A)
    DEATHS[death](directory)
    assert old.state == DEAD
    assert directory.by_name("counter", "ns") is None
    assert directory.names == {}
    new, created, actions = directory.register(
        B, SPEC, name="counter", namespace="ns", detached=False, owner_worker_id="other",
        max_restarts=0)
    assert (created, actions) == (True, [Place(B, 1)])
    assert directory.by_name("counter", "ns") is new
    # The dead record is still known by id, and dying again cannot unbind the new one.
    assert directory.get(A) is old
    assert directory.kill(A, True, "again") == []
    assert directory.by_name("counter", "ns") is new


def test_get_if_exists_with_a_dead_holder_creates_a_new_actor() -> None:
    directory = ActorDirectory()
    register(directory, A, name="counter")
    directory.kill(A, True, "killed")
    record, created, actions = directory.register(
        B, SPEC, name="counter", namespace="ns", detached=False, owner_worker_id=DRIVER,
        max_restarts=0, get_if_exists=True)
    assert (record.actor_id, created, actions) == (B, True, [Place(B, 1)])


# ------------------------------------------------------------------ placement


def test_placed_current_attempt_records_the_worker_without_actions() -> None:
    directory = ActorDirectory()
    record = register(directory, A)
    version = record.version
    assert directory.placed(A, 1, node_id="node-9", lease_id=b"L9", worker_id="w9") == []
    assert (record.node_id, record.lease_id, record.worker_id) == ("node-9", b"L9", "w9")
    assert record.state == PENDING
    assert record.version == version  # not a state change


def test_placed_with_stale_attempt_stops_that_worker() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=1)
    start(directory, A)
    directory.worker_died("worker-1", "crash")  # restarts: attempt 2 is current
    assert record.attempt == 2
    late = directory.placed(A, 1, node_id="node-5", lease_id=b"L5", worker_id="w5")
    assert late == [StopWorker(A, "node-5", b"L5", "w5")]
    # The stale worker is not recorded on the actor.
    assert record.state == RESTARTING
    assert (record.node_id, record.lease_id, record.worker_id) == ("", b"", "")
    # The current attempt is still accepted.
    assert directory.placed(A, 2, node_id="node-6", lease_id=b"L6", worker_id="w6") == []
    assert record.worker_id == "w6"


def test_placed_after_death_stops_that_worker() -> None:
    directory = ActorDirectory()
    record = register(directory, A)
    assert directory.kill(A, True, "killed while being placed") == []  # nothing placed yet
    assert record.state == DEAD
    # The in-flight placement (attempt 1) lands afterwards: give the worker back.
    assert directory.placed(A, 1, node_id="n", lease_id=b"L", worker_id="w") == [
        StopWorker(A, "n", b"L", "w")]
    # Even an attempt number equal to the dead record's is refused.
    assert directory.placed(A, record.attempt, node_id="n", lease_id=b"L2",
                            worker_id="w2") == [StopWorker(A, "n", b"L2", "w2")]
    assert record.state == DEAD
    assert_not_hosted(record)


def test_placed_for_unknown_actor_stops_that_worker() -> None:
    directory = ActorDirectory()
    assert directory.placed(A, 1, node_id="n", lease_id=b"L", worker_id="w") == [
        StopWorker(A, "n", b"L", "w")]
    assert directory.actors == {}


# ------------------------------------------------------------------ creation


def test_created_makes_actor_alive_and_bumps_version() -> None:
    directory = ActorDirectory()
    record = place(directory, register(directory, A).actor_id)
    version = record.version
    assert directory.created(A, 1, "10.0.0.1:7000", pid=1234) == []
    assert record.state == ALIVE
    assert (record.address, record.pid) == ("10.0.0.1:7000", 1234)
    assert record.version > version
    assert record.worker_id == "worker-1"


def test_created_with_stale_attempt_is_ignored() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=1)
    start(directory, A)
    directory.worker_died("worker-1", "crash")
    version = record.version
    assert directory.created(A, 1, "old:1") == []
    assert (record.state, record.address, record.version) == (RESTARTING, "", version)


def test_created_after_death_or_for_unknown_actor_is_ignored() -> None:
    directory = ActorDirectory()
    record = place(directory, register(directory, A).actor_id)
    directory.kill(A, True, "killed")
    version = record.version
    assert directory.created(A, 1, "late:1") == []
    assert directory.created(A, record.attempt, "late:1") == []
    assert (record.state, record.address, record.version) == (DEAD, "", version)
    assert directory.created(B, 1, "x:1") == []
    assert directory.get(B) is None


def test_versions_strictly_increase_on_every_state_change() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=1)
    seen = [(record.state, record.version)]

    def note() -> None:
        seen.append((record.state, record.version))

    place(directory, A)
    assert record.version == seen[-1][1]  # placement alone is not a state change
    directory.created(A, 1, "a:1")
    note()
    directory.worker_died("worker-1", "crash")
    note()
    start(directory, A, worker="worker-2")
    note()
    directory.kill(A, True, "done")
    note()
    assert [state for state, _ in seen] == [PENDING, ALIVE, RESTARTING, ALIVE, DEAD]
    versions = [version for _, version in seen]
    assert all(a < b for a, b in zip(versions, versions[1:])), versions
    # Events that change nothing leave the version alone.
    directory.kill(A, True, "again")
    directory.created(A, record.attempt, "x:1")
    assert record.version == versions[-1]


# ------------------------------------------------------------------ constructor failure


@pytest.mark.parametrize("max_restarts", [0, 3, -1])
def test_creation_failed_buries_actor_keeps_error_and_stops_its_worker(
        max_restarts: int) -> None:
    directory = ActorDirectory()
    record = place(directory, register(directory, A, name="counter",
                                       max_restarts=max_restarts).actor_id)
    version = record.version
    actions = directory.creation_failed(A, 1, b"pickled ValueError", "__init__ raised")
    assert actions == [stop_of(A)]
    assert record.state == DEAD  # a raising constructor is never retried
    assert record.creation_error == b"pickled ValueError"
    assert record.death_cause == "__init__ raised"
    assert record.num_restarts == 0
    assert record.version > version
    assert_not_hosted(record)
    assert directory.by_name("counter", "ns") is None


def test_creation_failed_before_placement_buries_without_stopping() -> None:
    directory = ActorDirectory()
    record = register(directory, A)
    assert directory.creation_failed(A, 1, b"", "could not start a worker") == []
    assert (record.state, record.creation_error, record.death_cause) == (
        DEAD, b"", "could not start a worker")


def test_creation_failed_with_stale_attempt_or_after_death_is_ignored() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=1)
    start(directory, A)
    directory.worker_died("worker-1", "crash")
    place(directory, A, worker="worker-2", lease=b"lease-2")
    # The first attempt's failure arrives late: it must not bury the restart.
    assert directory.creation_failed(A, 1, b"old", "old") == []
    assert (record.state, record.creation_error, record.worker_id) == (
        RESTARTING, b"", "worker-2")

    directory.kill(A, True, "killed")
    version = record.version
    assert directory.creation_failed(A, record.attempt, b"late", "late") == []
    assert (record.creation_error, record.death_cause, record.version) == (
        b"", "killed", version)
    assert directory.creation_failed(B, 1, b"x", "x") == []


# ------------------------------------------------------------------ worker death, restarts


def test_worker_died_with_restarts_left_restarts_the_actor() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, name="counter",
                                       max_restarts=2).actor_id)
    version = record.version
    actions = directory.worker_died("worker-1", "its worker crashed")
    assert actions == [stop_of(A), Place(A, 2)]
    assert record.state == RESTARTING
    assert (record.num_restarts, record.attempt) == (1, 2)
    assert record.death_cause == "its worker crashed"
    assert record.node_id == ""
    assert_not_hosted(record)
    assert record.version > version
    assert directory.by_name("counter", "ns") is record  # the name survives a restart


def test_restarts_stop_once_max_restarts_is_used_up() -> None:
    directory = ActorDirectory()
    record = register(directory, A, name="counter", max_restarts=2)
    for restart in (1, 2):
        worker = f"worker-{restart}"
        start(directory, A, worker=worker, lease=worker.encode())
        assert directory.worker_died(worker, "crash") == [
            stop_of(A, lease=worker.encode(), worker=worker), Place(A, restart + 1)]
        assert (record.state, record.num_restarts) == (RESTARTING, restart)
    start(directory, A, worker="worker-3", lease=b"L3")
    assert directory.worker_died("worker-3", "crash again") == [
        stop_of(A, lease=b"L3", worker="worker-3")]
    assert record.state == DEAD
    assert record.num_restarts == 2
    assert record.death_cause == "crash again"
    assert record.attempt == 4  # a late result of attempt 3 is now stale
    assert directory.by_name("counter", "ns") is None


def test_max_restarts_zero_dies_on_first_worker_death() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=0).actor_id)
    assert directory.worker_died("worker-1", "crash") == [stop_of(A)]
    assert (record.state, record.num_restarts) == (DEAD, 0)
    assert_not_hosted(record)


def test_max_restarts_minus_one_restarts_forever() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=-1)
    for n in range(1, 51):
        worker = f"worker-{n}"
        start(directory, A, worker=worker)
        assert directory.worker_died(worker, "crash") == [
            stop_of(A, worker=worker), Place(A, n + 1)]
        assert (record.state, record.num_restarts) == (RESTARTING, n)


def test_worker_died_during_constructor_counts_as_a_restart() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=1)
    place(directory, A)  # PENDING, constructor running
    assert directory.worker_died("worker-1", "died in __init__") == [stop_of(A), Place(A, 2)]
    assert (record.state, record.num_restarts) == (RESTARTING, 1)
    place(directory, A, worker="worker-2", lease=b"L2")  # RESTARTING, constructor running
    assert directory.worker_died("worker-2", "died again") == [
        stop_of(A, lease=b"L2", worker="worker-2")]
    assert (record.state, record.num_restarts) == (DEAD, 1)


def test_worker_died_for_pending_actor_not_yet_placed_is_noop() -> None:
    directory = ActorDirectory()
    record = register(directory, A, max_restarts=-1)
    version = record.version
    assert directory.worker_died("worker-1", "crash") == []
    assert (record.state, record.attempt, record.num_restarts, record.version) == (
        PENDING, 1, 0, version)


@pytest.mark.parametrize("report", ["worker", "node"])
def test_death_report_with_empty_id_leaves_unplaced_actors_alone(report: str) -> None:
    # An actor waiting for a worker has worker_id == node_id == "": a report
    # carrying an empty id matches it, and must not count as losing a worker.
    directory = ActorDirectory()
    pending = register(directory, A, max_restarts=-1, owner="w-owner")
    restarting = start(directory, register(directory, B, max_restarts=-1,
                                           owner="w-owner").actor_id)
    directory.worker_died("worker-1", "crash")
    assert (restarting.state, restarting.attempt, restarting.worker_id) == (RESTARTING, 2, "")
    versions = (pending.version, restarting.version)
    if report == "worker":
        assert directory.worker_died("", "bogus") == []
    else:
        assert directory.node_died("") == []
    assert (pending.state, pending.attempt, pending.num_restarts) == (PENDING, 1, 0)
    assert (restarting.state, restarting.attempt, restarting.num_restarts) == (
        RESTARTING, 2, 1)
    assert (pending.version, restarting.version) == versions
    # The placement in flight for the restart is still the current one.
    assert directory.placed(B, 2, node_id="n", lease_id=b"L", worker_id="w") == []


def test_worker_died_for_another_worker_or_a_dead_actor_is_noop() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=-1).actor_id)
    assert directory.worker_died("worker-other", "crash") == []
    assert (record.state, record.worker_id) == (ALIVE, "worker-1")
    directory.kill(A, True, "killed")
    version = record.version
    assert directory.worker_died("worker-1", "crash") == []
    assert (record.state, record.version, record.death_cause) == (DEAD, version, "killed")


# ------------------------------------------------------------------ owner death


def test_owner_worker_death_buries_owned_actors_but_not_detached_ones() -> None:
    directory = ActorDirectory()
    # The owner is itself an actor (on worker "w-owner") that may restart.
    owner = start(directory, register(directory, A, max_restarts=1).actor_id,
                  node="n0", lease=b"L0", worker="w-owner")
    child = start(directory, register(directory, B, name="child", owner="w-owner",
                                      max_restarts=-1).actor_id,
                  node="n1", lease=b"L1", worker="w-child")
    unplaced = register(directory, C, owner="w-owner")
    detached = start(directory, register(directory, D, owner="w-owner",
                                         detached=True).actor_id,
                     node="n1", lease=b"L3", worker="w-detached")
    stranger = start(directory, register(directory, E, owner="w-other").actor_id,
                     node="n1", lease=b"L4", worker="w-stranger")

    actions = directory.worker_died("w-owner", "owner crashed")
    assert actions == [
        StopWorker(A, "n0", b"L0", "w-owner"), Place(A, 2),  # the owner restarts
        StopWorker(B, "n1", b"L1", "w-child"),               # its child dies, restarts or not
    ]                                                        # the unplaced child: nothing to stop
    assert (owner.state, owner.num_restarts) == (RESTARTING, 1)
    assert (child.state, child.num_restarts) == (DEAD, 0)
    assert "owner" in child.death_cause and "detached" in child.death_cause
    assert directory.by_name("child", "ns") is None
    assert unplaced.state == DEAD
    assert (detached.state, detached.worker_id) == (ALIVE, "w-detached")
    assert (stranger.state, stranger.worker_id) == (ALIVE, "w-stranger")
    # The unplaced child's in-flight placement lands later: its worker goes back.
    assert directory.placed(C, 1, node_id="n2", lease_id=b"L2", worker_id="w2") == [
        StopWorker(C, "n2", b"L2", "w2")]


def test_owner_died_buries_owned_actors_but_not_detached_ones() -> None:
    directory = ActorDirectory()
    owned = start(directory, register(directory, A, max_restarts=-1).actor_id)
    unplaced = register(directory, B)
    detached = start(directory, register(directory, C, detached=True).actor_id,
                     lease=b"L3", worker="worker-3")
    stranger = start(directory, register(directory, D, owner="other-driver").actor_id,
                     lease=b"L4", worker="worker-4")

    assert directory.owner_died(DRIVER) == [stop_of(A)]
    assert (owned.state, owned.num_restarts) == (DEAD, 0)
    assert "owner" in owned.death_cause and "detached" in owned.death_cause
    assert_not_hosted(owned)
    assert unplaced.state == DEAD
    assert detached.state == ALIVE
    assert stranger.state == ALIVE
    # A second report of the same exit changes nothing.
    assert directory.owner_died(DRIVER) == []
    assert directory.owner_died("unknown-driver") == []


@pytest.mark.parametrize("report", ["worker_died", "owner_died"])
def test_owner_death_leaves_already_dead_owned_actors_alone(report: str) -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, owner="w-owner").actor_id)
    assert directory.kill(A, True, "killed first") == [stop_of(A)]
    version, attempt = record.version, record.attempt
    if report == "worker_died":
        assert directory.worker_died("w-owner", "owner crashed") == []
    else:
        assert directory.owner_died("w-owner") == []
    assert (record.state, record.death_cause) == (DEAD, "killed first")
    assert (record.version, record.attempt) == (version, attempt)


def test_owner_died_buries_restarting_owned_actor() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=-1).actor_id)
    directory.worker_died("worker-1", "crash")
    place(directory, A, worker="worker-2", lease=b"L2")
    assert directory.owner_died(DRIVER) == [stop_of(A, lease=b"L2", worker="worker-2")]
    assert record.state == DEAD
    assert directory.created(A, 2, "late:1") == []  # the restart's result is stale
    assert record.state == DEAD


# ------------------------------------------------------------------ kill


def test_kill_no_restart_buries_and_stops_worker_even_if_restartable() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, name="counter",
                                       max_restarts=-1).actor_id)
    version = record.version
    assert directory.kill(A, True, "killed by ember.kill()") == [stop_of(A)]
    assert (record.state, record.num_restarts) == (DEAD, 0)
    assert record.death_cause == "killed by ember.kill()"
    assert record.version > version
    assert_not_hosted(record)
    assert directory.by_name("counter", "ns") is None


def test_kill_allowing_restart_restarts_when_restarts_left() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, name="counter",
                                       max_restarts=1).actor_id)
    assert directory.kill(A, False, "restart please") == [stop_of(A), Place(A, 2)]
    assert (record.state, record.num_restarts, record.attempt) == (RESTARTING, 1, 2)
    assert record.death_cause == "restart please"
    assert directory.by_name("counter", "ns") is record
    # That used the only restart: the next kill buries it.
    start(directory, A, worker="worker-2", lease=b"L2")
    assert directory.kill(A, False, "again") == [stop_of(A, lease=b"L2", worker="worker-2")]
    assert (record.state, record.num_restarts) == (DEAD, 1)


def test_kill_allowing_restart_without_restarts_left_buries() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=0).actor_id)
    assert directory.kill(A, False, "killed") == [stop_of(A)]
    assert (record.state, record.num_restarts) == (DEAD, 0)


@pytest.mark.parametrize("no_restart", [True, False])
def test_kill_unknown_or_dead_actor_is_noop(no_restart: bool) -> None:
    directory = ActorDirectory()
    assert directory.kill(A, no_restart, "nobody") == []
    assert directory.actors == {}
    record = start(directory, register(directory, B, max_restarts=-1).actor_id)
    directory.kill(B, True, "first")
    version, attempt = record.version, record.attempt
    assert directory.kill(B, no_restart, "second") == []
    assert (record.state, record.death_cause) == (DEAD, "first")
    assert (record.version, record.attempt) == (version, attempt)


@pytest.mark.parametrize("no_restart", [True, False])
def test_kill_pending_actor_buries_it(no_restart: bool) -> None:
    # PENDING --killed--> DEAD, whatever no_restart says (see the module diagram).
    directory = ActorDirectory()
    in_flight = register(directory, A, max_restarts=-1)
    constructing = place(directory, register(directory, B, max_restarts=-1).actor_id)
    assert directory.kill(A, no_restart, "killed") == []  # nothing placed yet
    assert directory.kill(B, no_restart, "killed") == [stop_of(B)]
    assert (in_flight.state, constructing.state) == (DEAD, DEAD)
    assert (in_flight.num_restarts, constructing.num_restarts) == (0, 0)
    assert directory.placed(A, 1, node_id="n", lease_id=b"L", worker_id="w") == [
        StopWorker(A, "n", b"L", "w")]
    assert directory.created(B, 1, "late:1") == []
    assert constructing.state == DEAD


@pytest.mark.parametrize("no_restart", [True, False])
def test_kill_restarting_actor_buries_it(no_restart: bool) -> None:
    # RESTARTING --killed--> DEAD, whatever no_restart says (see the module diagram).
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=-1).actor_id)
    directory.worker_died("worker-1", "crash")
    place(directory, A, worker="worker-2", lease=b"L2")
    assert directory.kill(A, no_restart, "killed") == [
        stop_of(A, lease=b"L2", worker="worker-2")]
    assert (record.state, record.num_restarts) == (DEAD, 1)


# ------------------------------------------------------------------ node death


def test_node_died_restarts_or_buries_its_actors_without_stopping_workers() -> None:
    node = "node-0123456789abcdef"
    directory = ActorDirectory()
    restartable = start(directory, register(directory, A, name="r", max_restarts=1).actor_id,
                        node=node, lease=b"LA", worker="wa")
    mortal = start(directory, register(directory, B, name="m", max_restarts=0).actor_id,
                   node=node, lease=b"LB", worker="wb")
    constructing = place(directory, register(directory, C, max_restarts=-1).actor_id,
                         node=node, lease=b"LC", worker="wc")
    elsewhere = start(directory, register(directory, D, max_restarts=-1).actor_id,
                      node="node-2", lease=b"LD", worker="wd")
    unplaced = register(directory, E, max_restarts=-1)

    # Only new placements: nothing is left to stop on a dead node.
    assert directory.node_died(node) == [Place(A, 2), Place(C, 2)]
    cause = f"its node {node[:12]} died"
    assert (restartable.state, restartable.num_restarts, restartable.death_cause) == (
        RESTARTING, 1, cause)
    assert restartable.node_id == ""
    assert_not_hosted(restartable)
    assert (mortal.state, mortal.death_cause) == (DEAD, cause)
    assert directory.by_name("m", "ns") is None
    assert directory.by_name("r", "ns") is restartable
    assert (constructing.state, constructing.num_restarts) == (RESTARTING, 1)
    assert (elsewhere.state, elsewhere.worker_id) == (ALIVE, "wd")
    assert (unplaced.state, unplaced.attempt) == (PENDING, 1)
    # The same node reported again, or an unknown node, changes nothing.
    assert directory.node_died(node) == []
    assert directory.node_died("node-unknown") == []
    assert (restartable.state, restartable.num_restarts) == (RESTARTING, 1)


def test_node_died_leaves_actors_already_dead_there_alone() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=-1).actor_id, node="n1")
    assert directory.kill(A, True, "killed first") == [stop_of(A, node="n1")]
    version, attempt = record.version, record.attempt
    assert directory.node_died("n1") == []  # it must not come back to life
    assert (record.state, record.num_restarts, record.death_cause) == (DEAD, 0, "killed first")
    assert (record.version, record.attempt) == (version, attempt)


def test_node_died_then_restart_elsewhere_and_die_there_uses_up_restarts() -> None:
    directory = ActorDirectory()
    record = start(directory, register(directory, A, max_restarts=1).actor_id, node="n1")
    assert directory.node_died("n1") == [Place(A, 2)]
    start(directory, A, node="n2", lease=b"L2", worker="worker-2")
    assert directory.node_died("n1") == []  # it no longer lives there
    assert directory.node_died("n2") == []  # out of restarts: buried, nothing to stop
    assert (record.state, record.num_restarts) == (DEAD, 1)


# ------------------------------------------------------------------ restart of the control service

def test_every_change_is_marked_for_the_store() -> None:
    directory = ActorDirectory()
    register(directory, A)
    assert directory.changed == {A}
    directory.changed.clear()
    place(directory, A)                    # placed() does not bump the version
    assert directory.changed == {A}
    directory.changed.clear()
    register(directory, B)
    start(directory, A)
    assert directory.changed == {A, B}


def _stored_directory() -> tuple[ActorDirectory, list[ActorRecord]]:
    """A directory with an ALIVE, a DEAD, a placed-but-constructing and an unplaced actor."""
    old = ActorDirectory()
    start(old, register(old, A, name="alive", detached=True).actor_id)
    register(old, B, name="dead")
    old.kill(B, True, "killed")
    place(old, register(old, C, name="constructing").actor_id, node="n2", lease=b"LC",
          worker="wc")
    register(old, D)
    return old, list(old.actors.values())


def test_restore_keeps_alive_actors_and_names_of_live_ones() -> None:
    _, records = _stored_directory()
    new = ActorDirectory()
    new.restore(records)
    alive = new.by_name("alive", "ns")
    assert alive is not None and alive.state == ALIVE and alive.address == "worker-1:7000"
    assert new.by_name("dead", "ns") is None          # a dead actor's name stays free
    assert new.get(B).state == DEAD
    assert new.by_name("constructing", "ns").actor_id == C


def test_restore_restarts_placements_that_were_under_way() -> None:
    _, records = _stored_directory()
    attempts = {r.actor_id: r.attempt for r in records}
    new = ActorDirectory()
    actions = new.restore(records)
    # The worker leased for C may be running __init__ for a service that is gone:
    # stop it, then place again; D was never placed.
    assert actions == [StopWorker(C, "n2", b"LC", "wc"), Place(C, attempts[C] + 1),
                       Place(D, attempts[D] + 1)]
    assert_not_hosted(new.get(C))
    # A result from the old attempt is stale now.
    assert new.placed(C, attempts[C], node_id="n2", lease_id=b"LC", worker_id="wc") == [
        StopWorker(C, "n2", b"LC", "wc")]


def test_restore_continues_versions_above_the_stored_ones() -> None:
    _, records = _stored_directory()
    top = max(r.version for r in records)
    new = ActorDirectory()
    new.restore(records)
    # Callers long-poll with after_version = the last version they saw: every
    # later change must be numbered above it.
    new.kill(A, True, "killed after the restart")
    assert new.get(A).version > top

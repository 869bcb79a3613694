"""The control service carries on from its stored state after a restart (no processes).

Each test drives one ``ControlService`` (its RPC methods called directly, with
a stand-in for the gRPC context), stops it as a crash would leave it, and
starts a second one on the same SQLite file.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest
from ember._private.actor_directory import DEAD, PENDING
from ember._private.gcs import ControlService
from ember._private.protos import ember_pb2 as pb
from ember.testing import wait_for_condition


class Aborted(Exception):
    pass


class Context:
    """Enough of grpc.ServicerContext for the handlers: abort, and end-of-call callbacks."""

    def __init__(self) -> None:
        self.callbacks: list = []
        self.code: grpc.StatusCode | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise Aborted(details)

    def add_callback(self, callback) -> bool:
        self.callbacks.append(callback)
        return True

    def end(self) -> None:
        for callback in self.callbacks:
            callback()


@pytest.fixture
def services(tmp_path, monkeypatch):
    """Make control services on one SQLite file; every one is stopped at the end."""
    monkeypatch.setenv("EMBER_GCS_RESTART_GRACE_S", "30")
    started: list[ControlService] = []

    def make() -> ControlService:
        service = ControlService(str(tmp_path / "control.sqlite"), "token")
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


def node(node_id: str) -> pb.NodeInfo:
    return pb.NodeInfo(node_id=node_id, ip="127.0.0.1", port=1, total={"CPU": 1},
                       available={"CPU": 1}, alive=True)


def actor_spec(actor_id: bytes, owner: str, name: str = "", detached: bool = False
               ) -> pb.ActorSpec:
    # Needs 100 CPUs: no node can take it, so it stays PENDING without any RPC.
    return pb.ActorSpec(actor_id=actor_id, class_name="A", name=name, namespace="ns",
                        detached=detached, owner=pb.Address(worker_id=owner),
                        resources={"CPU": 100})


def watch_driver(service: ControlService, worker_id: str) -> Context:
    """Open a WatchDriver stream for ``worker_id``; ``.end()`` closes it."""
    ctx = Context()
    stream = service.WatchDriver(pb.DriverInfo(worker_id=worker_id, job_id=1), ctx)
    threading.Thread(target=lambda: list(stream), daemon=True).start()
    wait_for_condition(lambda: ctx.callbacks, timeout=10)
    return ctx


def test_restart_reloads_nodes_kv_and_job_counter(services):
    first = services()
    assert not first.restored
    first.RegisterNode(node("n1"), Context())
    first.KVPut(pb.KVRequest(ns="user", key=b"k", value=b"v", overwrite=True), Context())
    assert [first.NextJobId(pb.Empty(), Context()).job_id for _ in range(2)] == [1, 2]
    first.stop()

    second = services()
    assert second.restored
    (n1,) = second.GetNodes(pb.Empty(), Context()).nodes
    assert n1.node_id == "n1" and n1.alive
    assert second.KVGet(pb.KVRequest(ns="user", key=b"k"), Context()).value == b"v"
    assert second.NextJobId(pb.Empty(), Context()).job_id == 3


def test_restored_nodes_are_not_declared_dead_during_the_grace(services, monkeypatch):
    first = services()
    first.RegisterNode(node("n1"), Context())
    first.stop()
    # Without the grace a node silent for 0.2 s would be dead at once.
    monkeypatch.setenv("EMBER_NODE_TIMEOUT_S", "0.2")
    second = services()
    time.sleep(1.0)
    assert [n.alive for n in second.GetNodes(pb.Empty(), Context()).nodes] == [True]
    # Its heartbeat resumes: known, so it is accepted (no re-registration needed).
    second.UpdateNode(node("n1"), Context())
    second.stop()

    monkeypatch.setenv("EMBER_GCS_RESTART_GRACE_S", "0.3")
    third = services()
    wait_for_condition(lambda: not third.GetNodes(pb.Empty(), Context()).nodes[0].alive,
                       timeout=20, message="a node that never came back is declared dead")


def test_heartbeat_from_an_unknown_node_asks_it_to_register(services):
    service = services()
    ctx = Context()
    with pytest.raises(Aborted, match="register"):
        service.UpdateNode(node("stranger"), ctx)
    assert ctx.code == grpc.StatusCode.NOT_FOUND
    # A node leaving, or one already dead, gets no such answer.
    service.UpdateNode(pb.NodeInfo(node_id="stranger", alive=False), Context())
    service.RegisterNode(node("n1"), Context())
    service.UpdateNode(pb.NodeInfo(node_id="n1", alive=False), Context())
    service.UpdateNode(node("n1"), Context())       # dead stays dead
    assert not service.GetNodes(pb.Empty(), Context()).nodes[0].alive


def test_actors_and_names_survive_and_versions_continue(services):
    first = services()
    reply = first.CreateActor(actor_spec(b"a1", "driver-1", name="keeper", detached=True),
                              Context())
    assert reply.created
    version = reply.info.version
    first.stop()

    second = services()
    info = second.GetActor(pb.GetActorRequest(name="keeper", namespace="ns"), Context())
    assert info.found and info.actor_id == b"a1" and info.state == PENDING and info.detached
    # Placement starts over (a new attempt, a newer version).
    assert info.version > version
    taken = second.CreateActor(actor_spec(b"a2", "driver-1", name="keeper"), Context())
    assert "already exists" in taken.error


def test_driver_that_does_not_come_back_loses_its_actors(services, monkeypatch):
    first = services()
    watch_driver(first, "gone-driver")
    watch_driver(first, "back-driver")
    first.CreateActor(actor_spec(b"orphan", "gone-driver"), Context())
    first.CreateActor(actor_spec(b"kept", "back-driver"), Context())
    first.CreateActor(actor_spec(b"detached", "gone-driver", detached=True), Context())
    first.stop()          # as if killed: the streams never ended there

    monkeypatch.setenv("EMBER_GCS_RESTART_GRACE_S", "0.5")
    second = services()
    watch_driver(second, "back-driver")

    def state(actor_id: bytes) -> int:
        return second.GetActor(pb.GetActorRequest(actor_id=actor_id), Context()).state

    wait_for_condition(lambda: state(b"orphan") == DEAD, timeout=20)
    info = second.GetActor(pb.GetActorRequest(actor_id=b"orphan"), Context())
    assert "owner" in info.death_cause
    assert state(b"kept") == PENDING and state(b"detached") == PENDING


def test_driver_stream_ending_after_restart_still_stops_its_actors(services):
    first = services()
    watch_driver(first, "driver")
    first.CreateActor(actor_spec(b"a1", "driver"), Context())
    first.stop()

    second = services()
    stream = watch_driver(second, "driver")
    stream.end()          # the driver exits for good
    wait_for_condition(lambda: second.GetActor(pb.GetActorRequest(actor_id=b"a1"),
                                               Context()).state == DEAD, timeout=20)


def test_placement_groups_survive_with_names_and_removal(services):
    first = services()
    spec = pb.PlacementGroupSpec(pg_id=b"pg1", name="trainers", namespace="ns",
                                 strategy="PACK", owner_worker_id="driver", detached=True,
                                 bundles=[pb.Bundle(index=0, resources={"CPU": 1})])
    created = first.CreatePlacementGroup(spec, Context())
    first.stop()

    second = services()
    info = second.GetPlacementGroup(pb.PlacementGroupRequest(name="trainers", namespace="ns"),
                                    Context())
    assert info.found and info.pg_id == b"pg1" and info.state == "PENDING"
    assert info.version >= created.version
    second.RemovePlacementGroup(pb.PlacementGroupRequest(pg_id=b"pg1"), Context())
    after = second.GetPlacementGroup(pb.PlacementGroupRequest(pg_id=b"pg1"), Context())
    assert after.state == "REMOVED" and after.version > info.version
    second.stop()

    third = services()
    assert third.GetPlacementGroup(pb.PlacementGroupRequest(pg_id=b"pg1"),
                                   Context()).state == "REMOVED"
    assert not third.GetPlacementGroup(pb.PlacementGroupRequest(name="trainers",
                                                                namespace="ns"),
                                       Context()).found

"""GcsStore: the control service's write-through SQLite state, without processes.

Each test writes through one store and reads back through a *new* one on the
same file, which is what a restarted control service does.
"""
from __future__ import annotations

import logging
import sqlite3

import pytest
from ember._private.actor_directory import ALIVE, DEAD, PENDING, ActorRecord
from ember._private.gcs_store import (
    GcsStore,
    actor_from_row,
    actor_state_json,
)
from ember._private.protos import ember_pb2 as pb


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "control.sqlite")


def spec(actor_id: bytes, name: str = "") -> pb.ActorSpec:
    return pb.ActorSpec(actor_id=actor_id, class_name="Counter", name=name, namespace="ns",
                        max_restarts=2, resources={"CPU": 1.0},
                        creation=pb.TaskSpec(task_id=b"t" + actor_id))


def record(actor_id: bytes, **fields) -> ActorRecord:
    base = {"actor_id": actor_id, "spec": spec(actor_id, fields.get("name", "")), "name": "",
            "namespace": "ns", "detached": False, "owner_worker_id": "driver",
            "max_restarts": 2}
    base.update(fields)
    return ActorRecord(**base)


def test_new_session_loads_empty(path):
    snap = GcsStore(path).load()
    assert snap.empty and snap.kv == {} and snap.nodes == [] and snap.actors == []


def test_kv_round_trip_and_delete(path):
    store = GcsStore(path)
    store.kv_put("fn", b"\x00key", b"value\xff")
    store.kv_put("fn", b"gone", b"x")
    store.kv_put("fn", b"\x00key", b"newer")
    store.kv_delete("fn", b"gone")
    store.close()
    assert GcsStore(path).load().kv == {("fn", b"\x00key"): b"newer"}


def test_nodes_round_trip_including_death(path):
    store = GcsStore(path)
    a = pb.NodeInfo(node_id="a", ip="127.0.0.1", port=1, total={"CPU": 2}, alive=True,
                    labels={"zone": "x"})
    b = pb.NodeInfo(node_id="b", ip="127.0.0.1", port=2, total={"CPU": 1}, alive=True)
    store.put_node(a)
    store.put_node(b)
    b.alive = False
    store.put_node(b)
    nodes = {n.node_id: n for n in GcsStore(path).load().nodes}
    assert nodes["a"] == a and nodes["a"].labels["zone"] == "x"
    assert nodes["b"].alive is False


def test_actor_state_round_trips_every_field():
    original = record(b"a1", name="keeper", detached=True, state=ALIVE, attempt=3,
                      num_restarts=1, node_id="n1", lease_id=b"\x01\x02", worker_id="w1",
                      address="127.0.0.1:5000", pid=42, death_cause="its node died",
                      creation_error=b"\x80pickled", version=17, owner_node_id="n0")
    back = actor_from_row(b"a1", original.spec, actor_state_json(original))
    assert back == original


def test_actors_spec_written_once_then_state_updated(path):
    store = GcsStore(path)
    rec = record(b"a1", name="keeper")
    store.save_actors([(rec, True)])
    rec.state, rec.address, rec.version = ALIVE, "127.0.0.1:7000", 5
    other = record(b"a2")
    store.save_actors([(rec, False), (other, True)])
    (loaded_a1,) = [r for r in GcsStore(path).load().actors if r.actor_id == b"a1"]
    assert loaded_a1.state == ALIVE and loaded_a1.address == "127.0.0.1:7000"
    assert loaded_a1.version == 5 and loaded_a1.spec == spec(b"a1", "keeper")
    assert {r.actor_id for r in GcsStore(path).load().actors} == {b"a1", b"a2"}


def test_placement_groups_and_drivers_round_trip(path):
    store = GcsStore(path)
    pg = pb.PlacementGroupSpec(pg_id=b"pg1", name="trainers", namespace="ns", strategy="PACK",
                               bundles=[pb.Bundle(index=0, resources={"CPU": 1})])
    store.save_group(pg, "PENDING", [], 1)
    store.save_group(pg, "CREATED", ["n1"], 2, "")
    store.put_driver("d1", 1, True)
    store.put_driver("d2", 2, True)
    store.put_driver("d2", 2, False)
    snap = GcsStore(path).load()
    (group,) = snap.groups
    assert (group.spec, group.state, group.nodes, group.version) == (pg, "CREATED", ["n1"], 2)
    assert {(d.worker_id, d.job_id, d.connected) for d in snap.drivers} == {
        ("d1", 1, True), ("d2", 2, False)}
    assert not snap.empty


def test_state_survives_a_writer_that_never_closed(path):
    """A kill -9 leaves the WAL un-checkpointed: a new reader must still see it all."""
    writer = GcsStore(path)
    writer.kv_put("k", b"a", b"1")
    writer.save_actors([(record(b"a1", state=PENDING), True)])
    # No close(): the writer's connection is still open, as if it had been killed.
    snap = GcsStore(path).load()
    assert snap.kv[("k", b"a")] == b"1" and [r.actor_id for r in snap.actors] == [b"a1"]


def test_memory_only_store_persists_nothing():
    store = GcsStore(None)
    store.kv_put("k", b"a", b"1")
    store.put_node(pb.NodeInfo(node_id="n"))
    store.save_actors([(record(b"a1", state=DEAD), True)])
    assert store.load().empty and store.load().kv == {}


def test_newer_schema_is_a_clear_error(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(RuntimeError, match="newer Ember.*start a new session"):
        GcsStore(path)


def test_failed_write_is_logged_once_not_raised(path, caplog):
    store = GcsStore(path)
    store.kv_put("k", b"a", b"1")
    store._db.execute("PRAGMA query_only=1")      # every later write fails
    with caplog.at_level(logging.ERROR, logger="ember"):
        store.kv_put("k", b"b", b"2")
        store.put_node(pb.NodeInfo(node_id="n"))
    errors = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(errors) == 1
    store._db.execute("PRAGMA query_only=0")
    store.kv_put("k", b"c", b"3")            # and the store still works afterwards
    assert set(GcsStore(path).load().kv) == {("k", b"a"), ("k", b"c")}

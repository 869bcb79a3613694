"""placement_group_ops: a process's creates and removals, queued and sent in order in
batches (against a fake control service), and the API's read-after-write guarantees
on a real cluster."""
from __future__ import annotations

import threading

import pytest

from ember._private.placement_group_ops import PlacementGroupOps
from ember._private.protos import ember_pb2 as pb


class FakeControl:
    """Records each ApplyPlacementGroupOps call; can be held or made to fail."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, bytes]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.taken = {b"taken"}

    def ApplyPlacementGroupOps(self, request, timeout=None):
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        ops, results = [], []
        for op in request.ops:
            if op.WhichOneof("op") == "create":
                ops.append(("create", op.create.pg_id))
                ok = op.create.name.encode() not in self.taken
                results.append(pb.PlacementGroupInfo(
                    pg_id=op.create.pg_id, found=ok, state="PENDING",
                    error="" if ok else f"a placement group named {op.create.name!r} exists"))
            else:
                ops.append(("remove", op.remove))
                results.append(pb.PlacementGroupInfo(pg_id=op.remove, found=True))
        self.calls.append(ops)
        return pb.PlacementGroupOpResults(results=results)


def create(pg_id: bytes, name: str = "") -> pb.PlacementGroupOp:
    return pb.PlacementGroupOp(create=pb.PlacementGroupSpec(pg_id=pg_id, name=name))


def remove(pg_id: bytes) -> pb.PlacementGroupOp:
    return pb.PlacementGroupOp(remove=pg_id)


def test_ops_queued_while_a_call_is_in_flight_go_as_one_call_in_order():
    gcs = FakeControl()
    ops = PlacementGroupOps(gcs)
    gcs.gate.clear()                   # hold the first call in flight
    ops.submit(create(b"a"))
    for i in range(50):
        ops.submit(create(b"p%d" % i))
        ops.submit(remove(b"p%d" % i))
    assert not ops.idle
    gcs.gate.set()
    ops.barrier(10)
    assert ops.idle
    flat = [op for call in gcs.calls for op in call]
    expected = [("create", b"a")]
    for i in range(50):
        expected += [("create", b"p%d" % i), ("remove", b"p%d" % i)]
    assert flat == expected            # applied in the order queued
    assert len(gcs.calls) <= 3         # batched, not one call per operation


def test_a_failed_call_is_raised_once_at_the_next_barrier():
    gcs = FakeControl()
    ops = PlacementGroupOps(gcs)
    gcs.fail = ConnectionError("control service unreachable")
    ops.submit(remove(b"x"))
    with pytest.raises(ConnectionError, match="unreachable"):
        ops.barrier(10)
    ops.barrier(10)                    # reported once, not forever
    gcs.fail = None
    ops.submit(remove(b"y"))
    ops.barrier(10)
    assert gcs.calls[-1] == [("remove", b"y")]


def test_an_awaited_create_gets_its_own_answer_and_failure():
    gcs = FakeControl()
    ops = PlacementGroupOps(gcs)
    info = ops.submit(create(b"n1", name="taken"), awaited=True).result(10)
    assert not info.found and "exists" in info.error
    assert "exists" in ops.refusal(b"n1")
    gcs.fail = TimeoutError("slow")
    with pytest.raises(TimeoutError):
        ops.submit(create(b"n2", name="free"), awaited=True).result(10)
    ops.barrier(10)                    # its caller saw it: not raised again here


def test_close_applies_what_is_queued_then_refuses_more():
    gcs = FakeControl()
    ops = PlacementGroupOps(gcs)
    gcs.gate.clear()
    ops.submit(remove(b"last"))
    threading.Timer(0.2, gcs.gate.set).start()
    ops.close(timeout=10)
    assert [op for call in gcs.calls for op in call] == [("remove", b"last")]
    with pytest.raises(RuntimeError, match="ember.init"):
        ops.submit(remove(b"after"))


# ------------------------------------------------------------------ on a cluster
@pytest.fixture(scope="module")
def pg_cluster():
    import ember
    if ember.is_initialized():
        ember.shutdown()
    ember.init(num_cpus=2, resources={"slot": 4}, include_dashboard=False)
    yield ember
    ember.shutdown()


def test_reads_after_queued_writes_see_them(pg_cluster):
    from ember.util import placement_group, placement_group_table, remove_placement_group
    from ember.util.state import list_placement_groups
    pgs = [placement_group([{"slot": 0.01}]) for _ in range(20)]
    table = placement_group_table()
    assert all(pg.id.hex() in table for pg in pgs)       # queued creates are visible
    assert all(pg.wait(30) for pg in pgs)
    for pg in pgs:
        remove_placement_group(pg)
    assert {placement_group_table(pg)["state"] for pg in pgs} == {"REMOVED"}
    states = {g.placement_group_id: g.state for g in list_placement_groups(limit=1000)}
    assert all(states[pg.id.hex()] == "REMOVED" for pg in pgs)


def test_a_group_handed_to_a_task_right_after_create_exists_there(pg_cluster):
    ember = pg_cluster
    from ember.util import placement_group, remove_placement_group

    @ember.remote(num_cpus=0)
    def state_of(pg):
        from ember.util import placement_group_table
        return placement_group_table(pg)["state"]

    pg = placement_group([{"slot": 0.01}])
    assert ember.get(state_of.remote(pg), timeout=60) in ("PENDING", "CREATED")
    remove_placement_group(pg)


def test_scheduling_into_a_just_created_group_runs(pg_cluster):
    ember = pg_cluster
    from ember.util import placement_group, remove_placement_group
    from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ember.remote(num_cpus=0, resources={"slot": 0.5})
    def where():
        return "ran"

    pg = placement_group([{"slot": 1}])
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    assert ember.get(where.options(scheduling_strategy=strategy).remote(), timeout=60) == "ran"
    remove_placement_group(pg)


def test_a_taken_name_is_refused_at_once(pg_cluster):
    from ember.util import placement_group, remove_placement_group
    pg = placement_group([{"slot": 0.01}], name="only-one")
    with pytest.raises(ValueError, match="already exists"):
        placement_group([{"slot": 0.01}], name="only-one")
    remove_placement_group(pg)

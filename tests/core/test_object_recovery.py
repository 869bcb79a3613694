"""object_recovery: what an owner records about the tasks it submits (no cluster)."""
from __future__ import annotations

from types import SimpleNamespace

from ember._private import object_recovery
from ember._private.object_recovery import ObjectRecovery
from ember._private.protos import ember_pb2 as pb


def _actor_call(i: int) -> SimpleNamespace:
    spec = pb.TaskSpec(task_id=i.to_bytes(16, "big"), name=f"A.m{i}", num_returns=1)
    return SimpleNamespace(spec=spec, key=("actor", b"a"), sink=lambda t: None,
                           return_ids=[spec.task_id + b"\x01\x00\x00\x00"])


def test_actor_calls_keep_only_their_names_and_only_the_newest(monkeypatch):
    monkeypatch.setattr(object_recovery, "_ACTOR_CALL_NAMES", 3)
    recovery = ObjectRecovery(SimpleNamespace(address="127.0.0.1:1"))
    for i in range(5):
        recovery.on_submit(_actor_call(i), [])
    assert list(recovery._actor_calls.values()) == ["A.m1", "A.m2", "A.m3", "A.m4"][-3:]
    assert len(recovery.table._tasks) == 0          # no lineage: they are never rebuilt

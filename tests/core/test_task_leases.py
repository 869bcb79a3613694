"""task_leases: the merged PushTasks request stream (the lease paths run in test_tasks.py)."""
from __future__ import annotations

import queue

from ember._private.protos import ember_pb2 as pb
from ember._private.task_leases import merged_batches


def _spec(n: int) -> pb.TaskSpec:
    return pb.TaskSpec(task_id=bytes([n]) * 4)


def test_batches_waiting_together_leave_as_one_in_order() -> None:
    q: queue.SimpleQueue = queue.SimpleQueue()
    q.put(pb.TaskBatch(tasks=[_spec(1)]))
    q.put(pb.TaskBatch(tasks=[_spec(2), _spec(3)], release_pins=[b"p"]))
    q.put(pb.TaskBatch(cancels=[pb.CancelRequest(task_id=_spec(1).task_id)]))
    stream = merged_batches(q)
    batch = next(stream)
    assert [t.task_id[0] for t in batch.tasks] == [1, 2, 3]
    assert list(batch.release_pins) == [b"p"]
    assert [c.task_id[0] for c in batch.cancels] == [1]
    q.put(pb.TaskBatch(tasks=[_spec(4)]))       # arrives later: a message of its own
    assert [t.task_id[0] for t in next(stream).tasks] == [4]
    q.put(None)
    assert list(stream) == []


def test_end_marker_behind_waiting_batches_ends_after_them() -> None:
    q: queue.SimpleQueue = queue.SimpleQueue()
    for item in (pb.TaskBatch(tasks=[_spec(1)]), pb.TaskBatch(tasks=[_spec(2)]), None):
        q.put(item)
    assert [[t.task_id[0] for t in b.tasks] for b in merged_batches(q)] == [[1, 2]]

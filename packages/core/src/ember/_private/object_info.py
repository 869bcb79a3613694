"""What one process knows about the objects it references (``GetObjectsInfo``).

Every driver and worker answers for the refs in its own reference counter:
the objects it owns (with their size, whether they live in shared memory and
where, and the state of the task making them) and the ones it borrows. The
state API asks every process and merges the answers into ``list_objects`` /
``ember memory``, the way Ray gathers them from each core worker.

How a ref is held gives its reference type (Ray's names, first match wins):
an actor's lifetime ref is ACTOR_HANDLE; a live ObjectRef in this process is
LOCAL_REFERENCE; an argument of a pending task is USED_BY_PENDING_TASK; a ref
inside another object's value is CAPTURED_IN_OBJECT; an owned object kept only
for its borrowers is PINNED_IN_MEMORY.
"""
from __future__ import annotations

import os
from typing import Any

from . import ids
from .protos import ember_pb2 as pb

# The owner's view of a task still making an object (task_submitter states).
_PENDING_STATUS = {"deps": "PENDING_ARGS_AVAIL", "queued": "PENDING_NODE_ASSIGNMENT",
                   "backoff": "PENDING_NODE_ASSIGNMENT", "pushed": "SUBMITTED_TO_WORKER"}


def reference_type(is_actor_handle: bool, local: int, submitted: int, contained: int,
                   borrowers: int) -> str:
    """Ray's reference type of one ref, from how it is held.

    >>> reference_type(False, 0, 1, 0, 0)
    'USED_BY_PENDING_TASK'
    """
    if is_actor_handle:
        return "ACTOR_HANDLE"
    if local > 0:
        return "LOCAL_REFERENCE"
    if submitted > 0:
        return "USED_BY_PENDING_TASK"
    if contained > 0:
        return "CAPTURED_IN_OBJECT"
    if borrowers > 0:
        return "PINNED_IN_MEMORY"
    return "UNKNOWN_STATUS"


def snapshot(core: Any, limit: int = 0) -> pb.ObjectsInfoReply:
    """This process's refs as an ObjectsInfoReply."""
    with core._rc_lock:
        refs = core.refs.snapshot()
    total = len(refs)
    if limit:
        refs = refs[:limit]
    reply = pb.ObjectsInfoReply(worker_id=core.worker_id, pid=os.getpid(),
                                node_id=core.node_id, is_driver=core.is_driver,
                                ip=core.address.rpartition(":")[0], total=total)
    lifetime = core.actor_lifetime_refs
    for object_id, owned, owner, local, submitted, contained, borrowers in refs:
        info = reply.objects.add(
            object_id=object_id, owned=owned, owner=core.address if owned else owner,
            num_borrowers=borrowers, size=-1,
            reference_type=reference_type(object_id in lifetime, local, submitted,
                                          contained, borrowers))
        if not owned:
            info.task_status = "NIL"
            continue
        entry = core.memory_store.get(object_id)
        if entry is None:
            info.task_status = "NIL"
        elif entry.ready:
            info.task_status = "FAILED" if entry.is_error else "FINISHED"
            info.size = entry.size
            info.in_shm = entry.in_shm
            info.node_ids.extend(loc.node_id for loc in entry.locations)
        else:
            info.task_status = _pending_status(core, object_id)
    return reply


def _pending_status(core: Any, object_id: bytes) -> str:
    if len(object_id) != ids.OBJECT_ID_LEN:
        return "NIL"
    task = core.submitter._tasks.get(ids.task_id_of(object_id))
    if task is None:
        return "NIL"
    return _PENDING_STATUS.get(task.state, "NIL")

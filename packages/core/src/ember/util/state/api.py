"""The state API's functions (Ray's ``ray.util.state``): list, get and summarize.

Every function takes ``address`` (None: the cluster this process is connected
to, else the one ``ember start`` left running here; or "HOST:PORT" / "auto")
and ``timeout`` (seconds per request). ``list_*`` also take ``filters``
(``[("state", "=", "RUNNING")]``, predicates ``=`` and ``!=``, strings
compared case-insensitively), ``limit`` (default 100) and ``detail`` (fill the
detail-only fields of the records, see ``ember.util.state.common``).

Where the data lives: nodes, actors and placement groups in the control
service's tables; tasks in its bounded task-event store (recent attempts, see
``EMBER_TASK_EVENTS_MAX``); jobs and dead workers in its state service;
workers and objects are asked of every node manager and every driver/worker.
A node or process that does not answer in time is left out with a warning.
"""
from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

from .common import (ActorState, JobState, NodeState, ObjectState, PlacementGroupState,
                     StateSchema, TaskState, WorkerState)

DEFAULT_LIMIT = 100
DEFAULT_RPC_TIMEOUT = 30

_ACTOR_STATES = {0: "PENDING_CREATION", 1: "ALIVE", 2: "RESTARTING", 3: "DEAD"}


def _client(address: str | None, timeout: float) -> Any:
    from ..._private.state_client import StateClient
    return StateClient(address, timeout)


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    return limit


def _filters(filters: Sequence[Any] | None, schema: type[StateSchema], what: str) -> list:
    from ..._private.state_filters import check_filters
    return check_filters(filters, schema.FILTERS, what)


def _finish(schema: type[StateSchema], rows: list[dict], filters: list, limit: int,
            detail: bool) -> list[Any]:
    from ..._private.state_filters import apply_filters
    rows = apply_filters(rows, filters)
    return [schema.from_row(r, detail) for r in rows[:limit]]


def _warn_missing(missing: list[str], raise_on_missing_output: bool) -> None:
    if missing:
        warnings.warn(f"the state API got no answer from {len(missing)} source(s) "
                      f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): "
                      "the result leaves them out", RuntimeWarning, stacklevel=3)


def _hex(b: bytes) -> str | None:
    return b.hex() if b else None


def _ms(seconds: float) -> int | None:
    return int(seconds * 1000) if seconds else None


# ------------------------------------------------------------------ rows
def _actor_row(a: Any) -> dict:
    return {"actor_id": a.actor_id.hex(), "class_name": a.class_name,
            "state": _ACTOR_STATES.get(a.state, "DEAD"), "job_id": f"{a.job_id:08x}",
            "name": a.name, "node_id": a.node_id or None, "pid": a.pid or None,
            "ray_namespace": a.namespace, "required_resources": dict(a.resources),
            "death_cause": ({"error_message": a.death_cause} if a.state == 3 and a.death_cause
                            else None),
            "is_detached": a.detached, "placement_group_id": _hex(a.placement_group_id),
            "repr_name": "", "num_restarts": a.num_restarts, "call_site": None}


def _node_row(n: Any, head_id: str) -> dict:
    return {"node_id": n.node_id, "node_ip": n.ip, "is_head_node": n.node_id == head_id,
            "state": "ALIVE" if n.alive else "DEAD",
            "state_message": None if n.alive else "the node left or stopped sending heartbeats",
            "node_name": n.ip, "resources_total": dict(n.total), "labels": dict(n.labels),
            "start_time_ms": _ms(n.start_time), "end_time_ms": None}


def _pg_row(g: Any) -> dict:
    pg_hex = g.pg_id.hex()
    return {"placement_group_id": pg_hex, "name": g.name, "creator_job_id": None,
            "state": g.state, "is_detached": g.detached, "stats": None,
            "bundles": [{"bundle_id": f"{pg_hex}_{b.index}", "node_id": b.node_id or None,
                         "unit_resources": dict(b.resources)} for b in g.bundles]}


def _job_row(j: Any) -> dict:
    d = j.driver
    return {"job_id": f"{d.job_id:08x}", "type": "DRIVER",
            "status": "SUCCEEDED" if j.end_time else "RUNNING", "entrypoint": d.entrypoint,
            "start_time": _ms(j.start_time), "end_time": _ms(j.end_time),
            "driver_info": {"id": d.worker_id, "node_ip_address": d.address.rpartition(":")[0],
                            "pid": str(d.pid)},
            "driver_node_id": d.node_id or None, "metadata": {}}


def _object_rows(replies: list) -> list[dict]:
    rows = []
    for reply in replies:
        kind = "DRIVER" if reply.is_driver else "WORKER"
        for o in reply.objects:
            rows.append({
                "object_id": o.object_id.hex(), "object_size": o.size if o.size >= 0 else None,
                "task_status": o.task_status, "attempt_number": 0,
                "reference_type": o.reference_type, "call_site": "disabled", "type": kind,
                "pid": reply.pid, "ip": reply.ip, "node_id": reply.node_id,
                "owner_address": o.owner, "is_owner": o.owned, "in_shared_memory": o.in_shm,
                "copies_on_nodes": list(o.node_ids)})
    return rows


def _worker_rows(client: Any) -> list[dict]:
    rows: dict[str, dict] = {}
    nodes = client.nodes()
    ips = {n.node_id: n.ip for n in nodes}
    for death in client.worker_deaths():
        d = death.death
        if not d.worker_id:
            continue
        pid = re.search(r"pid (\d+)", d.reason)
        rows[d.worker_id] = {
            "worker_id": d.worker_id, "is_alive": False, "worker_type": "WORKER",
            "exit_type": "SYSTEM_ERROR", "node_id": d.node_id, "ip": ips.get(d.node_id, ""),
            "pid": int(pid.group(1)) if pid else None, "exit_detail": d.reason,
            "start_time_ms": None, "end_time_ms": _ms(death.time)}
    for node_id, status in client.node_statuses(nodes).items():
        for w in status.workers:
            if w.worker_id:
                rows[w.worker_id] = {
                    "worker_id": w.worker_id, "is_alive": True, "worker_type": "WORKER",
                    "exit_type": None, "node_id": node_id, "ip": ips.get(node_id, ""),
                    "pid": w.pid, "exit_detail": None, "start_time_ms": _ms(w.start_time),
                    "end_time_ms": None}
    for job in client.jobs():
        d = job.driver
        rows[d.worker_id] = {
            "worker_id": d.worker_id, "is_alive": not job.end_time, "worker_type": "DRIVER",
            "exit_type": "INTENDED_USER_EXIT" if job.end_time else None,
            "node_id": d.node_id, "ip": d.address.rpartition(":")[0], "pid": d.pid,
            "exit_detail": None, "start_time_ms": _ms(job.start_time),
            "end_time_ms": _ms(job.end_time)}
    return list(rows.values())


# ------------------------------------------------------------------ list
def list_actors(address: str | None = None, filters: Sequence[Any] | None = None,
                limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
                detail: bool = False, raise_on_missing_output: bool = True
                ) -> list[ActorState]:
    """Actors in the cluster, dead ones included.

    >>> from ember.util.state import list_actors
    >>> list_actors(filters=[("state", "=", "ALIVE")])
    [ActorState(actor_id='5b0c...', class_name='Counter', state='ALIVE', ...)]
    """
    limit, filters = _check_limit(limit), _filters(filters, ActorState, "actors")
    with _client(address, timeout) as client:
        rows = [_actor_row(a) for a in client.actors()]
    return _finish(ActorState, rows, filters, limit, detail)


def list_tasks(address: str | None = None, filters: Sequence[Any] | None = None,
               limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
               detail: bool = False, raise_on_missing_output: bool = True
               ) -> list[TaskState]:
    """Task attempts the control service holds events for, oldest first.

    Events reach it within about a second (``EMBER_TASK_EVENTS_INTERVAL_S``);
    at most ``EMBER_TASK_EVENTS_MAX`` attempts are kept, finished ones dropped
    first, and a warning says how many were dropped.

    >>> from ember.util.state import list_tasks
    >>> list_tasks(filters=[("state", "=", "FAILED")], detail=True)[0].error_message
    'Traceback (most recent call last): ...'
    """
    limit, filters = _check_limit(limit), _filters(filters, TaskState, "tasks")
    with _client(address, timeout) as client:
        rows, total, dropped = client.tasks(filters, limit)
    if dropped:
        warnings.warn(f"{dropped} task attempt(s) were dropped (the control service keeps "
                      "the newest EMBER_TASK_EVENTS_MAX; processes drop events when their "
                      "buffer, EMBER_TASK_EVENTS_BUFFER, is full): the list may be "
                      "incomplete", RuntimeWarning, stacklevel=2)
    return [TaskState.from_row(r, detail) for r in rows]


def list_nodes(address: str | None = None, filters: Sequence[Any] | None = None,
               limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
               detail: bool = False, raise_on_missing_output: bool = True
               ) -> list[NodeState]:
    """Nodes that joined the cluster, dead ones included.

    >>> from ember.util.state import list_nodes
    >>> [n.node_ip for n in list_nodes(filters=[("is_head_node", "=", True)])]
    ['127.0.0.1']
    """
    limit, filters = _check_limit(limit), _filters(filters, NodeState, "nodes")
    with _client(address, timeout) as client:
        head = client.head_node_id()
        rows = [_node_row(n, head) for n in client.nodes()]
    return _finish(NodeState, rows, filters, limit, detail)


def list_placement_groups(address: str | None = None, filters: Sequence[Any] | None = None,
                          limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
                          detail: bool = False, raise_on_missing_output: bool = True
                          ) -> list[PlacementGroupState]:
    """Placement groups, removed ones included.

    >>> from ember.util.state import list_placement_groups
    >>> [g.state for g in list_placement_groups()]
    ['CREATED']
    """
    limit = _check_limit(limit)
    filters = _filters(filters, PlacementGroupState, "placement groups")
    with _client(address, timeout) as client:
        rows = [_pg_row(g) for g in client.placement_groups()]
    return _finish(PlacementGroupState, rows, filters, limit, detail)


def list_jobs(address: str | None = None, filters: Sequence[Any] | None = None,
              limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
              detail: bool = False, raise_on_missing_output: bool = True) -> list[JobState]:
    """Jobs: one per driver that connected since the control service started.

    >>> from ember.util.state import list_jobs
    >>> [(j.job_id, j.status) for j in list_jobs()]
    [('00000001', 'RUNNING')]
    """
    limit, filters = _check_limit(limit), _filters(filters, JobState, "jobs")
    with _client(address, timeout) as client:
        rows = [_job_row(j) for j in client.jobs()]
    return _finish(JobState, rows, filters, limit, detail)


def list_workers(address: str | None = None, filters: Sequence[Any] | None = None,
                 limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
                 detail: bool = False, raise_on_missing_output: bool = True
                 ) -> list[WorkerState]:
    """Worker processes (live ones from each node manager, recently dead ones with
    why they died) and drivers.

    >>> from ember.util.state import list_workers
    >>> len(list_workers(filters=[("worker_type", "=", "DRIVER")]))
    1
    """
    limit, filters = _check_limit(limit), _filters(filters, WorkerState, "workers")
    with _client(address, timeout) as client:
        rows = _worker_rows(client)
        missing = client.missing
    _warn_missing(missing, raise_on_missing_output)
    return _finish(WorkerState, rows, filters, limit, detail)


def list_objects(address: str | None = None, filters: Sequence[Any] | None = None,
                 limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_RPC_TIMEOUT,
                 detail: bool = False, raise_on_missing_output: bool = True
                 ) -> list[ObjectState]:
    """References to objects, one row per (object, process holding it), asked of
    every driver and worker.

    >>> from ember.util.state import list_objects
    >>> ref = ember.put(b"x" * 10**6)
    >>> list_objects(filters=[("object_id", "=", ref.hex())])[0].object_size
    1000...
    """
    limit, filters = _check_limit(limit), _filters(filters, ObjectState, "objects")
    with _client(address, timeout) as client:
        rows = _object_rows(client.objects())
        missing = client.missing
    _warn_missing(missing, raise_on_missing_output)
    return _finish(ObjectState, rows, filters, limit, detail)


# ------------------------------------------------------------------ get
def _by_id(fn: Any, key: str, id: str, address: str | None, timeout: float) -> list:
    if not isinstance(id, str) or not id:
        raise ValueError(f"id must be a non-empty hex string, got {id!r}")
    return fn(address=address, filters=[(key, "=", id)], limit=10_000, timeout=timeout,
              detail=True)


def get_actor(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT
              ) -> ActorState | None:
    """One actor by id (hex), with every detail; None if unknown.

    >>> from ember.util.state import get_actor
    >>> get_actor(counter._actor_id.hex()).state
    'ALIVE'
    """
    found = _by_id(list_actors, "actor_id", id, address, timeout)
    return found[0] if found else None


def get_task(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT
             ) -> TaskState | list[TaskState] | None:
    """A task by id (hex): its attempt, or a list of attempts if it was retried
    (as in Ray); None if the control service holds no events for it.

    >>> from ember.util.state import get_task
    >>> get_task(ref.task_id().hex()).state
    'FINISHED'
    """
    found = _by_id(list_tasks, "task_id", id, address, timeout)
    if not found:
        return None
    return found[0] if len(found) == 1 else found


def get_node(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT
             ) -> NodeState | None:
    """One node by id, with every detail; None if unknown.

    >>> from ember.util.state import get_node
    >>> get_node(ember.get_runtime_context().get_node_id()).state
    'ALIVE'
    """
    found = _by_id(list_nodes, "node_id", id, address, timeout)
    return found[0] if found else None


def get_placement_group(id: str, address: str | None = None,
                        timeout: float = DEFAULT_RPC_TIMEOUT) -> PlacementGroupState | None:
    """One placement group by id (hex); None if unknown.

    >>> from ember.util.state import get_placement_group
    >>> get_placement_group(pg.id.hex()).state
    'CREATED'
    """
    found = _by_id(list_placement_groups, "placement_group_id", id, address, timeout)
    return found[0] if found else None


def get_worker(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT
               ) -> WorkerState | None:
    """One worker or driver by worker id; None if unknown.

    >>> from ember.util.state import get_worker
    >>> get_worker(ember.get_runtime_context().get_worker_id()).worker_type
    'DRIVER'
    """
    found = _by_id(list_workers, "worker_id", id, address, timeout)
    return found[0] if found else None


def get_objects(id: str, address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT
                ) -> list[ObjectState]:
    """Every reference to one object (hex id), one per process holding it.

    >>> from ember.util.state import get_objects
    >>> [o.reference_type for o in get_objects(ref.hex())]
    ['LOCAL_REFERENCE']
    """
    return _by_id(list_objects, "object_id", id, address, timeout)


# ------------------------------------------------------------------ summarize
def summarize_tasks(address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                    raise_on_missing_output: bool = True) -> dict:
    """Task counts per function and state (Ray's TaskSummaries, under "cluster").

    >>> from ember.util.state import summarize_tasks
    >>> summarize_tasks()["cluster"]["summary"]["f"]["state_counts"]
    {'FINISHED': 10, 'FAILED': 1}
    """
    with _client(address, timeout) as client:
        summary, _ = client.task_summary()
    return {"cluster": summary}


def summarize_actors(address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                     raise_on_missing_output: bool = True) -> dict:
    """Actor counts per class and state (Ray's ActorSummaries, under "cluster").

    >>> from ember.util.state import summarize_actors
    >>> summarize_actors()["cluster"]["summary"]["Counter"]["state_counts"]
    {'ALIVE': 2}
    """
    groups: dict[str, dict] = {}
    with _client(address, timeout) as client:
        actors = client.actors()
    for a in actors:
        group = groups.setdefault(a.class_name, {"class_name": a.class_name,
                                                 "state_counts": {}})
        state = _ACTOR_STATES.get(a.state, "DEAD")
        group["state_counts"][state] = group["state_counts"].get(state, 0) + 1
    return {"cluster": {"summary": groups, "total_actors": len(actors),
                        "summary_by": "class"}}


def summarize_objects(address: str | None = None, timeout: float = DEFAULT_RPC_TIMEOUT,
                      raise_on_missing_output: bool = True) -> dict:
    """Object reference counts and sizes (Ray's ObjectSummaries, under "cluster").

    Call sites are not recorded, so everything falls in one group,
    "disabled", as in Ray by default.

    >>> from ember.util.state import summarize_objects
    >>> summarize_objects()["cluster"]["total_objects"]
    3
    """
    with _client(address, timeout) as client:
        rows = _object_rows(client.objects())
        missing = client.missing
    _warn_missing(missing, raise_on_missing_output)
    return {"cluster": summarize_object_rows(rows)}


def summarize_object_rows(rows: list[dict]) -> dict:
    """The ObjectSummaries of object rows (pure; the CLI's ``ember summary objects``)."""
    groups: dict[str, dict] = {}
    sizes: dict[str, int] = {}
    for row in rows:
        site = row.get("call_site") or "disabled"
        group = groups.setdefault(site, {"total_objects": 0, "total_size_mb": 0.0,
                                         "total_num_workers": 0, "total_num_nodes": 0,
                                         "task_state_counts": {}, "ref_type_counts": {},
                                         "_workers": set(), "_nodes": set(), "_ids": set()})
        if row["object_id"] not in group["_ids"]:
            group["_ids"].add(row["object_id"])
            group["total_objects"] += 1
        # An object's size counts once, wherever it is referenced from.
        if row.get("object_size") is not None and row.get("is_owner", True):
            sizes[row["object_id"]] = row["object_size"]
        group["_workers"].add(row["pid"])
        group["_nodes"].add(row.get("node_id"))
        for key, value in (("task_state_counts", row["task_status"]),
                           ("ref_type_counts", row["reference_type"])):
            group[key][value] = group[key].get(value, 0) + 1
    for group in groups.values():
        group["total_size_mb"] = sum(sizes.get(i, 0) for i in group["_ids"]) / (1 << 20)
        group["total_num_workers"] = len(group.pop("_workers"))
        group["total_num_nodes"] = len(group.pop("_nodes"))
        group.pop("_ids")
    return {"summary": groups, "total_objects": len({r["object_id"] for r in rows}),
            "total_size_mb": sum(sizes.values()) / (1 << 20), "callsite_enabled": False,
            "summary_by": "callsite"}

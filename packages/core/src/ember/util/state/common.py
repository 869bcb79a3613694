"""The records the state API returns (Ray's ``ray.util.state.common`` schemas).

Plain dataclasses with Ray's names and main fields. Fields listed in a class's
``DETAIL`` are filled only with ``detail=True`` (``--detail`` on the command
line) and by the ``get_*`` functions; otherwise they are None. ``FILTERS`` are
the fields ``filters=`` may name.

>>> from ember.util.state.common import TaskState
>>> "state" in TaskState.FILTERS
True
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ActorState", "TaskState", "NodeState", "ObjectState", "PlacementGroupState",
           "JobState", "WorkerState", "StateSchema"]


class StateSchema:
    """What every state record has: its columns, and a dict form (``asdict``)."""

    DETAIL: ClassVar[tuple[str, ...]] = ()
    FILTERS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def list_columns(cls, detail: bool = False) -> list[str]:
        """The columns a list shows: all with ``detail``, else those not in DETAIL."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        return names if detail else [n for n in names if n not in cls.DETAIL]

    @classmethod
    def filterable_columns(cls) -> set[str]:
        return set(cls.FILTERS)

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_row(cls, row: dict, detail: bool) -> Any:
        """Build from a dict of columns, leaving DETAIL columns out unless ``detail``."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in row.items() if k in names}
        if not detail:
            for name in cls.DETAIL:
                values[name] = None
        return cls(**values)


@dataclass
class ActorState(StateSchema):
    """One actor. ``state``: PENDING_CREATION, ALIVE, RESTARTING or DEAD."""

    actor_id: str
    class_name: str
    state: str
    job_id: str
    name: str | None
    node_id: str | None
    pid: int | None
    ray_namespace: str | None
    required_resources: dict | None = None
    death_cause: dict | None = None
    is_detached: bool | None = None
    placement_group_id: str | None = None
    repr_name: str | None = None
    num_restarts: int | None = None
    call_site: str | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("required_resources", "death_cause", "is_detached",
                                         "num_restarts", "repr_name", "call_site")
    FILTERS: ClassVar[tuple[str, ...]] = ("actor_id", "class_name", "state", "job_id", "name",
                                          "node_id", "pid", "ray_namespace",
                                          "placement_group_id")


@dataclass
class TaskState(StateSchema):
    """One attempt of a task (a retry is a new attempt with the same ``task_id``).

    ``state``: PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER,
    RUNNING, FINISHED or FAILED; ``type``: NORMAL_TASK, ACTOR_CREATION_TASK or
    ACTOR_TASK.
    """

    task_id: str
    attempt_number: int
    name: str
    state: str
    job_id: str
    actor_id: str | None
    type: str
    func_or_class_name: str
    parent_task_id: str
    node_id: str | None
    worker_id: str | None
    worker_pid: int | None
    error_type: str | None
    language: str | None = None
    required_resources: dict | None = None
    placement_group_id: str | None = None
    events: list | None = None
    creation_time_ms: int | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    error_message: str | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("language", "required_resources", "placement_group_id",
                                         "events", "creation_time_ms", "start_time_ms",
                                         "end_time_ms", "error_message")
    FILTERS: ClassVar[tuple[str, ...]] = ("task_id", "attempt_number", "name", "state", "job_id",
                                          "actor_id", "type", "func_or_class_name",
                                          "parent_task_id", "node_id", "worker_id",
                                          "worker_pid", "error_type", "placement_group_id",
                                          "language")


@dataclass
class NodeState(StateSchema):
    """One node. ``state``: ALIVE or DEAD."""

    node_id: str
    node_ip: str
    is_head_node: bool
    state: str
    state_message: str | None
    node_name: str
    resources_total: dict
    labels: dict
    start_time_ms: int | None = None
    end_time_ms: int | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("start_time_ms", "end_time_ms")
    FILTERS: ClassVar[tuple[str, ...]] = ("node_id", "node_ip", "is_head_node", "state",
                                          "node_name")


@dataclass
class ObjectState(StateSchema):
    """One reference to an object, as the process holding it sees it.

    An object referenced from three processes appears three times (as in
    Ray). ``object_size`` is in bytes (None where the holder does not know it:
    a borrower, or a value not made yet); ``type`` is DRIVER or WORKER.
    """

    object_id: str
    object_size: int | None
    task_status: str
    attempt_number: int
    reference_type: str
    call_site: str
    type: str
    pid: int
    ip: str
    node_id: str | None = None
    owner_address: str | None = None
    is_owner: bool | None = None
    in_shared_memory: bool | None = None
    copies_on_nodes: list | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("owner_address", "is_owner", "in_shared_memory",
                                         "copies_on_nodes")
    FILTERS: ClassVar[tuple[str, ...]] = ("object_id", "object_size", "task_status",
                                          "reference_type", "type", "pid", "ip", "node_id",
                                          "call_site", "attempt_number")


@dataclass
class PlacementGroupState(StateSchema):
    """One placement group. ``state``: PENDING, CREATED or REMOVED."""

    placement_group_id: str
    name: str
    creator_job_id: str | None
    state: str
    bundles: list | None = None
    is_detached: bool | None = None
    stats: dict | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("bundles", "is_detached", "stats")
    FILTERS: ClassVar[tuple[str, ...]] = ("placement_group_id", "name", "creator_job_id",
                                          "state", "is_detached")


@dataclass
class JobState(StateSchema):
    """One job: a driver's connection to the cluster (``type`` DRIVER).

    ``status``: RUNNING while the driver is connected, then SUCCEEDED (its
    exit code is not known to the cluster). Times are unix milliseconds.
    """

    job_id: str
    type: str
    status: str
    entrypoint: str
    submission_id: str | None = None
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict = field(default_factory=dict)
    runtime_env: dict | None = None
    driver_info: dict | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("submission_id", "message", "error_type", "metadata",
                                         "runtime_env", "driver_exit_code")
    FILTERS: ClassVar[tuple[str, ...]] = ("job_id", "type", "status", "submission_id")


@dataclass
class WorkerState(StateSchema):
    """One worker or driver process. ``worker_type``: WORKER or DRIVER."""

    worker_id: str
    is_alive: bool
    worker_type: str
    exit_type: str | None
    node_id: str
    ip: str
    pid: int | None
    exit_detail: str | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None

    DETAIL: ClassVar[tuple[str, ...]] = ("exit_detail", "start_time_ms", "end_time_ms")
    FILTERS: ClassVar[tuple[str, ...]] = ("worker_id", "is_alive", "worker_type", "exit_type",
                                          "node_id", "ip", "pid")

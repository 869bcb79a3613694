"""The actor directory: every actor's lifecycle, as a pure state machine.

Lives in the control service. It is fed events (an actor was registered, its
worker was placed or died, its constructor failed, its owner went away, someone
called ``kill``) and returns actions for the I/O layer (actor_manager.py) to
carry out: place an actor on a worker, or stop a worker. No threads, sockets or
processes here, so every lifecycle rule is unit-tested directly
(tests/core/test_actor_directory.py)::

    PENDING --created--> ALIVE --worker died, restarts left--> RESTARTING
       |                   |                                       |
       |                   +--killed / owner died / out of scope---+--> DEAD
       +--__init__ raised / killed / owner died / no restarts left-------> DEAD

Names are unique per namespace among actors that are not DEAD; a dead
actor's name is free again at once.

Every record an event changed lands in ``changed`` (the I/O layer drains it and
writes those records through to SQLite), and ``restore`` rebuilds the directory
from stored records when the control service restarts.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

PENDING, ALIVE, RESTARTING, DEAD = 0, 1, 2, 3
STATE_NAMES = {PENDING: "PENDING", ALIVE: "ALIVE", RESTARTING: "RESTARTING", DEAD: "DEAD"}


@dataclass(frozen=True)
class Place:
    """Find a worker for the actor and run its constructor there."""
    actor_id: bytes
    attempt: int


@dataclass(frozen=True)
class StopWorker:
    """Kill the worker that hosts (or was being set up for) an actor and free its lease."""
    actor_id: bytes
    node_id: str
    lease_id: bytes
    worker_id: str


@dataclass
class ActorRecord:
    actor_id: bytes
    spec: Any                      # pb.ActorSpec (opaque here)
    name: str
    namespace: str
    detached: bool
    owner_worker_id: str
    max_restarts: int
    state: int = PENDING
    attempt: int = 0               # bumps on every placement; stale results are ignored
    num_restarts: int = 0
    node_id: str = ""
    lease_id: bytes = b""
    worker_id: str = ""
    address: str = ""
    push_port: int = 0             # its worker's framed PushTasks port (0: gRPC only)
    pid: int = 0
    death_cause: str = ""
    creation_error: bytes = b""
    version: int = 0
    owner_node_id: str = ""        # where the owner runs: its node's death is its death


class NameTaken(ValueError):
    pass


@dataclass
class ActorDirectory:
    actors: dict[bytes, ActorRecord] = field(default_factory=dict)
    names: dict[tuple[str, str], bytes] = field(default_factory=dict)
    _versions: Any = field(default_factory=lambda: itertools.count(1))
    # Ids of records changed since the I/O layer last drained this set.
    changed: set = field(default_factory=set)

    # ------------------------------------------------------------ queries
    def get(self, actor_id: bytes) -> ActorRecord | None:
        return self.actors.get(actor_id)

    def by_name(self, name: str, namespace: str) -> ActorRecord | None:
        actor_id = self.names.get((namespace, name))
        return self.actors.get(actor_id) if actor_id is not None else None

    # ------------------------------------------------------------ events
    def register(self, actor_id: bytes, spec: Any, *, name: str, namespace: str,
                 detached: bool, owner_worker_id: str, max_restarts: int,
                 get_if_exists: bool = False, owner_node_id: str = ""
                 ) -> tuple[ActorRecord, bool, list]:
        """Add an actor. Returns (record, created, actions).

        With a name already in use: ``get_if_exists`` returns the existing
        record (created=False); otherwise NameTaken is raised.
        """
        if actor_id in self.actors:
            return self.actors[actor_id], False, []
        if name:
            existing = self.by_name(name, namespace)
            if existing is not None:
                if get_if_exists:
                    return existing, False, []
                raise NameTaken(
                    f"an actor named {name!r} already exists in namespace {namespace!r}: pick "
                    f"another name, fetch it with ember.get_actor({name!r}), or pass "
                    "get_if_exists=True to reuse it")
        record = ActorRecord(actor_id, spec, name, namespace, detached, owner_worker_id,
                             max_restarts, owner_node_id=owner_node_id)
        self.actors[actor_id] = record
        if name:
            self.names[(namespace, name)] = actor_id
        return record, True, self._place(record)

    def placed(self, actor_id: bytes, attempt: int, *, node_id: str, lease_id: bytes,
               worker_id: str) -> list:
        """A worker was leased for the actor (its constructor runs next)."""
        record = self.actors.get(actor_id)
        if record is None or record.attempt != attempt or record.state == DEAD:
            # Killed while being placed: give the worker straight back.
            return [StopWorker(actor_id, node_id, lease_id, worker_id)]
        record.node_id, record.lease_id, record.worker_id = node_id, lease_id, worker_id
        self.changed.add(actor_id)
        return []

    def created(self, actor_id: bytes, attempt: int, address: str, pid: int = 0,
                push_port: int = 0) -> list:
        record = self.actors.get(actor_id)
        if record is None or record.attempt != attempt or record.state == DEAD:
            return []
        record.state = ALIVE
        record.address = address
        record.push_port = push_port
        record.pid = pid
        self._bump(record)
        return []

    def creation_failed(self, actor_id: bytes, attempt: int, error: bytes, cause: str) -> list:
        """The constructor raised (error set) or could not run (cause only)."""
        record = self.actors.get(actor_id)
        if record is None or record.attempt != attempt or record.state == DEAD:
            return []
        record.creation_error = error
        return self._die(record, cause)

    def worker_died(self, worker_id: str, reason: str) -> list:
        """A worker process exited: restart or bury its actor, and the actors it owned."""
        actions: list = []
        for record in list(self.actors.values()):
            if record.state == DEAD:
                continue
            if record.worker_id == worker_id:
                actions += self._lost(record, reason)
            elif record.owner_worker_id == worker_id and not record.detached:
                actions += self._die(record, "its owner (the process that created it) died; "
                                             "pass lifetime='detached' to let it outlive "
                                             "its creator")
        return actions

    def owner_died(self, worker_id: str) -> list:
        actions: list = []
        for record in list(self.actors.values()):
            if record.state != DEAD and record.owner_worker_id == worker_id \
                    and not record.detached:
                actions += self._die(record, "its owner (the process that created it) exited; "
                                             "pass lifetime='detached' to let it outlive "
                                             "its creator")
        return actions

    def kill(self, actor_id: bytes, no_restart: bool, reason: str) -> list:
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD:
            return []
        if not no_restart and record.state == ALIVE and self._can_restart(record):
            return self._lost(record, reason)
        return self._die(record, reason)

    def node_died(self, node_id: str) -> list:
        """Restart or bury the actors that ran there, and bury those whose owner ran there."""
        actions: list = []
        for record in list(self.actors.values()):
            if record.state != DEAD and record.node_id == node_id:
                actions += self._lost(record, f"its node {node_id[:12]} died", worker_gone=True)
        for record in list(self.actors.values()):
            if record.state != DEAD and not record.detached and node_id \
                    and record.owner_node_id == node_id:
                actions += self._die(record, f"its owner's node {node_id[:12]} died; pass "
                                             "lifetime='detached' to let it outlive its creator")
        return actions

    # ------------------------------------------------------------ transitions
    def _can_restart(self, record: ActorRecord) -> bool:
        return record.max_restarts == -1 or record.num_restarts < record.max_restarts

    def _lost(self, record: ActorRecord, reason: str, worker_gone: bool = False) -> list:
        """The actor's worker is gone (or going): restart if allowed, else bury."""
        if record.state in (PENDING, RESTARTING) and not record.worker_id:
            return []  # not placed yet: nothing was lost
        if self._can_restart(record):
            stop = self._stop(record)
            if worker_gone:
                stop = []  # nothing left to stop on a dead node
            record.num_restarts += 1
            record.state = RESTARTING
            record.death_cause = reason
            record.address = ""
            record.pid = 0
            record.node_id = ""
            return stop + self._place(record)
        actions = self._die(record, reason)
        return [] if worker_gone else actions

    def _die(self, record: ActorRecord, cause: str) -> list:
        actions = self._stop(record)
        record.state = DEAD
        record.death_cause = cause
        record.address = ""
        record.pid = 0
        record.attempt += 1  # results of an in-flight placement are now stale
        if record.name and self.names.get((record.namespace, record.name)) == record.actor_id:
            del self.names[(record.namespace, record.name)]
        self._bump(record)
        return actions

    def _stop(self, record: ActorRecord) -> list:
        if not record.worker_id and not record.lease_id:
            return []
        action = StopWorker(record.actor_id, record.node_id, record.lease_id, record.worker_id)
        record.worker_id = ""
        record.lease_id = b""
        return [action]

    def _place(self, record: ActorRecord) -> list:
        record.attempt += 1
        self._bump(record)
        return [Place(record.actor_id, record.attempt)]

    def _bump(self, record: ActorRecord) -> None:
        record.version = next(self._versions)
        self.changed.add(record.actor_id)

    # ------------------------------------------------------------ restart
    def restore(self, records: list[ActorRecord]) -> list:
        """Take back the records a previous control service stored; returns actions.

        ALIVE actors stay ALIVE at their address (their workers outlived the
        control service). A placement that was under way died with it: the
        worker it may have leased is stopped and placement starts over.
        Versions continue above the highest stored one, so callers'
        long-polls (``after_version``) still see every later change.
        """
        actions: list = []
        top = max((r.version for r in records), default=0)
        self._versions = itertools.count(top + 1)
        for record in records:
            self.actors[record.actor_id] = record
            if record.state != DEAD and record.name:
                self.names[(record.namespace, record.name)] = record.actor_id
        for record in records:
            if record.state in (PENDING, RESTARTING):
                actions += self._stop(record) + self._place(record)
        return actions

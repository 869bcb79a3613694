"""The control service's durable state: one SQLite file in the session directory.

Everything a restarted control service needs to carry on is written through
here as it changes: the KV (functions, cluster metadata, job counter), the node
table, the actor directory, placement groups and the drivers (jobs) that are
connected. A restart reads it all back with :meth:`GcsStore.load`.

Writes are cheap: WAL mode with ``synchronous=NORMAL`` (a write is durable
against a process crash, which is what a kill -9 of the control service is; a
power loss may lose the last few), and each state change is one transaction.
Heartbeats (a node's free resources) are not stored: they are refreshed within
a second of a restart anyway.

>>> store = GcsStore("/tmp/ember/session_x/control.sqlite")
>>> store.kv_put("fn", b"key", b"value")
>>> store.load().kv[("fn", b"key")]
b'value'
"""
from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .actor_directory import ActorRecord
from .protos import ember_pb2 as pb

logger = logging.getLogger("ember")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (ns TEXT, key BLOB, value BLOB, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS nodes (node_id TEXT PRIMARY KEY, info BLOB);
CREATE TABLE IF NOT EXISTS actors (actor_id BLOB PRIMARY KEY, spec BLOB, state TEXT);
CREATE TABLE IF NOT EXISTS placement_groups (pg_id BLOB PRIMARY KEY, spec BLOB, state TEXT);
CREATE TABLE IF NOT EXISTS drivers (worker_id TEXT PRIMARY KEY, job_id INTEGER,
                                    connected INTEGER);
"""

# ActorRecord fields kept in the ``state`` JSON column (the spec has its own
# column, written once); bytes fields are base64.
_ACTOR_BYTES = ("lease_id", "creation_error")
_ACTOR_FIELDS = ("name", "namespace", "detached", "owner_worker_id", "max_restarts", "state",
                 "attempt", "num_restarts", "node_id", "lease_id", "worker_id", "address",
                 "push_port", "pid", "death_cause", "creation_error", "version", "owner_node_id")


def actor_state_json(record: ActorRecord) -> str:
    """The mutable part of an actor record, as stored (pure)."""
    out: dict[str, Any] = {}
    for name in _ACTOR_FIELDS:
        value = getattr(record, name)
        out[name] = base64.b64encode(value).decode() if name in _ACTOR_BYTES else value
    return json.dumps(out, separators=(",", ":"))


def actor_from_row(actor_id: bytes, spec: Any, state: str) -> ActorRecord:
    """Rebuild an actor record from its stored row (pure)."""
    fields = json.loads(state)
    for name in _ACTOR_BYTES:
        fields[name] = base64.b64decode(fields.get(name, ""))
    known = {k: v for k, v in fields.items() if k in _ACTOR_FIELDS}
    return ActorRecord(actor_id=actor_id, spec=spec, **known)


@dataclass
class StoredGroup:
    """A placement group as stored: its spec, state, bundle nodes, version and error."""
    spec: pb.PlacementGroupSpec
    state: str
    nodes: list[str]
    version: int
    error: str = ""


@dataclass
class StoredDriver:
    worker_id: str
    job_id: int
    connected: bool


@dataclass
class Snapshot:
    """Everything :meth:`GcsStore.load` read back."""
    kv: dict[tuple[str, bytes], bytes] = field(default_factory=dict)
    nodes: list[pb.NodeInfo] = field(default_factory=list)
    actors: list[ActorRecord] = field(default_factory=list)
    groups: list[StoredGroup] = field(default_factory=list)
    drivers: list[StoredDriver] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True for a new session (nothing but KV metadata to restore)."""
        return not (self.nodes or self.actors or self.groups or self.drivers)


class GcsStore:
    """Write-through persistence for the control service (``path`` None: memory only).

    Thread-safe; each method is one transaction.

    >>> store = GcsStore(None)        # nothing persisted, every call is a no-op
    >>> store.put_node(pb.NodeInfo(node_id="n1", alive=True))
    """

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._failed = False
        if not path:
            return
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise RuntimeError(
                f"{path} was written by a newer Ember (state schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}): restart the cluster with that version, or start a "
                "new session")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db = db

    # ------------------------------------------------------------ reading
    def load(self) -> Snapshot:
        """Read back every table (on start; a new session gives an empty snapshot)."""
        snap = Snapshot()
        if self._db is None:
            return snap
        with self._lock:
            db = self._db
            for ns, key, value in db.execute("SELECT ns, key, value FROM kv"):
                snap.kv[(ns, bytes(key))] = bytes(value)
            for (info,) in db.execute("SELECT info FROM nodes"):
                snap.nodes.append(pb.NodeInfo.FromString(bytes(info)))
            for actor_id, spec, state in db.execute("SELECT actor_id, spec, state FROM actors"):
                snap.actors.append(actor_from_row(
                    bytes(actor_id), pb.ActorSpec.FromString(bytes(spec)), state))
            for pg_id, spec, state in db.execute(
                    "SELECT pg_id, spec, state FROM placement_groups"):
                fields = json.loads(state)
                snap.groups.append(StoredGroup(
                    pb.PlacementGroupSpec.FromString(bytes(spec)), fields["state"],
                    list(fields["nodes"]), int(fields["version"]), fields.get("error", "")))
            for worker_id, job_id, connected in db.execute(
                    "SELECT worker_id, job_id, connected FROM drivers"):
                snap.drivers.append(StoredDriver(worker_id, int(job_id), bool(connected)))
        return snap

    # ------------------------------------------------------------ writing
    def _write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        with self._lock:
            db = self._db
            if db is None:
                return          # memory only, or closed at exit
            try:
                db.execute("BEGIN")
                for sql, params in statements:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except sqlite3.Error as e:
                # The service keeps running on its in-memory state; only a
                # restart would miss this change. Say so once, loudly.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if not self._failed:
                    self._failed = True
                    logger.error("cannot write the control service's state to SQLite (%s): a "
                                 "restart of the control service would lose recent changes", e)

    def kv_put(self, ns: str, key: bytes, value: bytes) -> None:
        self._write([("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))])

    def kv_delete(self, ns: str, key: bytes) -> None:
        self._write([("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))])

    def put_node(self, node: pb.NodeInfo) -> None:
        """Record a node (on registration and on death; heartbeats are not stored)."""
        self._write([("INSERT OR REPLACE INTO nodes VALUES (?, ?)",
                      (node.node_id, node.SerializeToString()))])

    def save_actors(self, records: Iterable[tuple[ActorRecord, bool]]) -> None:
        """Write actor records in one transaction; ``(record, new)``: a new one has its
        spec written too (it never changes afterwards)."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for record, new in records:
            state = actor_state_json(record)
            if new:
                statements.append(("INSERT OR REPLACE INTO actors VALUES (?, ?, ?)",
                                   (record.actor_id, record.spec.SerializeToString(), state)))
            else:
                statements.append(("UPDATE actors SET state=? WHERE actor_id=?",
                                   (state, record.actor_id)))
        if statements:
            self._write(statements)

    def save_group(self, spec: pb.PlacementGroupSpec, state: str, nodes: list[str],
                   version: int, error: str = "") -> None:
        fields = json.dumps({"state": state, "nodes": list(nodes), "version": version,
                             "error": error})
        self._write([("INSERT OR REPLACE INTO placement_groups VALUES (?, ?, ?)",
                      (spec.pg_id, spec.SerializeToString(), fields))])

    def put_driver(self, worker_id: str, job_id: int, connected: bool) -> None:
        """A driver connected (or its stream ended: ``connected`` False)."""
        self._write([("INSERT OR REPLACE INTO drivers VALUES (?, ?, ?)",
                      (worker_id, job_id, int(connected)))])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

"""Caller-side actor calls: creation, ordering, the direct stream, failures.

The life of an actor call, seen from the caller:

1. ``submit`` builds the spec and resolves ref arguments exactly as for a
   task (task_submitter.prepare), then appends the call to the actor's queue
   in submission order.
2. Calls leave the queue strictly in order: a call whose arguments are not
   ready yet holds back the ones behind it, so one caller's calls run in the
   order they were made.
3. They travel over one long-lived PushTasks stream straight to the actor's
   worker (no hop through the control service or node manager) and results
   come back on it. The actor's address comes from the control service once,
   by a long-poll that also reports restarts and death.
4. If the stream breaks, the control service says whether the actor is
   restarting (calls with ``max_task_retries`` left are resent, the others
   fail with ActorUnavailableError) or dead (everything fails with
   ActorDiedError, and so do later calls, at once).
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Any

import grpc

from . import ids, serialization
from .actor_directory import ALIVE, DEAD
from .protos import ember_pb2 as pb
from .task_events import PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER
from .transports import base as transports

logger = logging.getLogger("ember")

# Seconds one GetActor long-poll may wait on the control service.
POLL_SECONDS = 5.0
# How long a caller about to wait for one call's result reads the connection itself
# (poll_result): a 1:1 round trip takes 60-100 us here; a longer call then costs this
# much spinning once before the caller sleeps as before.
RESULT_POLL_S = 0.0005


class _Conn:
    """One PushTasks stream to an actor's worker."""

    def __init__(self, submitter: "ActorSubmitter", actor: "_Actor", address: str,
                 where: pb.Address) -> None:
        self.address = address
        self.dead = False
        self.call = transports.open_push(submitter.core, where)
        threading.Thread(target=submitter._read, args=(actor, self), daemon=True,
                         name="ember-actor-results").start()

    def send(self, batch: pb.TaskBatch) -> None:
        self.call.send(batch)

    def close(self) -> None:
        self.call.close()


class _Actor:
    """What this process knows about one actor it calls."""

    def __init__(self, actor_id: bytes, class_name: str) -> None:
        self.actor_id = actor_id
        self.class_name = class_name
        self.state = -1                  # unknown until the control service answers
        self.version = 0
        self.address = ""
        self.conn: _Conn | None = None
        self.queue: collections.deque = collections.deque()   # not yet sent, in order
        self.in_flight: dict[bytes, Any] = {}                 # sent, insertion-ordered
        self.orphans: list = []          # in flight when the stream broke
        self.creation_args: list[bytes] = []  # refs its constructor holds (for restarts)
        self.dead_error: bytes | None = None
        self.watching = False
        # Its last handle is gone but calls made before are still pending: it is
        # stopped when they are done (as Ray does: ``A.remote().f.remote()`` works).
        self.released = False
        self.pump: Any = None            # set by ActorSubmitter._actor

    def idle(self) -> bool:
        """No call of this process is waiting, being sent or running."""
        return not (self.queue or self.in_flight or self.orphans)


class ActorSubmitter:
    def __init__(self, core: Any, tasks: Any) -> None:
        self.core = core
        self.tasks = tasks
        self._lock = tasks._lock         # one lock with the task submitter: results share state
        self._actors: dict[bytes, _Actor] = {}
        self._stopped = False

    # ------------------------------------------------------------ creation
    def create(self, spec: pb.ActorSpec, args: tuple, kwargs: dict) -> pb.ActorInfo | None:
        """Resolve constructor arguments, then register the actor with the control service.

        Returns the existing actor's info when ``get_if_exists`` found one;
        raises ValueError when the name is taken.
        """
        from ..exceptions import ActorDiedError, TaskError
        core = self.core
        done = threading.Event()
        # One return slot: an argument that fails lands there as the error.
        spec.creation.num_returns = 1
        task, deps, ref = self.tasks.prepare(spec.creation, args, kwargs, ("actor-create",), 0,
                                             sink=lambda t: done.set())
        # The constructor's arguments stay counted as submitted until the actor
        # can no longer restart (dead, or its last handle gone): a restart runs
        # the constructor again.
        with self._lock:
            self.tasks._tasks.pop(task.spec.task_id, None)
        core.memory_store.on_ready(ref[0]._id, lambda e: done.set())
        self.tasks.start(task, deps)
        # Arguments that are refs still being computed are waited for here, as
        # Ray does, so that their errors surface at creation.
        done.wait()
        if task.state == "done":
            entry = core.memory_store.get(ref[0]._id)
            cause_error = _load_error(bytes(entry.data)) if entry is not None and entry.data else None
            raise ActorDiedError(spec.actor_id.hex(), "an argument of its constructor failed",
                                 cause_error if isinstance(cause_error, TaskError) else None)
        spec.creation.CopyFrom(task.spec)
        core.task_events.record(task.spec.task_id, task.spec.attempt_number,
                                PENDING_NODE_ASSIGNMENT)
        reply = core.gcs.CreateActor(spec, timeout=60)
        if reply.error:
            raise ValueError(reply.error)
        # Our own id back means a resend whose first reply was lost registered it.
        if not reply.created and reply.info.actor_id != spec.actor_id:
            return reply.info
        with self._lock:
            actor = self._actor(spec.actor_id, spec.class_name)
            actor.creation_args = list(task.arg_ids)
            self._apply_info(actor, reply.info)
            if actor.conn is None and not actor.watching and actor.state != DEAD:
                self._watch(actor)  # learn its address as soon as it is up
        return None

    def out_of_scope(self, actor_id: bytes) -> None:
        """The last handle anywhere is gone: stop the actor once the calls this process
        made to it are done (detached actors never get here)."""
        with self._lock:
            actor = self._actors.get(actor_id)
            if actor is not None:
                if not actor.idle() and actor.state != DEAD:
                    actor.released = True
                    return
                self._release_creation_args(actor)
        self._stop_unreferenced(actor_id)

    def _stop_if_released(self, actor: _Actor) -> None:
        """After calls finished: stop an actor whose last handle went meanwhile. Lock held."""
        if actor.released and actor.idle():
            actor.released = False
            self._release_creation_args(actor)
            self._stop_unreferenced(actor.actor_id)

    def _stop_unreferenced(self, actor_id: bytes) -> None:
        core = self.core
        request = pb.KillActorRequest(actor_id=actor_id, no_restart=True,
                                      reason="all references to it went out of scope")
        core.notify(lambda: core.gcs.KillActor(request, timeout=10))

    def kill(self, actor_id: bytes, no_restart: bool) -> None:
        reason = "killed by ember.kill()"
        self.core.gcs.KillActor(pb.KillActorRequest(
            actor_id=actor_id, no_restart=no_restart, reason=reason), timeout=30)
        with self._lock:
            actor = self._actors.get(actor_id)
            if actor is None:
                return
            if no_restart:
                # Calls made after kill() returns must fail, even ones that would
                # beat the news of the death over the still-open stream.
                self._bury(actor, reason)
            elif actor.conn is not None:
                # The old process is gone (kill is synchronous): calls made after
                # kill() returns wait for the restarted one instead of reaching
                # the dead stream; the calls it had are settled like a crash's.
                conn, actor.conn = actor.conn, None
                conn.dead = True
                conn.close()
                actor.orphans.extend(actor.in_flight.values())
                actor.in_flight.clear()
                if not self._stopped and not actor.watching:
                    self._watch(actor)

    # ------------------------------------------------------------ calls
    def submit(self, actor_id: bytes, class_name: str, method: str, args: tuple,
               kwargs: dict, num_returns: int, concurrency_group: str,
               max_task_retries: int, call_name: str = "") -> Any:
        spec = pb.TaskSpec(name=call_name or f"{class_name}.{method}", num_returns=num_returns,
                           actor_id=actor_id, method_name=method,
                           concurrency_group=concurrency_group)
        with self._lock:
            actor = self._actor(actor_id, class_name)
        task, deps, refs = self.tasks.prepare(
            spec, args, kwargs, ("actor", actor_id), max_task_retries,
            sink=actor.pump)
        task.actor = actor
        with self._lock:
            if actor.dead_error is not None:
                self.tasks._finish_with_error_bytes(task, actor.dead_error)
                return refs
            actor.queue.append(task)
            if actor.conn is None and not actor.watching:
                self._watch(actor)
        self.tasks.start(task, deps)
        return refs

    def _actor(self, actor_id: bytes, class_name: str) -> _Actor:
        actor = self._actors.get(actor_id)
        if actor is None:
            actor = self._actors[actor_id] = _Actor(actor_id, class_name)
            # Every call's sink (a resolved call goes to _pump): made once per actor,
            # not a closure per call.
            actor.pump = lambda task, actor=actor: self._pump(actor)
        return actor

    def _pump(self, actor: _Actor) -> None:
        """Send every call at the head of the queue whose arguments are ready."""
        with self._lock:
            conn = actor.conn
            if conn is None or conn.dead:
                return
            specs = []
            q = actor.queue
            while q:
                task = q[0]
                if task.state == "done":       # failed or cancelled before it was sent
                    q.popleft()
                    self._stop_if_released(actor)
                    continue
                if task.state != "queued":     # still resolving: later calls wait behind it
                    break
                q.popleft()
                task.state = "pushed"
                actor.in_flight[task.spec.task_id] = task
                specs.append(task.spec)
                self.core.task_events.record(task.spec.task_id, task.spec.attempt_number,
                                             SUBMITTED_TO_WORKER)
            if specs:
                conn.send(pb.TaskBatch(tasks=specs))

    # ------------------------------------------------------------ results
    def poll_result(self, object_id: bytes) -> None:
        """The caller is about to wait for ``object_id``: if an actor call sent over a
        framed socket makes it, read that socket on this thread for a moment
        (FramedPushCall.poll) so the result is handled as it lands."""
        task = self.tasks._tasks.get(ids.task_id_of(object_id))
        if task is None or task.actor is None or task.state != "pushed":
            return
        actor: _Actor = task.actor
        conn = actor.conn
        if conn is None or conn.dead:
            return
        poll = getattr(conn.call, "poll", None)
        entry = self.core.memory_store.get(object_id)
        if poll is None or entry is None or entry.ready:
            return
        poll(lambda: entry.ready, RESULT_POLL_S,
             lambda batch: self._on_results(actor, conn, batch.results))

    def _read(self, actor: _Actor, conn: _Conn) -> None:
        for batch in conn.call:         # ends when the stream breaks or closes
            self._on_results(actor, conn, batch.results)
        with self._lock:
            conn.dead = True
            if actor.conn is not conn:
                return
            actor.conn = None
            actor.orphans.extend(actor.in_flight.values())
            actor.in_flight.clear()
            if not self._stopped and not actor.watching:
                self._watch(actor)

    def _on_results(self, actor: _Actor, conn: _Conn, results: Any) -> None:
        """One ResultBatch: settle every result under the lock, then hand the
        returns over outside it."""
        tasks = self.tasks
        done = []
        with self._lock:
            for result in results:
                if result.generator_item:
                    tasks._on_generator_item(result)
                    continue
                task = actor.in_flight.pop(result.task_id, None)
                tasks._tasks.pop(result.task_id, None)
                if task is not None:
                    task.state = "done"
                if result.generator_done:
                    tasks._end_generator(result)
                done.append((task, result))
            self._stop_if_released(actor)

        def send(batch: pb.TaskBatch) -> None:
            if not conn.dead:
                conn.send(batch)

        for task, result in done:
            tasks._deliver_returns(task, result, send)

    # ------------------------------------------------------------ actor state
    def _watch(self, actor: _Actor) -> None:
        """Follow the actor's state in the control service until it is usable or dead."""
        actor.watching = True
        threading.Thread(target=self._watch_loop, args=(actor,), daemon=True,
                         name="ember-actor-watch").start()

    def _watch_loop(self, actor: _Actor) -> None:
        core = self.core
        failures = 0
        while not self._stopped:
            try:
                info = core.gcs.GetActor(pb.GetActorRequest(
                    actor_id=actor.actor_id, after_version=actor.version, timeout=POLL_SECONDS),
                    timeout=POLL_SECONDS + 30)
                failures = 0
            except grpc.RpcError as e:
                failures += 1
                if failures >= 3 or self._stopped:
                    with self._lock:
                        actor.watching = False
                        self._bury(actor, f"the control service is unreachable ({e.code().name})")
                    return
                continue
            with self._lock:
                if not info.found:
                    actor.watching = False
                    self._bury(actor, "the control service does not know this actor")
                    return
                self._apply_info(actor, info)
                if actor.state == DEAD or (actor.conn is not None and not actor.orphans):
                    actor.watching = False
                    return

    def _apply_info(self, actor: _Actor, info: pb.ActorInfo) -> None:
        """Act on news from the control service; called with the lock held."""
        actor.version = max(actor.version, info.version)
        actor.state = info.state
        if info.state == DEAD:
            self._bury(actor, info.death_cause, info.creation_error)
            return
        if actor.orphans:
            self._settle_orphans(actor, info)
        if info.state == ALIVE:
            address = f"{info.address.ip}:{info.address.port}"
            if actor.conn is None or actor.conn.dead or actor.conn.address != address:
                if actor.conn is not None:
                    actor.conn.close()
                try:
                    actor.conn = _Conn(self, actor, address, info.address)
                except Exception as e:  # noqa: BLE001 - shutting down
                    logger.debug("cannot reach actor %s: %s", actor.actor_id.hex(), e)
                    return
                actor.address = address
            # _pump takes the same (re-entrant) lock.
            self._pump(actor)

    def _settle_orphans(self, actor: _Actor, info: pb.ActorInfo) -> None:
        """Calls that were in flight when the stream broke: resend or fail them."""
        from ..exceptions import ActorUnavailableError
        orphans, actor.orphans = actor.orphans, []
        resend = []
        for task in orphans:
            if task.state == "done":
                continue
            if task.retries_left != 0:
                task.retries_left -= 1
                cause = info.death_cause or "connection lost"
                self.core.task_events.retrying(task.spec, (
                    "ACTOR_UNAVAILABLE", f"the actor lost its worker ({cause}); resending"))
                task.state = "queued"
                resend.append(task)
            else:
                self.tasks._finish_with_exception(task, ActorUnavailableError(
                    f"The actor {actor.actor_id.hex()} ({actor.class_name}) lost its worker "
                    f"while running {task.spec.name} ({info.death_cause or 'connection lost'}); "
                    "it is being restarted. Retry the call, or set max_task_retries= on the "
                    "actor to have Ember resend interrupted calls.",
                    actor.actor_id.hex()))
        actor.queue.extendleft(reversed(resend))

    def _bury(self, actor: _Actor, cause: str, creation_error: bytes = b"") -> None:
        """The actor is dead: fail everything pending and every later call. Lock held."""
        from ..exceptions import ActorDiedError, RuntimeEnvSetupError
        if actor.dead_error is None:
            cause_error = _load_error(creation_error) if creation_error else None
            err: Exception = ActorDiedError(actor.actor_id.hex(), cause, cause_error)
            if isinstance(cause_error, RuntimeEnvSetupError):
                err = cause_error       # as Ray: its calls raise the setup error itself
            actor.dead_error = serialization.to_bytes(serialization.serialize(err))
        actor.state = DEAD
        self._release_creation_args(actor)
        if actor.conn is not None:
            actor.conn.close()
            actor.conn = None
        pending = actor.orphans + list(actor.in_flight.values()) + list(actor.queue)
        actor.orphans, actor.queue = [], collections.deque()
        actor.in_flight.clear()
        for task in pending:
            if task.state != "done":
                self.tasks._finish_with_error_bytes(task, actor.dead_error)

    def _release_creation_args(self, actor: _Actor) -> None:
        """The actor cannot restart any more: its constructor's arguments may go."""
        arg_ids, actor.creation_args = actor.creation_args, []
        if arg_ids:
            core = self.core
            core.notify(lambda: core._run_rc(lambda: core.refs.remove_submitted(arg_ids)))

    def check_pending_limit(self, actor_id: bytes, limit: int) -> None:
        from ..exceptions import PendingCallsLimitExceeded
        with self._lock:
            actor = self._actors.get(actor_id)
            if actor is None:
                return
            pending = len(actor.queue) + len(actor.in_flight)
        if pending >= limit:
            raise PendingCallsLimitExceeded(
                f"actor {actor.class_name} already has {pending} calls pending from this "
                f"caller (max_pending_calls={limit}): wait for some results (ember.get/wait) "
                "before submitting more, or raise max_pending_calls")

    def is_dead(self, actor_id: bytes) -> bool:
        with self._lock:
            actor = self._actors.get(actor_id)
            return actor is not None and actor.state == DEAD

    # ------------------------------------------------------------ cancel & stop
    def cancel(self, task: Any, force: bool, recursive: bool) -> None:
        """Cancel an actor call: queued calls fail at once; a running call on an
        async actor is cancelled; a running call on a sync actor runs on (its
        state would be left half-changed). Called with the task lock held."""
        from ..exceptions import TaskCancelledError
        if force:
            raise ValueError("force=True is not supported for actor calls (it would kill the "
                             "actor and lose its state): use ember.kill(actor) instead")
        actor = task.actor
        if task.state in ("deps", "queued"):
            try:
                actor.queue.remove(task)
            except ValueError:
                pass
            self.tasks._finish_with_exception(task, TaskCancelledError(task.spec.task_id.hex()))
            self._stop_if_released(actor)
            return
        conn = actor.conn
        if conn is not None and not conn.dead:
            conn.send(pb.TaskBatch(cancels=[pb.CancelRequest(
                task_id=task.spec.task_id, force=False, recursive=recursive)]))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for actor in self._actors.values():
                if actor.conn is not None:
                    actor.conn.close()
                    actor.conn = None


def _load_error(data: bytes) -> Any:
    try:
        return serialization.deserialize(data)
    except Exception:  # noqa: BLE001 - the cause itself may not unpickle here
        return None


__all__ = ["ActorSubmitter"]

"""Exceptions raised by Ember, mirroring ``ray.exceptions``.

Hierarchy, and what to do when you see each error::

    EmberError (RayError)                  base; catch this to catch everything Ember raises
    +-- TaskError (RayTaskError)           your task/actor method raised; read the remote
    |                                      traceback in str(err) and fix the code
    +-- ActorError (RayActorError)         an actor call could not complete
    |   +-- ActorDiedError                 actor is gone (crash, kill, failed __init__);
    |   |                                  create a new actor or set max_restarts=
    |   +-- ActorUnavailableError          actor is restarting or unreachable; retry later
    +-- WorkerCrashedError                 worker process died mid-task (segfault, OOM kill);
    |                                      check worker logs, set max_retries=
    +-- ObjectLostError                    every copy of an object is gone; re-run its task
    |   +-- ObjectReconstructionFailedError
    |   |                                  it cannot be rebuilt (made by put, or by an actor
    |   |                                  call); keep a copy or re-create it yourself
    |   +-- ObjectReconstructionFailedMaxAttemptsExceededError
    |   |                                  rebuilding failed too often; raise max_retries=
    |   +-- ObjectReconstructionFailedLineageEvictedError
    |   |                                  lineage dropped to save memory; raise
    |   |                                  EMBER_MAX_LINEAGE_BYTES or re-run the task
    |   +-- ObjectFetchTimedOutError       remote fetch timed out; check node connectivity
    |   +-- ReferenceCountingAssertionError
    |   |                                  internal bug; please report it
    |   +-- OwnerDiedError                 the process that created the ref died; keep
    |                                      owners (driver/actors) alive while refs are used
    +-- GetTimeoutError (also TimeoutError) get()/wait() timeout hit; raise timeout=
    +-- TaskCancelledError                 the task was cancelled with ember.cancel()
    +-- ObjectStoreFullError               shared memory full even after spilling to
    |                                      disk; drop values/refs or raise
    |                                      object_store_memory
    +-- OutOfMemoryError                   a node ran low on RAM and killed a worker; use
    |                                      fewer/smaller tasks or request more memory
    +-- NodeDiedError                      a node left the cluster; check that host
    +-- TaskUnschedulableError             no node can ever run the task (e.g. hard node
    |                                      affinity to a dead node); change its strategy
    +-- RuntimeEnvSetupError               runtime_env could not be installed; fix the env
    +-- AuthenticationError                cluster token rejected; use the cluster's token
    +-- ObjectRefStreamEndOfStreamError    streaming generator exhausted; stop iterating
    +-- PendingCallsLimitExceeded          too many queued actor calls; raise
    |                                      max_pending_calls= or wait for results
    +-- CrossLanguageError                 error from another language's worker
    +-- EmberSystemError (RaySystemError)  internal failure; please report it
    +-- SerializationError (also TypeError) a value could not be pickled; make it
                                           picklable or create it inside the task

``TaskError.as_instanceof_cause()`` returns an error that is *also* an instance of
the original exception type, so ``except ValueError`` works across processes.
"""

from __future__ import annotations

import pickle
import threading
import traceback
import types
from typing import Any, ClassVar

__all__ = [
    "EmberError", "TaskError", "ActorError", "ActorDiedError", "ActorUnavailableError",
    "WorkerCrashedError", "ObjectLostError", "ObjectReconstructionFailedError",
    "ObjectReconstructionFailedMaxAttemptsExceededError",
    "ObjectReconstructionFailedLineageEvictedError", "ObjectFetchTimedOutError",
    "ReferenceCountingAssertionError", "OwnerDiedError", "GetTimeoutError",
    "TaskCancelledError", "ObjectStoreFullError", "OutOfMemoryError", "NodeDiedError",
    "RuntimeEnvSetupError", "AuthenticationError", "TaskUnschedulableError", "ObjectRefStreamEndOfStreamError",
    "PendingCallsLimitExceeded", "CrossLanguageError", "EmberSystemError",
    "SerializationError",
    # Ray spellings
    "RayError", "RayTaskError", "RayActorError", "RaySystemError",
]

_INTERNAL_PATH = "/ember/_private/"


class EmberError(Exception):
    """Base class of every Ember error.

    Example: ``try: ember.get(ref) except EmberError: ...``"""

    def _init_args(self) -> tuple[Any, ...]:
        # Subclasses whose __init__ signature differs from self.args override this so
        # that unpickling re-runs __init__ with the original arguments.
        return self.args

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._init_args(), self.__dict__ or None)


class _HintedError(EmberError):
    # Shared plumbing: an optional message, a default, and a "what to do" hint that is
    # appended once (the raw message is what gets pickled, so it is never doubled).
    _default: ClassVar[str] = ""
    _hint: ClassVar[str] = ""

    def __init__(self, message: str = "") -> None:
        self._message = message
        self.message = message or self._default
        super().__init__(_join(self.message, self._hint))

    def _init_args(self) -> tuple[Any, ...]:
        return (self._message,)


def _join(*parts: str) -> str:
    # Each part is a sentence; end it with a period so a hint never runs on
    # from the message ("... ember.nodes() Relax ...").
    kept = [p.strip() for p in parts if p and p.strip()]
    return " ".join(p if i == len(kept) - 1 or p[-1] in ".!?:" else p + "."
                    for i, p in enumerate(kept))


def _safe_str(exc: BaseException) -> str:
    # A broken __str__ in user code must not hide the original failure.
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


class TaskError(EmberError):
    """A remote task or actor method raised; ``str()`` shows the remote traceback.

    Example: ``except TaskError as e: print(e.cause, e.traceback_str)``"""

    function_name: str
    traceback_str: str
    cause: BaseException | None
    pid: int
    ip: str
    actor_repr: str | None

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None,
                 pid: int = 0, ip: str = "127.0.0.1", actor_repr: str | None = None) -> None:
        super().__init__(function_name, traceback_str, cause, pid, ip, actor_repr)
        _set_task_fields(self, function_name, traceback_str, cause, pid, ip, actor_repr)

    def _init_args(self) -> tuple[Any, ...]:
        return (self.function_name, self.traceback_str, self.cause, self.pid, self.ip,
                self.actor_repr)

    def __str__(self) -> str:
        where = f"pid={self.pid}, ip={self.ip}"
        if self.actor_repr:
            where += f", repr={self.actor_repr}"
        header = f"ember::{self.function_name}() ({where})"
        body = self.traceback_str.rstrip("\n")
        if not body and self.cause is not None:
            body = f"{type(self.cause).__name__}: {_safe_str(self.cause)}"
        return f"{header}\n{body}" if body else header

    def as_instanceof_cause(self) -> TaskError:
        """Return an error that is both a ``TaskError`` and an instance of the cause's type.

        Example: ``raise err.as_instanceof_cause()`` is caught by ``except ValueError``."""
        cause = self.cause
        if cause is None or isinstance(cause, TaskError):
            return self
        cls = _dual_class(type(cause))
        if cls is None:
            return self
        try:
            # The cause's __init__ may take arbitrary arguments, so never call it.
            dual = cls.__new__(cls)
        except Exception:
            return self
        _copy_fields(cause, dual)
        _set_task_fields(dual, self.function_name, self.traceback_str, cause, self.pid,
                         self.ip, self.actor_repr)
        dual.args = cause.args
        return dual

    @classmethod
    def from_exception(cls, exc: BaseException, function_name: str, pid: int,
                       ip: str = "127.0.0.1", actor_repr: str | None = None) -> TaskError:
        """Wrap an exception caught in a worker so it can be sent to the caller.

        Example: ``except Exception as e: err = TaskError.from_exception(e, "f", os.getpid())``"""
        if isinstance(exc, TaskError):
            # A failed argument's error propagates as-is, keeping the original traceback.
            return exc
        tb_text = _format_user_traceback(exc)
        cause: BaseException = exc
        if not _round_trips(exc):
            cause = EmberError(f"{type(exc).__name__}: {_safe_str(exc)}")
        return cls(function_name, tb_text, cause, pid, ip, actor_repr)


def _copy_fields(cause: BaseException, dual: TaskError) -> None:
    # Copied so `except OSError as e: e.errno` or `except MyErr as e: e.code` keeps
    # working; runs before _set_task_fields so TaskError's own fields win on clashes.
    # Slots/C-level fields (errno, filename, UnicodeError.start, user __slots__) live
    # in member descriptors rather than __dict__.
    for klass in type(cause).__mro__:
        if klass in (BaseException, object):
            continue
        for name, attr in vars(klass).items():
            if isinstance(attr, types.MemberDescriptorType):
                try:
                    setattr(dual, name, getattr(cause, name))
                except Exception:
                    pass  # an unset slot has nothing to copy
    dual.__dict__.update(getattr(cause, "__dict__", {}))


def _set_task_fields(err: TaskError, function_name: str, traceback_str: str,
                     cause: BaseException | None, pid: int, ip: str,
                     actor_repr: str | None) -> None:
    err.function_name = function_name
    err.traceback_str = traceback_str
    err.cause = cause
    err.pid = pid
    err.ip = ip
    err.actor_repr = actor_repr


_dual_classes: dict[type, type[TaskError] | None] = {}
_dual_lock = threading.Lock()


def _dual_class(cause_cls: type) -> type[TaskError] | None:
    # Cached so that every TaskError(ValueError) is the same class: users compare
    # types, and re-creating classes per error would leak memory.
    with _dual_lock:
        if cause_cls in _dual_classes:
            return _dual_classes[cause_cls]
        name = f"TaskError({cause_cls.__name__})"

        def body(ns: dict[str, Any]) -> None:
            ns.update(__module__=__name__, __qualname__=name, __reduce__=_dual_reduce)

        try:
            cls: type[TaskError] | None = types.new_class(name, (TaskError, cause_cls),
                                                          None, body)
        except Exception:
            # Layout/metaclass conflicts raise TypeError; a user __init_subclass__ may
            # raise anything. Either way the plain TaskError is the right fallback.
            cls = None
        _dual_classes[cause_cls] = cls
        return cls


def _dual_reduce(self: TaskError) -> tuple[Any, ...]:
    return (_rebuild_dual, (self.function_name, self.traceback_str, self.cause, self.pid,
                            self.ip, self.actor_repr))


def _rebuild_dual(function_name: str, traceback_str: str, cause: BaseException | None,
                  pid: int, ip: str, actor_repr: str | None) -> TaskError:
    return TaskError(function_name, traceback_str, cause, pid, ip,
                     actor_repr).as_instanceof_cause()


def _format_user_traceback(exc: BaseException) -> str:
    te = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    todo = [te]
    while todo:  # also strip chained (__cause__/__context__) and group members
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        cur.stack = traceback.StackSummary.from_list(
            [f for f in cur.stack if _INTERNAL_PATH not in f.filename.replace("\\", "/")])
        todo.extend(x for x in (cur.__cause__, cur.__context__) if x is not None)
        todo.extend(getattr(cur, "exceptions", None) or ())
    return "".join(te.format())


def _round_trips(exc: BaseException) -> bool:
    # dumps() alone is not enough: a custom __init__ whose args differ from .args
    # pickles fine and then fails on loads() in the caller's process.
    pickler: Any = pickle
    try:
        import cloudpickle  # lazily: only the failure path needs it

        pickler = cloudpickle
    except ImportError:
        pass
    try:
        pickler.loads(pickler.dumps(exc))
    except Exception:
        return False
    return True


class ActorError(_HintedError):
    """An actor call could not complete.

    Example: ``except ActorError: handle = MyActor.remote()``"""

    _default = "The actor could not complete the call."
    _hint = "Check the actor's logs; create a new actor handle if it has died."


class ActorDiedError(ActorError):
    """The actor is dead: it crashed, was killed, or its ``__init__`` raised.

    Example: ``ActorDiedError(actor_id_hex="ab12", cause="killed by ember.kill()")``"""

    def __init__(self, actor_id_hex: str = "", cause: str = "",
                 cause_error: TaskError | None = None) -> None:
        self.actor_id_hex = actor_id_hex
        self.cause = cause
        self.cause_error = cause_error
        who = f"The actor {actor_id_hex}" if actor_id_hex else "The actor"
        msg = f"{who} is dead and cannot run this call."
        if cause:
            msg += f" Cause: {cause.rstrip('.')}."
        msg += (" Create a new actor, or pass max_restarts= (and max_task_retries=) to "
                "@ember.remote so Ember restarts it automatically.")
        if cause_error is not None:
            # The constructor's traceback is usually the only clue to why it died.
            msg += f"\nThe actor's creation task raised:\n{cause_error}"
        EmberError.__init__(self, msg)
        self.message = msg

    def _init_args(self) -> tuple[Any, ...]:
        return (self.actor_id_hex, self.cause, self.cause_error)


class ActorUnavailableError(ActorError):
    """The actor is alive but unreachable right now (restarting or network trouble).

    Example: ``except ActorUnavailableError: time.sleep(1); retry()``"""

    _hint = "Retry the call; it may succeed once the actor is reachable again."

    def __init__(self, message: str = "", actor_id_hex: str = "") -> None:
        self.actor_id_hex = actor_id_hex
        who = f"The actor {actor_id_hex}" if actor_id_hex else "The actor"
        super().__init__(message or f"{who} is temporarily unavailable "
                                    "(restarting or unreachable).")

    def _init_args(self) -> tuple[Any, ...]:
        return (self._message, self.actor_id_hex)


class WorkerCrashedError(_HintedError):
    """The worker process running the task died (segfault, OOM kill, os._exit).

    Example: ``WorkerCrashedError(message="worker exited with SIGSEGV")``"""

    _default = "The worker running the task died unexpectedly."
    _hint = ("Check the worker logs for the crash; set max_retries= on the task to "
             "retry automatically.")


class ObjectLostError(EmberError):
    """Every copy of an object is gone and it could not be rebuilt.

    Example: ``ObjectLostError(object_ref_hex=ref.hex(), owner_address="10.0.0.2:1234")``"""

    _reason: ClassVar[str] = ("all copies were lost (e.g. the node holding it died) "
                              "and it was not reconstructed.")
    _hint: ClassVar[str] = ("Re-run the task that produced it, or set max_retries= on "
                            "that task so Ember can rebuild lost objects from lineage.")

    def __init__(self, object_ref_hex: str, owner_address: str = "",
                 call_site: str = "", *, detail: str = "") -> None:
        # ``detail`` (Ember's addition) replaces the generic reason with what
        # actually happened, e.g. which task could not be re-run and why.
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site
        self.detail = detail
        parts = [f"Failed to retrieve object {object_ref_hex}: {detail or self._reason}"]
        if owner_address:
            parts.append(f"Owner: {owner_address}.")
        if call_site:
            parts.append(f"Created at: {call_site}.")
        EmberError.__init__(self, _join(*parts, self._hint))

    def _init_args(self) -> tuple[Any, ...]:
        return (self.object_ref_hex, self.owner_address, self.call_site)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_lost, (type(self), self._init_args(), self.detail), self.__dict__ or None)


def _rebuild_lost(cls: type, args: tuple[Any, ...], detail: str) -> ObjectLostError:
    return cls(*args, detail=detail)


class ObjectReconstructionFailedError(ObjectLostError):
    """A lost object cannot be rebuilt at all: it was made by ``put`` (which has no
    task to re-run) or by an actor call (actor state is not replayed).

    Example: ``ObjectReconstructionFailedError("ab12", reason="PUT",
    reason_message="it was created by ember.put")``"""

    _reason = "it cannot be reconstructed."
    _hint = ("Keep the data somewhere durable, or create it with a task (not put or an "
             "actor call) so Ember can re-run that task when its node dies.")

    def __init__(self, object_ref_hex: str, reason: str | None = None,
                 reason_message: str | None = None, owner_address: str = "",
                 call_site: str = "") -> None:
        # Ray's argument order: (object_ref_hex, reason, reason_message, owner, call_site).
        self.reason = reason
        self.reason_message = reason_message
        super().__init__(object_ref_hex, owner_address or "", call_site,
                         detail=reason_message or "")

    def _init_args(self) -> tuple[Any, ...]:
        return (self.object_ref_hex, self.reason, self.reason_message, self.owner_address,
                self.call_site)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._init_args(), self.__dict__ or None)


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectLostError):
    """Rebuilding a lost object from lineage failed too many times.

    Example: ``ObjectReconstructionFailedMaxAttemptsExceededError("ab12")``"""

    _reason = "reconstruction was attempted the maximum number of times."
    _hint = ("Raise max_retries= on the task that created it, or find out why the "
             "nodes holding it keep failing.")


class ObjectReconstructionFailedLineageEvictedError(ObjectLostError):
    """A lost object cannot be rebuilt because its lineage was evicted to save memory.

    Example: ``ObjectReconstructionFailedLineageEvictedError("ab12")``"""

    _reason = "its lineage was evicted to save memory, so it cannot be reconstructed."
    _hint = ("Keep fewer objects alive at once, raise EMBER_MAX_LINEAGE_BYTES (the lineage "
             "each owner keeps), or re-run the task that created it.")


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching an object from a remote node timed out.

    Example: ``ObjectFetchTimedOutError("ab12", call_site="train.py:10")``"""

    _reason = "fetching it from a remote node timed out."
    _hint = "Check network connectivity between the nodes and retry."


class ReferenceCountingAssertionError(ObjectLostError):
    """An object was freed while still referenced: an Ember bug.

    Example: ``ReferenceCountingAssertionError("ab12")``"""

    _reason = "it was deleted while still referenced (reference-counting bug)."
    _hint = "This is a bug in Ember; please report it with a reproduction."


class OwnerDiedError(ObjectLostError):
    """The process that created (owns) the object's ref died, taking its metadata with it.

    Example: ``OwnerDiedError("ab12", owner_address="10.0.0.2:1234")``"""

    _reason = "the worker that owns it (the one that called .remote() or put()) died."
    _hint = ("Keep the owner (driver or actor) alive while the object is in use, e.g. "
             "create long-lived objects from a long-lived actor.")


class GetTimeoutError(_HintedError, TimeoutError):
    """``get()`` or ``wait()`` did not finish within ``timeout=``.

    Example: ``except GetTimeoutError: ...`` (``except TimeoutError`` also works)"""

    _default = "Get timed out: the object was not ready in time."
    _hint = ("Increase timeout= or check that the task is not blocked; "
             "`ember list tasks` shows pending tasks.")


class TaskCancelledError(EmberError):
    """The task was cancelled with ``ember.cancel()`` before it produced a result.

    Example: ``TaskCancelledError(task_id_hex="ab12")``"""

    def __init__(self, task_id_hex: str = "") -> None:
        self.task_id_hex = task_id_hex
        which = f"Task {task_id_hex}" if task_id_hex else "This task"
        super().__init__(f"{which} was cancelled. Resubmit it if you still need the "
                         "result; do not call get() on refs of cancelled tasks.")

    def _init_args(self) -> tuple[Any, ...]:
        return (self.task_id_hex,)


class ObjectStoreFullError(_HintedError):
    """The shared-memory object store has no room for a new object.

    Example: ``except ObjectStoreFullError: del big_refs``"""

    _default = "The object store is full."
    _hint = ("Objects that do not fit spill to disk, except ones in use: drop values from "
             "ember.get() you no longer need (del arr) and refs too (del ref), split objects "
             "larger than the store, or raise object_store_memory= (ember.init(), "
             "`ember start --object-store-memory`).")


class OutOfMemoryError(_HintedError):
    """A node ran low on RAM and Ember killed a worker to protect it.

    Example: ``OutOfMemoryError("node 10.0.0.2 at 97% memory")``"""

    _default = "A worker was killed because its node was running out of memory."
    _hint = ("Run fewer tasks at once, reduce per-task memory, or request memory= in "
             "@ember.remote so scheduling accounts for it.")


class NodeDiedError(_HintedError):
    """A node left the cluster while running work for you.

    Example: ``NodeDiedError("node 10.0.0.3 stopped heartbeating")``"""

    _default = "A node in the cluster died."
    _hint = "Check that host and its logs; set max_retries= so work moves elsewhere."


class TaskUnschedulableError(_HintedError):
    """No node can ever run the task as requested.

    Example: ``TaskUnschedulableError("node abc is not alive")``"""

    _default = "The task cannot be scheduled on any node."
    _hint = ("Relax its scheduling_strategy (e.g. soft=True) or resources, or add a node "
             "that fits.")


class RuntimeEnvSetupError(_HintedError):
    """The task's ``runtime_env`` could not be set up on the worker.

    Example: ``RuntimeEnvSetupError("pip install foo==9 failed")``"""

    _default = "Failed to set up the runtime environment."
    _hint = "Fix the runtime_env= (packages, working_dir, env_vars) and try again."


class AuthenticationError(_HintedError):
    """The cluster rejected this process's credentials.

    Example: ``AuthenticationError("token mismatch")``"""

    _default = "Authentication with the Ember cluster failed."
    _hint = "Connect using the cluster's auth token (see the head node's startup output)."


class ObjectRefStreamEndOfStreamError(_HintedError):
    """A streaming generator has no more items.

    Example: ``except ObjectRefStreamEndOfStreamError: break``"""

    _default = "The object ref stream has ended."
    _hint = "Stop iterating; there are no more items."


class PendingCallsLimitExceeded(_HintedError):
    """Too many calls are queued on an actor handle.

    Example: ``except PendingCallsLimitExceeded: ember.get(outstanding)``"""

    _default = "The actor's pending-call limit was exceeded."
    _hint = "Wait for earlier results before submitting more, or raise max_pending_calls=."


class CrossLanguageError(_HintedError):
    """An error raised by a worker written in another language.

    Example: ``CrossLanguageError("java.lang.IllegalStateException: ...")``"""

    _default = "An error occurred in a worker written in another language."
    _hint = "Read the remote error text above and fix the code in that language."


class EmberSystemError(_HintedError):
    """Ember itself failed internally.

    Example: ``EmberSystemError("lost connection to the node manager")``"""

    _default = "Ember encountered an internal system error."
    _hint = "This is likely a bug in Ember; please report it with the logs."


class SerializationError(EmberError, TypeError):
    """A value could not be pickled to send it to another process.

    Example: ``SerializationError(type_name="_thread.lock", reason="cannot pickle")``"""

    def __init__(self, type_name: str = "", reason: str = "") -> None:
        self.type_name = type_name
        self.reason = reason
        what = f"a value of type {type_name}" if type_name else "a value"
        msg = f"Could not serialize {what}" + (f": {reason}." if reason else ".")
        super().__init__(_join(
            msg, "Make it picklable by cloudpickle (drop locks, sockets or open files, "
                 "or define __reduce__), or create it inside the task instead."))

    def _init_args(self) -> tuple[Any, ...]:
        return (self.type_name, self.reason)


RayError = EmberError
RayTaskError = TaskError
RayActorError = ActorError
RaySystemError = EmberSystemError

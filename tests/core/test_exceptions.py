"""Tests for ember.exceptions: hierarchy, messages, TaskError wrapping and pickling."""

from __future__ import annotations

import builtins
import os
import pickle
import threading
from typing import Any, Callable

import cloudpickle
import pytest

import ember.exceptions as exc
from ember.exceptions import (
    ActorDiedError,
    EmberError,
    GetTimeoutError,
    ObjectLostError,
    OwnerDiedError,
    SerializationError,
    TaskError,
)

PICKLERS = [pytest.param(pickle, id="pickle"), pytest.param(cloudpickle, id="cloudpickle")]


class CustomInitError(Exception):
    """User exception whose __init__ signature differs from Exception's."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class MismatchedInitError(Exception):
    """Pickles, but cannot be unpickled: .args does not match __init__."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


class LockHoldingError(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.lock = threading.Lock()


class FinalError(Exception):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("FinalError cannot be subclassed")


def _raise_value_error() -> None:
    raise ValueError("boom")


def _raise(e: BaseException) -> None:
    raise e


def _catch(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the test wants whatever was raised
        return e
    raise AssertionError("expected an exception")


def _task_error(cause_fn: Callable[[], object] = _raise_value_error, **kw: Any) -> TaskError:
    return TaskError.from_exception(_catch(cause_fn), kw.pop("function_name", "my_func"),
                                    kw.pop("pid", 1234), **kw)


# --- hierarchy --------------------------------------------------------------------

SUBCLASS_OF = [
    ("TaskError", "EmberError"), ("ActorError", "EmberError"),
    ("ActorDiedError", "ActorError"), ("ActorUnavailableError", "ActorError"),
    ("WorkerCrashedError", "EmberError"), ("ObjectLostError", "EmberError"),
    ("ObjectReconstructionFailedError", "ObjectLostError"),
    ("ObjectReconstructionFailedMaxAttemptsExceededError", "ObjectLostError"),
    ("ObjectReconstructionFailedLineageEvictedError", "ObjectLostError"),
    ("ObjectFetchTimedOutError", "ObjectLostError"),
    ("ReferenceCountingAssertionError", "ObjectLostError"),
    ("OwnerDiedError", "ObjectLostError"), ("GetTimeoutError", "EmberError"),
    ("TaskCancelledError", "EmberError"), ("ObjectStoreFullError", "EmberError"),
    ("OutOfMemoryError", "EmberError"), ("NodeDiedError", "EmberError"),
    ("TaskUnschedulableError", "EmberError"),
    ("RuntimeEnvSetupError", "EmberError"), ("AuthenticationError", "EmberError"),
    ("ObjectRefStreamEndOfStreamError", "EmberError"),
    ("PendingCallsLimitExceeded", "EmberError"), ("CrossLanguageError", "EmberError"),
    ("EmberSystemError", "EmberError"), ("SerializationError", "EmberError"),
    ("EmberError", "Exception"),
]


@pytest.mark.parametrize(("child", "parent"), SUBCLASS_OF)
def test_hierarchy(child: str, parent: str) -> None:
    parent_cls = getattr(exc, parent, None) or getattr(builtins, parent)
    assert issubclass(getattr(exc, child), parent_cls)


def test_sibling_branches_are_disjoint() -> None:
    assert not issubclass(exc.ActorDiedError, exc.ObjectLostError)
    assert not issubclass(exc.OwnerDiedError, exc.ActorError)
    assert not issubclass(exc.TaskError, exc.ActorError)


def test_stdlib_bases() -> None:
    assert issubclass(GetTimeoutError, TimeoutError)
    assert issubclass(SerializationError, TypeError)
    with pytest.raises(TimeoutError):
        raise GetTimeoutError()
    with pytest.raises(TypeError, match="_thread.lock"):
        raise SerializationError(type_name="_thread.lock", reason="cannot pickle")


def test_ray_aliases_are_the_same_objects() -> None:
    assert exc.RayError is exc.EmberError
    assert exc.RayTaskError is exc.TaskError
    assert exc.RayActorError is exc.ActorError
    assert exc.RaySystemError is exc.EmberSystemError


def test_all_is_complete_and_resolvable() -> None:
    public = {n for n, v in vars(exc).items()
              if isinstance(v, type) and issubclass(v, BaseException) and not n.startswith("_")}
    assert public <= set(exc.__all__)
    assert {"RayError", "RayTaskError", "RayActorError", "RaySystemError"} <= set(exc.__all__)
    for name in exc.__all__:
        assert issubclass(getattr(exc, name), EmberError)


# --- messages ---------------------------------------------------------------------

def test_get_timeout_message_says_what_to_do() -> None:
    msg = str(GetTimeoutError("waited 5s for ref abc"))
    assert msg.startswith("waited 5s for ref abc")
    assert "timeout=" in msg and "ember list tasks" in msg


def test_object_lost_message_names_object_owner_and_call_site() -> None:
    err = ObjectLostError("ab12", owner_address="10.0.0.2:1234", call_site="train.py:10")
    assert "ab12" in str(err) and "10.0.0.2:1234" in str(err) and "train.py:10" in str(err)
    assert "max_retries" in str(err)
    owner = OwnerDiedError("cd34", owner_address="10.0.0.9:1")
    assert "owns" in str(owner) and "10.0.0.9:1" in str(owner)


def test_subclass_messages_differ_from_base() -> None:
    texts = {str(cls("ab")) for cls in (
        exc.ObjectLostError, exc.OwnerDiedError, exc.ObjectFetchTimedOutError,
        exc.ObjectReconstructionFailedLineageEvictedError,
        exc.ObjectReconstructionFailedMaxAttemptsExceededError,
        exc.ObjectReconstructionFailedError, exc.ReferenceCountingAssertionError)}
    assert len(texts) == 7


def test_object_lost_detail_replaces_the_generic_reason() -> None:
    err = exc.ObjectReconstructionFailedMaxAttemptsExceededError(
        "ab12", "10.0.0.2:1", detail="f has no retries left (max_retries)")
    assert str(err).startswith("Failed to retrieve object ab12: f has no retries left")
    assert "maximum number of times" not in str(err) and "10.0.0.2:1" in str(err)
    put = exc.ObjectReconstructionFailedError("cd34", "PUT", "it was created by ember.put")
    assert put.reason == "PUT" and "created by ember.put" in str(put)


def test_task_cancelled_and_worker_crashed_messages() -> None:
    assert "ab12" in str(exc.TaskCancelledError(task_id_hex="ab12"))
    crashed = str(exc.WorkerCrashedError(message="worker exited with SIGSEGV"))
    assert crashed.startswith("worker exited with SIGSEGV") and "max_retries" in crashed


def test_actor_died_message_includes_constructor_traceback() -> None:
    ctor_err = _task_error(function_name="Counter.__init__")
    err = ActorDiedError(actor_id_hex="ab12", cause="creation task failed", cause_error=ctor_err)
    text = str(err)
    assert "ab12" in text and "creation task failed" in text and "max_restarts" in text
    assert "_raise_value_error" in text and "ValueError: boom" in text
    assert err.cause_error is ctor_err


# --- TaskError --------------------------------------------------------------------

def test_task_error_str_has_header_and_user_frame() -> None:
    text = str(_task_error())
    lines = text.splitlines()
    assert lines[0] == "ember::my_func() (pid=1234, ip=127.0.0.1)"
    assert lines[1] == "Traceback (most recent call last):"
    assert "_raise_value_error" in text and 'raise ValueError("boom")' in text
    assert lines[-1] == "ValueError: boom"


def test_task_error_fields_and_actor_repr() -> None:
    err = _task_error(function_name="Counter.incr", pid=7, ip="10.0.0.5",
                      actor_repr="Counter(n=3)")
    assert (err.function_name, err.pid, err.ip, err.actor_repr) == (
        "Counter.incr", 7, "10.0.0.5", "Counter(n=3)")
    assert isinstance(err.cause, ValueError)
    assert str(err).splitlines()[0] == (
        "ember::Counter.incr() (pid=7, ip=10.0.0.5, repr=Counter(n=3))")


def test_task_error_without_traceback_falls_back_to_cause_text() -> None:
    err = TaskError("f", "", KeyError("k"), pid=1)
    assert str(err) == "ember::f() (pid=1, ip=127.0.0.1)\nKeyError: 'k'"


def test_from_exception_strips_ember_internal_frames() -> None:
    namespace: dict[str, Any] = {}
    internal = "/site-packages/ember/_private/worker.py"
    exec(compile("def run(fn):\n    return fn()\n", internal, "exec"), namespace)
    err = TaskError.from_exception(_catch(lambda: namespace["run"](_raise_value_error)),
                                   "my_func", os.getpid())
    assert internal not in err.traceback_str
    assert "_raise_value_error" in err.traceback_str


def test_from_exception_of_task_error_returns_it_unchanged() -> None:
    inner = _task_error(function_name="producer")
    assert TaskError.from_exception(inner, "consumer", 99) is inner
    dual = inner.as_instanceof_cause()
    assert TaskError.from_exception(dual, "consumer", 99) is dual


@pytest.mark.parametrize("cause_fn", [
    lambda: _raise(LockHoldingError("holding a lock")),
    lambda: _raise(MismatchedInitError(1, 2)),
], ids=["lock-attribute", "mismatched-init"])
def test_unpicklable_cause_is_replaced_but_text_survives(
        cause_fn: Callable[[], object]) -> None:
    original = _catch(cause_fn)
    err = TaskError.from_exception(original, "my_func", 1)
    assert type(err.cause) is EmberError
    assert str(err.cause) == f"{type(original).__name__}: {original}"
    back = pickle.loads(cloudpickle.dumps(err))
    assert str(back) == str(err) and f"{type(original).__name__}: " in str(back)


def test_picklable_cause_is_kept() -> None:
    assert isinstance(_task_error().cause, ValueError)
    assert type(_task_error(lambda: _raise(CustomInitError(3, "x"))).cause) is CustomInitError


# --- as_instanceof_cause ----------------------------------------------------------

def test_dual_instance_is_catchable_as_both() -> None:
    dual = _task_error().as_instanceof_cause()
    with pytest.raises(ValueError):
        raise dual
    with pytest.raises(TaskError):
        raise dual
    assert type(dual).__name__ == "TaskError(ValueError)"
    assert type(dual).__qualname__ == "TaskError(ValueError)"


def test_dual_instance_str_and_cause() -> None:
    err = _task_error()
    dual = err.as_instanceof_cause()
    assert str(dual) == str(err)
    assert dual.cause is err.cause
    assert dual.args == ("boom",)
    keyerr = TaskError("f", "tb text", KeyError("k"), 1).as_instanceof_cause()
    assert str(keyerr) == "ember::f() (pid=1, ip=127.0.0.1)\ntb text"


def test_dual_class_is_cached_per_cause_class() -> None:
    a = _task_error().as_instanceof_cause()
    b = TaskError("g", "", ValueError("other"), 2).as_instanceof_cause()
    c = TaskError("g", "", KeyError("k"), 2).as_instanceof_cause()
    assert type(a) is type(b)
    assert type(a) is not type(c)


def test_dual_with_custom_init_user_exception_keeps_attributes() -> None:
    dual = _task_error(lambda: _raise(CustomInitError(42, "bad"))).as_instanceof_cause()
    assert isinstance(dual, CustomInitError) and isinstance(dual, TaskError)
    assert (dual.code, dual.detail) == (42, "bad")
    assert dual.function_name == "my_func"


def test_dual_copies_builtin_c_level_fields() -> None:
    cause = FileNotFoundError(2, "No such file", "data.csv")
    dual = TaskError("f", "", cause, 1).as_instanceof_cause()
    assert isinstance(dual, OSError)
    assert (dual.errno, dual.filename) == (2, "data.csv")


@pytest.mark.parametrize("cause", [None, FinalError("x"), TaskError("f", "", None, 1)],
                         ids=["none", "unsubclassable", "task-error"])
def test_as_instanceof_cause_returns_self_when_no_dual_possible(
        cause: BaseException | None) -> None:
    err = TaskError("g", "tb", cause, 1)
    assert err.as_instanceof_cause() is err


# --- pickling ---------------------------------------------------------------------

def _samples() -> list[EmberError]:
    ctor = _task_error(function_name="A.__init__")
    return [
        EmberError("base"), _task_error(actor_repr="A()"), exc.ActorError(),
        ActorDiedError(actor_id_hex="ab", cause="killed", cause_error=ctor),
        exc.ActorUnavailableError(actor_id_hex="ab"), exc.WorkerCrashedError("sigsegv"),
        ObjectLostError("ab", "1.2.3.4:5", "x.py:1"),
        exc.ObjectReconstructionFailedMaxAttemptsExceededError("ab", "o", "c"),
        exc.ObjectReconstructionFailedLineageEvictedError("ab", detail="evicted"),
        exc.ObjectReconstructionFailedError("ab", "PUT", "made by put", "1.2.3.4:5"),
        exc.ObjectFetchTimedOutError("ab"), exc.ReferenceCountingAssertionError("ab"),
        OwnerDiedError("ab", owner_address="1.2.3.4:5"), GetTimeoutError("waited 5s"),
        exc.TaskCancelledError("t1"), exc.ObjectStoreFullError(), exc.OutOfMemoryError("oom"),
        exc.NodeDiedError(), exc.TaskUnschedulableError("node gone"),
        exc.RuntimeEnvSetupError("pip failed"),
        exc.AuthenticationError(), exc.ObjectRefStreamEndOfStreamError(),
        exc.PendingCallsLimitExceeded(), exc.CrossLanguageError("java"),
        exc.EmberSystemError(), SerializationError("_thread.lock", "cannot pickle"),
    ]


def test_samples_cover_every_public_class() -> None:
    covered = {type(e) for e in _samples()}
    assert covered == {getattr(exc, n) for n in exc.__all__}


@pytest.mark.parametrize("pickler", PICKLERS)
@pytest.mark.parametrize("err", _samples(), ids=lambda e: type(e).__name__)
def test_round_trip_every_class(pickler: Any, err: EmberError) -> None:
    back = pickler.loads(pickler.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert repr(back.args) == repr(err.args)  # exceptions inside args compare by identity
    # A second trip catches hints being appended again on every unpickle.
    assert str(pickler.loads(pickler.dumps(back))) == str(err)


@pytest.mark.parametrize("pickler", PICKLERS)
def test_round_trip_keeps_data_fields(pickler: Any) -> None:
    back = pickler.loads(pickler.dumps(ObjectLostError("ab", "o:1", "c.py:2")))
    assert (back.object_ref_hex, back.owner_address, back.call_site) == ("ab", "o:1", "c.py:2")
    died = pickler.loads(pickler.dumps(ActorDiedError("ab", "x", _task_error())))
    assert isinstance(died.cause_error, TaskError) and "ValueError: boom" in str(died)


@pytest.mark.parametrize("pickler", PICKLERS)
@pytest.mark.parametrize("cause_fn", [
    _raise_value_error, lambda: _raise(CustomInitError(7, "d")), lambda: {}["missing"],
], ids=["ValueError", "CustomInitError", "KeyError"])
def test_round_trip_dual_instance(pickler: Any, cause_fn: Callable[[], object]) -> None:
    dual = _task_error(cause_fn).as_instanceof_cause()
    back = pickler.loads(pickler.dumps(dual))
    assert type(back) is type(dual)
    assert str(back) == str(dual)
    assert type(back.cause) is type(dual.cause)
    assert back.args == dual.args
    assert (back.function_name, back.pid) == ("my_func", 1234)


def test_cloudpickle_round_trip_dual_of_locally_defined_exception() -> None:
    class LocalError(Exception):
        pass

    dual = _task_error(lambda: _raise(LocalError("local"))).as_instanceof_cause()
    back = cloudpickle.loads(cloudpickle.dumps(dual))
    assert isinstance(back, TaskError) and type(back).__name__ == "TaskError(LocalError)"
    assert str(back) == str(dual)

"""The ``@ember.remote`` decorator, typed so that mypy checks ``.remote()`` calls.

``remote`` returns the runtime ``ember._private.remote_function.RemoteFunction``;
what type checkers see instead is the static :class:`RemoteFunction` below,
``RemoteFunction[P, R]`` for a decorated ``Callable[P, R]``:

* ``f.remote(...)`` is checked against ``f``'s own signature (names, defaults,
  keyword-only parameters, ``*args``) and returns ``ObjectRef[R]``, so that
  ``ember.get(f.remote(x))`` has ``f``'s return type;
* as at runtime, a positional argument may be a value of the declared type
  or an ``ObjectRef`` to one (the task receives the resolved value);
* ``f(...)`` is an error, as it is at runtime ("use f.remote(...)");
* ``f.options(...)`` keeps the type.

A ParamSpec cannot map "T or ObjectRef[T]" over a signature, so refs are
accepted through one overload per count of leading positional arguments (Ray's
own stubs do the same with RemoteFunction0..9): the first 9 positional
arguments may be refs, the rest of the call is checked against the remaining
parameters as declared. Known gaps, all where the runtime is more dynamic than
the types: a ref passed by keyword (``f.remote(x=ref)``) is rejected (pass it
positionally), so is a ref to a generic function (``def f(x: list[T]) -> T``;
values are fine), ``num_returns`` other than 1 and streaming generators still
type ``.remote()`` as a single ``ObjectRef``, and an ``async def`` task types as
``ObjectRef[Coroutine[...]]`` although the task returns the awaited value.

Classes: ``ember.remote(Cls)`` types as ``ActorClass[Cls]`` and its ``.remote()``
as ``ActorHandle[Cls]``; method calls on a handle are not checked. Written as a
decorator (``@ember.remote class Cls``) the class keeps its own type under mypy,
which ignores what class decorators return (python/mypy#3135), so typed code
writes ``CounterActor = ember.remote(Counter)``.
"""
from __future__ import annotations

import inspect
from typing import (TYPE_CHECKING, Any, Callable, Concatenate, Generic, ParamSpec, Protocol,
                    TypeVar, overload)

from ._private.object_ref import ObjectRef

if TYPE_CHECKING:
    from ._private.actor_class import ActorClass

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["remote", "RemoteFunction"]

# Per-overload type variables of RemoteFunction.remote (see _Signed).
_P = ParamSpec("_P")
_R = TypeVar("_R")
_T0 = TypeVar("_T0")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_T3 = TypeVar("_T3")
_T4 = TypeVar("_T4")
_T5 = TypeVar("_T5")
_T6 = TypeVar("_T6")
_T7 = TypeVar("_T7")
_T8 = TypeVar("_T8")
_Sig_co = TypeVar("_Sig_co", covariant=True)
_C = TypeVar("_C")


class _Signed(Protocol[_Sig_co]):
    """Anything whose ``_ember_signature`` is a ``_Sig_co``.

    The ref-accepting overloads of ``RemoteFunction.remote`` bind their own type
    variables by matching ``self`` against this protocol: the covariant
    ``Callable`` lets mypy split ``def f(x: int, y: str)`` into
    ``Concatenate[int, (y: str)]``. Matching ``RemoteFunction[P, R]`` directly
    does not work: ``P`` is invariant, so the leading types solve to Never.
    """

    @property
    def _ember_signature(self) -> _Sig_co: ...


class RemoteFunction(Generic[P, R]):
    """Static view of a remote function; the runtime class is in ``_private``.

    Only type checkers see this class: ``@ember.remote`` never creates one, so
    do not ``isinstance``-check against it.
    """

    @property
    def _ember_signature(self) -> Callable[P, R]:
        """The decorated function's type (for :class:`_Signed`; not at runtime)."""
        raise NotImplementedError  # pragma: no cover

    # First the exact signature (keywords, defaults, generic functions), then the
    # variants whose leading positional arguments may also be ObjectRefs.
    @overload
    def remote(self, /, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _P], _R]],
               a0: _T0 | ObjectRef[_T0], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _T1, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _T1, _T2, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _T1, _T2, _T3, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2],
               a3: _T3 | ObjectRef[_T3], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _T1, _T2, _T3, _T4, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2],
               a3: _T3 | ObjectRef[_T3], a4: _T4 | ObjectRef[_T4], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _T1, _T2, _T3, _T4, _T5, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2],
               a3: _T3 | ObjectRef[_T3], a4: _T4 | ObjectRef[_T4], a5: _T5 | ObjectRef[_T5], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[Concatenate[_T0, _T1, _T2, _T3, _T4, _T5, _T6, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2],
               a3: _T3 | ObjectRef[_T3], a4: _T4 | ObjectRef[_T4], a5: _T5 | ObjectRef[_T5],
               a6: _T6 | ObjectRef[_T6], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[
                   Concatenate[_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2],
               a3: _T3 | ObjectRef[_T3], a4: _T4 | ObjectRef[_T4], a5: _T5 | ObjectRef[_T5],
               a6: _T6 | ObjectRef[_T6], a7: _T7 | ObjectRef[_T7], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    @overload
    def remote(self: _Signed[Callable[
                   Concatenate[_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _P], _R]],
               a0: _T0 | ObjectRef[_T0], a1: _T1 | ObjectRef[_T1], a2: _T2 | ObjectRef[_T2],
               a3: _T3 | ObjectRef[_T3], a4: _T4 | ObjectRef[_T4], a5: _T5 | ObjectRef[_T5],
               a6: _T6 | ObjectRef[_T6], a7: _T7 | ObjectRef[_T7], a8: _T8 | ObjectRef[_T8], /,
               *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...

    def remote(self, /, *args: Any, **kwargs: Any) -> Any:
        """Submit the task; returns an ``ObjectRef`` to its result."""
        raise NotImplementedError  # pragma: no cover - only the runtime class runs

    def options(self, **options: Any) -> RemoteFunction[P, R]:
        """A copy with some options overridden; same signature and return type."""
        raise NotImplementedError  # pragma: no cover - only the runtime class runs


class _Decorator(Protocol):
    """What ``@ember.remote(...)`` with options returns: it decorates a class or a function."""

    # A class is also a Callable; the class overload must win (so it overlaps on purpose).
    @overload
    def __call__(self, target: type[_C], /) -> ActorClass[_C]: ...  # type: ignore[overload-overlap]

    @overload
    def __call__(self, target: Callable[P, R], /) -> RemoteFunction[P, R]: ...


@overload
def remote(cls: type[_C], /) -> ActorClass[_C]: ...  # type: ignore[overload-overlap]


@overload
def remote(function: Callable[P, R], /) -> RemoteFunction[P, R]: ...


@overload
def remote(*, num_returns: int | str = ..., num_cpus: float = ..., num_gpus: float = ...,
           resources: dict[str, float] = ..., accelerator_type: str = ..., memory: float = ...,
           max_calls: int = ..., max_retries: int = ..., retry_exceptions: Any = ...,
           runtime_env: dict[str, Any] = ..., scheduling_strategy: Any = ..., name: str = ...,
           **options: Any) -> _Decorator: ...


def remote(*args: Any, **options: Any) -> Any:
    """Turn a function into a task, or a class into an actor class.

    >>> @ember.remote
    ... def f(x): return x + 1
    >>> @ember.remote(num_cpus=2, max_retries=0)
    ... def g(x): return x * 2
    >>> ember.get(f.remote(1))
    2
    >>> @ember.remote(max_restarts=1)
    ... class Counter:
    ...     def incr(self): ...
    """
    from ._private.remote_function import RemoteFunction as _Runtime

    def wrap(target: Any) -> Any:
        if inspect.isclass(target):
            from ._private.actor_class import ActorClass
            return ActorClass(target, options)
        if not callable(target):
            raise TypeError(f"@ember.remote expects a function, got {type(target).__name__}")
        return _Runtime(target, options)

    if len(args) == 1 and not options and callable(args[0]):
        return wrap(args[0])
    if args:
        raise TypeError("@ember.remote takes either a function or keyword options only, e.g. "
                        "@ember.remote(num_cpus=2)")
    from ._private.options import validate_options
    # Check the options now, while the decorator line is on screen; whether they
    # must suit a function or a class is only known once wrap() sees the target.
    try:
        validate_options(options)
    except ValueError:
        try:
            validate_options(options, for_actor=True)
        except ValueError:
            validate_options(options)  # raise the function-flavoured message
    return wrap

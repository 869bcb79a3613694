"""The ``@ember.remote`` decorator (typed: ``.remote()`` checks its arguments)."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, ParamSpec, TypeVar, overload

from ._private.object_ref import ObjectRef

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["remote", "RemoteFunction"]


class RemoteFunction(Generic[P, R]):
    """Static view of a remote function; the runtime class is in _private."""

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]: ...  # pragma: no cover

    def options(self, **options: Any) -> "RemoteFunction[P, R]": ...  # pragma: no cover


@overload
def remote(function: Callable[P, R], /) -> RemoteFunction[P, R]: ...


@overload
def remote(*, num_returns: int | str = ..., num_cpus: float = ..., num_gpus: float = ...,
           resources: dict[str, float] = ..., accelerator_type: str = ..., memory: float = ...,
           max_calls: int = ..., max_retries: int = ..., retry_exceptions: Any = ...,
           runtime_env: dict[str, Any] = ..., scheduling_strategy: Any = ..., name: str = ...,
           **options: Any) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...


def remote(*args: Any, **options: Any) -> Any:
    """Turn a function into a task that runs on the cluster.

    >>> @ember.remote
    ... def f(x): return x + 1
    >>> @ember.remote(num_cpus=2, max_retries=0)
    ... def g(x): return x * 2
    >>> ember.get(f.remote(1))
    2
    """
    from ._private.remote_function import RemoteFunction as _Runtime

    def wrap(target: Any) -> Any:
        if inspect.isclass(target):
            raise NotImplementedError(
                "@ember.remote on a class (actors) is not available yet in this version; "
                "use remote functions for now")
        if not callable(target):
            raise TypeError(f"@ember.remote expects a function, got {type(target).__name__}")
        return _Runtime(target, options)

    if len(args) == 1 and not options and callable(args[0]):
        return wrap(args[0])
    if args:
        raise TypeError("@ember.remote takes either a function or keyword options only, e.g. "
                        "@ember.remote(num_cpus=2)")
    from ._private.options import validate_options
    validate_options(options)
    return wrap

"""``@ember.remote`` functions: options, export and submission."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Generic, TypeVar

from . import worker_state
from .options import DEFAULT_TASK_OPTIONS, merge_options, resource_request, validate_options

R = TypeVar("R")


class RemoteFunction(Generic[R]):
    """A function that runs as a task on the cluster: call ``.remote(...)``.

    >>> @ember.remote
    ... def add(a, b):
    ...     return a + b
    >>> ember.get(add.remote(1, 2))
    3
    """

    def __init__(self, function: Callable[..., R], options: dict[str, Any] | None = None) -> None:
        if inspect.isclass(function):
            raise TypeError("RemoteFunction wraps functions; decorate classes with @ember.remote")
        self._function = function
        self._options = validate_options(options or {})
        self._name = getattr(function, "__name__", "task")
        self._pickled: bytes | None = None
        self._prepare()
        functools.update_wrapper(self, function)

    def _prepare(self) -> None:
        """Derive everything .remote() needs from the options once, not per call."""
        opts = self._options
        num_returns = opts.get("num_returns", DEFAULT_TASK_OPTIONS["num_returns"])
        if num_returns in ("streaming", "dynamic"):
            num_returns = -1
        elif inspect.isgeneratorfunction(self._function) and "num_returns" not in opts:
            num_returns = -1  # Ray: generator functions stream by default
        self._num_returns = num_returns
        self._submit_kwargs = dict(
            name=opts.get("name") or self._name, num_returns=num_returns,
            resources=resource_request(opts),
            max_retries=opts.get("max_retries", DEFAULT_TASK_OPTIONS["max_retries"]),
            retry_exceptions=opts.get("retry_exceptions", False),
            max_calls=opts.get("max_calls", 0) or 0)
        self._env_vars = dict((opts.get("runtime_env") or {}).get("env_vars", {}))
        # (id of the core it was resolved under, env hash, lease bytes): the
        # runtime_env's packages are uploaded on first submission, not per call.
        self._renv: tuple[int, str, bytes] | None = None
        # Built on first .remote() (it needs the protobuf module); a flag, not a
        # sentinel object, because pickling this function would copy the sentinel.
        self._hints: Any = None
        self._placement: Any = None
        self._hints_ready = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote function '{self._name}' cannot be called directly: use "
            f"'{self._name}.remote(...)' to run it as a task (and ember.get() for the result)")

    def options(self, **options: Any) -> "RemoteFunction[R]":
        """A copy of this function with some options overridden.

        >>> add.options(num_cpus=2, name="big_add").remote(1, 2)
        """
        clone = RemoteFunction.__new__(RemoteFunction)
        clone.__dict__.update(self.__dict__)
        clone._options = merge_options(self._options, validate_options(options))
        clone._prepare()
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        core = worker_state.require_core()
        if self._pickled is None:
            import cloudpickle
            self._pickled = cloudpickle.dumps(self._function)
        function_id = core.export_function(self._function, self._pickled)
        env_vars = self._env_vars
        job_env = core.runtime_env.get("env_vars")
        if job_env:
            env_vars = {**job_env, **env_vars}
        if not self._hints_ready:
            from .scheduling_hints import hints_from_options, placement_from_options
            self._hints = hints_from_options(self._options)
            self._placement = placement_from_options(self._options)
            self._hints_ready = True
        renv = self._renv
        if renv is None or renv[0] != id(core):
            from .runtime_env import resolve
            renv = self._renv = (id(core), *resolve(core, self._options.get("runtime_env")))
        submit_kwargs = self._submit_kwargs
        placement = self._placement
        if placement is None and "scheduling_strategy" not in self._options:
            # Inside a task that captures its children, default to its group.
            parent = core.current.task
            if parent is not None and parent.spec.capture_child_tasks:
                placement = (parent.spec.placement_group_id, -1, True)
        if placement is not None:
            from .scheduling_hints import in_placement_group
            submit_kwargs = dict(submit_kwargs, placement=placement,
                                 resources=in_placement_group(submit_kwargs["resources"],
                                                              placement))
        refs = core.submitter.submit(function_id=function_id, args=args, kwargs=kwargs,
                                     env_vars=env_vars, hints=self._hints,
                                     runtime_env_hash=renv[1], runtime_env=renv[2],
                                     **submit_kwargs)
        num_returns = self._num_returns
        if num_returns == -1:
            return refs
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs

    def __repr__(self) -> str:
        return f"<ember.remote_function {self._name}>"

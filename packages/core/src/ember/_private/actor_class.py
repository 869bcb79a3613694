"""``@ember.remote`` classes: ActorClass, ActorHandle and ActorMethod.

An ``ActorClass`` creates actors; an ``ActorHandle`` names one and is what
callers hold, pass to tasks and pickle; ``handle.method`` is an
``ActorMethod`` whose ``.remote()`` submits a call. A handle created by
``.remote()`` carries a small owned object (its "lifetime ref"): Ember's
reference counting tracks it across processes like any object, and when the
last copy anywhere is gone the actor is stopped, as in Ray. Detached actors
and handles from ``get_actor`` carry none.
"""
from __future__ import annotations

import inspect
import os
import pickle
from typing import Any, Generic, TypeVar

from . import ids, worker_state
from .options import actor_resource_request, merge_options, validate_options

T = TypeVar("T")

_METHOD_OPTIONS = "__ember_method_options__"


def method(*args: Any, **options: Any) -> Any:
    """Set per-method defaults on an actor class's method.

    >>> @ember.remote
    ... class Worker:
    ...     @ember.method(num_returns=2)
    ...     def pair(self):
    ...         return 1, 2
    """
    if args:
        raise TypeError("@ember.method takes keyword options only, e.g. "
                        "@ember.method(num_returns=2)")
    allowed = {"num_returns", "concurrency_group", "max_task_retries", "enable_task_events"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) for @ember.method: {', '.join(unknown)}; valid: "
                         f"{', '.join(sorted(allowed))}")
    if "num_returns" in options:
        options["num_returns"] = _num_returns(options["num_returns"], "@ember.method")

    def wrap(fn: Any) -> Any:
        setattr(fn, _METHOD_OPTIONS, dict(options))
        return fn

    return wrap


def _num_returns(value: Any, where: str) -> int:
    if value in ("streaming", "dynamic"):
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"invalid num_returns={value!r} for {where}: use a non-negative int "
                         "or 'streaming'")
    return value


def _class_meta(cls: type) -> dict[str, Any]:
    """What a handle needs to know about the class: its methods and their defaults."""
    methods: dict[str, dict[str, Any]] = {}
    is_async = False
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name.endswith("__"):
            continue
        raw = inspect.getattr_static(cls, name, None)
        if isinstance(raw, (staticmethod, classmethod)):
            fn = raw.__func__
        elif inspect.isfunction(member) or inspect.ismethod(member):
            fn = member
        else:
            continue
        opts = dict(getattr(fn, _METHOD_OPTIONS, {}))
        is_gen = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            is_async = True
        methods[name] = {
            "num_returns": opts.get("num_returns", -1 if is_gen else 1),
            "concurrency_group": opts.get("concurrency_group", ""),
            "max_task_retries": opts.get("max_task_retries"),
        }
    # Built into every actor, as in Ray: `ember.get(h.__ray_ready__.remote())` waits
    # for the constructor; `__ray_call__(fn, *a)` runs fn(actor_instance, *a) there.
    for builtin in ("__ray_ready__", "__ray_terminate__", "__ray_call__"):
        methods[builtin] = {"num_returns": 1, "concurrency_group": "", "max_task_retries": None}
    return {"class_name": cls.__name__, "module": cls.__module__, "methods": methods,
            "is_async": is_async}


class ActorID(ids.BinaryID):
    """An actor's id (Ray's ``ActorID``). ``handle._actor_id.hex()``"""

    __slots__ = ()


class ActorClass(Generic[T]):
    """A class decorated with ``@ember.remote``: ``.remote(...)`` creates an actor.

    >>> @ember.remote
    ... class Counter:
    ...     def __init__(self): self.n = 0
    ...     def incr(self): self.n += 1; return self.n
    >>> c = Counter.remote()
    >>> ember.get(c.incr.remote())
    1
    """

    def __init__(self, cls: type, options: dict[str, Any] | None = None) -> None:
        self._cls = cls
        self._options = validate_options(options or {}, for_actor=True)
        self._meta = _class_meta(cls)
        self._pickled: bytes | None = None
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self._cls.__name__
        raise TypeError(f"Actor class '{name}' cannot be instantiated directly: use "
                        f"'{name}.remote(...)' to create an actor (it returns a handle)")

    def options(self, **options: Any) -> "ActorClass[T]":
        """A copy of this actor class with some options overridden.

        >>> Counter.options(name="counter", lifetime="detached").remote()
        """
        clone = ActorClass.__new__(ActorClass)
        clone.__dict__.update(self.__dict__)
        clone._options = merge_options(self._options, validate_options(options, for_actor=True))
        if clone._options.get("get_if_exists") and not clone._options.get("name"):
            raise ValueError("get_if_exists=True needs a name to look the actor up by; e.g. "
                             ".options(name='my_actor', get_if_exists=True)")
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle[T]":
        """Create the actor; returns its handle at once (the constructor runs remotely)."""
        from .protos import ember_pb2 as pb
        core = worker_state.require_core()
        opts = self._options
        meta = self._meta
        if self._pickled is None:
            import cloudpickle
            self._pickled = cloudpickle.dumps(self._cls)
        class_id = core.export_function(self._cls, self._pickled)
        placement, held = actor_resource_request(opts)
        from .scheduling_hints import in_placement_group, placement_from_options
        group = placement_from_options(opts)
        if group is None and "scheduling_strategy" not in opts:
            parent = core.current.task
            if parent is not None and parent.spec.capture_child_tasks:
                group = (parent.spec.placement_group_id, -1, True)
        if group is not None:
            placement = in_placement_group(placement, group)
            held = in_placement_group(held, group)
        detached = opts.get("lifetime") == "detached"
        name = opts.get("name") or ""
        namespace = opts.get("namespace")
        if namespace is None:
            namespace = core.namespace
        max_concurrency = opts.get("max_concurrency") or (1000 if meta["is_async"] else 1)
        actor_id = os.urandom(16)
        max_task_retries = opts.get("max_task_retries", 0) or 0
        handle_meta = dict(meta, max_task_retries=max_task_retries,
                           max_pending_calls=opts.get("max_pending_calls", -1))
        env_vars = dict((opts.get("runtime_env") or {}).get("env_vars", {}))
        job_env = core.runtime_env.get("env_vars")
        if job_env:
            env_vars = {**job_env, **env_vars}
        spec = pb.ActorSpec(
            actor_id=actor_id, class_name=meta["class_name"], name=name, namespace=namespace,
            detached=detached, max_restarts=opts.get("max_restarts", 0) or 0,
            owner=pb.Address(ip=core.address, node_id=core.node_id, worker_id=core.worker_id),
            resources=held, placement_resources=placement if placement != held else {},
            creation=pb.TaskSpec(function_id=class_id, name=f"{meta['class_name']}.__init__",
                                 env_vars=env_vars,
                                 placement_group_id=group[0] if group else b"",
                                 capture_child_tasks=bool(group and group[2])),
            max_concurrency=max_concurrency,
            concurrency_groups=dict(opts.get("concurrency_groups") or {}),
            is_async=meta["is_async"], get_if_exists=bool(opts.get("get_if_exists")),
            handle_meta=pickle.dumps(handle_meta))
        from .scheduling_hints import hints_from_options
        hints = hints_from_options(opts)
        if hints is not None:
            spec.hints.CopyFrom(hints)
        from .runtime_env import resolve
        spec.runtime_env_hash, spec.runtime_env = resolve(core, opts.get("runtime_env"))
        lifetime = None if detached else core.new_actor_lifetime_ref(actor_id)
        try:
            existing = core.actors.create(spec, args, kwargs)
        except BaseException:
            if lifetime is not None:
                core.actor_lifetime_refs.pop(lifetime._id, None)
            raise
        if existing is not None:
            # get_if_exists found an actor by that name: hand out a plain handle to it.
            if lifetime is not None:
                core.actor_lifetime_refs.pop(lifetime._id, None)
            return ActorHandle(existing.actor_id, pickle.loads(existing.handle_meta), None)
        return ActorHandle(actor_id, handle_meta, lifetime)

    def __repr__(self) -> str:
        return f"<ember actor class {self._cls.__name__}>"


class ActorHandle(Generic[T]):
    """A reference to an actor: call ``handle.method.remote(...)``; picklable.

    >>> c = Counter.remote()
    >>> ref = c.incr.remote()
    """

    def __init__(self, actor_id: bytes, meta: dict[str, Any], lifetime_ref: Any) -> None:
        self._ember_actor_id = actor_id
        self._ember_meta = meta
        self._ember_lifetime = lifetime_ref
        self._ember_core = worker_state.core

    @property
    def _actor_id(self) -> ActorID:
        return ActorID(self._ember_actor_id)

    def __getattr__(self, name: str) -> "ActorMethod":
        # Not cached on the handle: a handle -> method -> handle cycle would keep
        # the actor alive after the user's last reference is gone, until a GC pass.
        if name.startswith("_ember_"):
            raise AttributeError(name)
        meta = self.__dict__.get("_ember_meta") or {}
        info = meta.get("methods", {}).get(name)
        if info is None:
            cls = meta.get("class_name", "?")
            public = sorted(m for m in meta.get("methods", {}) if not m.startswith("_"))
            raise AttributeError(
                f"actor class '{cls}' has no method '{name}'"
                + (f" (its methods: {', '.join(public)})" if public else "")
                + ": check the spelling, or add the method to the class")
        return ActorMethod(self, name, info["num_returns"], info["concurrency_group"],
                           info["max_task_retries"])

    def __reduce__(self) -> Any:
        return (_rebuild_handle, (self._ember_actor_id, self._ember_meta, self._ember_lifetime))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._ember_actor_id == self._ember_actor_id

    def __hash__(self) -> int:
        return hash(self._ember_actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._ember_meta.get('class_name', '?')}, {self._ember_actor_id.hex()})"


def _rebuild_handle(actor_id: bytes, meta: dict[str, Any], lifetime_ref: Any) -> ActorHandle:
    return ActorHandle(actor_id, meta, lifetime_ref)


class ActorMethod:
    """``handle.method``: submit with ``.remote(...)``, adjust with ``.options(...)``.

    >>> ref = c.incr.options(num_returns=1).remote()
    """

    def __init__(self, handle: ActorHandle, name: str, num_returns: int,
                 concurrency_group: str, max_task_retries: int | None,
                 call_name: str = "") -> None:
        self._handle = handle
        self._name = name
        self._call_name = call_name          # shown in errors and logs instead of Class.method
        self._num_returns = num_returns
        self._group = concurrency_group
        self._retries = (handle._ember_meta.get("max_task_retries", 0)
                         if max_task_retries is None else max_task_retries)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actor methods cannot be called directly: use "
                        f"'actor.{self._name}.remote(...)'")

    def options(self, **options: Any) -> "ActorMethod":
        """Override num_returns / concurrency_group / max_task_retries / name for one call.

        ``enable_task_events`` is accepted for Ray compatibility but not honoured:
        every call's task events are recorded (``EMBER_TASK_EVENTS=0`` turns them off
        for a whole process).

        >>> a.pair.options(num_returns=2).remote()
        """
        # retry_exceptions is not offered: actor calls are retried only when the
        # actor's worker dies (max_task_retries), not on application errors.
        allowed = {"num_returns", "concurrency_group", "max_task_retries", "name",
                   "enable_task_events"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"unknown option(s) for actor method {self._name}: "
                             f"{', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
        num_returns = (_num_returns(options["num_returns"], f"{self._name}.options()")
                       if "num_returns" in options else self._num_returns)
        group = options.get("concurrency_group", self._group)
        retries = options.get("max_task_retries", self._retries)
        call_name = options.get("name", self._call_name)
        if not isinstance(call_name, str):
            raise ValueError(f"name= for actor method {self._name} must be a str, got "
                             f"{call_name!r}")
        return ActorMethod(self._handle, self._name, num_returns, group, retries, call_name)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method on the actor; returns an ObjectRef (or several, per num_returns)."""
        handle = self._handle
        core = worker_state.core
        if core is None or (handle._ember_core is not None and core is not handle._ember_core):
            raise RuntimeError(
                f"this handle to actor {handle._ember_meta.get('class_name')} belongs to an "
                "Ember session that was shut down (actors do not survive ember.shutdown()): "
                "create the actor again after ember.init()")
        limit = handle._ember_meta.get("max_pending_calls", -1)
        if limit is not None and limit > 0:
            core.actors.check_pending_limit(handle._ember_actor_id, limit)
        refs = core.actors.submit(handle._ember_actor_id, handle._ember_meta["class_name"],
                                  self._name, args, kwargs, self._num_returns, self._group,
                                  self._retries, self._call_name)
        n = self._num_returns
        if n == -1:
            return refs
        if n == 1:
            return refs[0]
        if n == 0:
            return None
        return refs

    def __repr__(self) -> str:
        return f"<ember actor method {self._handle._ember_meta.get('class_name')}.{self._name}>"



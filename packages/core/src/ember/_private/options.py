"""Validation, merging and resource resolution for ``@remote`` / ``.options()`` arguments.

Option names and semantics follow Ray so code written for Ray runs unchanged.
Validation happens when the decorator or ``.options()`` is called, not when
the task is scheduled, so a typo such as ``num_cpu=2`` fails at the line that
made it instead of silently scheduling with defaults.

As in Ray, an option explicitly set to None means "use the default"; it is
kept in the validated dict (so ``.options(num_cpus=None)`` can undo a
decorator's value) and resolved by :func:`resource_request`.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any, TypeGuard

from ember._private.accelerators import accelerator_resource_name
from ember._private.resources import UNIT_SCALE

__all__ = [
    "ACTOR_OPTIONS",
    "DEFAULT_ACTOR_OPTIONS",
    "DEFAULT_TASK_OPTIONS",
    "RUNTIME_ENV_KEYS",
    "TASK_OPTIONS",
    "actor_resource_request",
    "merge_options",
    "merge_runtime_env",
    "resource_request",
    "validate_options",
]

TASK_OPTIONS: frozenset[str] = frozenset({
    "num_returns", "num_cpus", "num_gpus", "resources", "accelerator_type", "memory",
    "max_calls", "max_retries", "retry_exceptions", "runtime_env", "scheduling_strategy",
    "name", "label_selector", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "_metadata", "enable_task_events",
    "object_store_memory", "generator_backpressure_num_objects",
})

ACTOR_OPTIONS: frozenset[str] = frozenset({
    "num_cpus", "num_gpus", "resources", "accelerator_type", "memory", "object_store_memory",
    "max_restarts", "max_task_retries", "max_concurrency", "concurrency_groups", "name",
    "namespace", "lifetime", "get_if_exists", "runtime_env", "scheduling_strategy",
    "label_selector", "max_pending_calls", "enable_task_events", "placement_group",
    "placement_group_bundle_index", "placement_group_capture_child_tasks", "_metadata",
})

RUNTIME_ENV_KEYS: frozenset[str] = frozenset({
    "env_vars", "working_dir", "py_modules", "excludes", "pip", "uv", "conda", "container",
    "config", "image_uri", "nsight", "worker_process_setup_hook", "java_jars",
    "_inject_current_ray",
})

# max_calls=0 means unlimited. Ray documents max_calls=1 as the default for
# GPU tasks (so each task's process exits and frees GPU memory); Ember keeps 0
# for every task so workers are reused, and users who need the Ray behaviour
# pass max_calls=1 explicitly.
DEFAULT_TASK_OPTIONS: Mapping[str, Any] = MappingProxyType({
    "num_returns": 1,
    "num_cpus": 1,
    "num_gpus": 0,
    "max_retries": 3,
    "retry_exceptions": False,
    "max_calls": 0,
})

# max_concurrency is absent on purpose: Ray's default depends on whether the
# actor is async (1000) or threaded/sync (1), which only the actor class knows.
DEFAULT_ACTOR_OPTIONS: Mapping[str, Any] = MappingProxyType({
    "max_restarts": 0,
    "max_task_retries": 0,
    "max_pending_calls": -1,
    "lifetime": None,
})

# Resources that have dedicated keywords; inside resources= they would bypass
# the keyword's defaults and validation.
_RESERVED_RESOURCES = {
    "CPU": "num_cpus", "GPU": "num_gpus",
    "memory": "memory", "object_store_memory": "object_store_memory",
}

_ACCELERATOR_REQUEST = 0.001  # Ray's request against a node's accelerator_type:<T> = 1


class _Ctx:
    """Wording for error messages: the same option reads differently per target."""

    def __init__(self, for_actor: bool) -> None:
        self.for_actor = for_actor
        self.target = "an actor class" if for_actor else "a remote function"

    def fail(self, name: str, value: object, requirement: str, example: str) -> ValueError:
        return ValueError(
            f"invalid option {name}={value!r} for {self.target}: {requirement}; "
            f"e.g. {example}")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, Real) and not isinstance(value, bool)


# ------------------------------------------------------------------ validators
# Each takes (name, value, ctx) and returns the normalized value or raises.
# None has already been accepted by the caller for options where it is allowed.

def _quantity(name: str, value: object, ctx: _Ctx) -> float:
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ctx.fail(name, value, "it must be a finite number >= 0", f"{name}=1")
    if value < 0:
        raise ctx.fail(name, value, "it must be >= 0", f"{name}=1")
    scaled = float(value) * UNIT_SCALE
    if abs(scaled - round(scaled)) > 1e-6:
        raise ctx.fail(name, value, "its precision cannot go beyond 0.0001", f"{name}=0.25")
    return value


def _num_gpus(name: str, value: object, ctx: _Ctx) -> object:
    quantity = _quantity(name, value, ctx)
    if quantity > 1 and not float(quantity).is_integer():
        raise ctx.fail(
            name, value,
            "a GPU request above 1 must be a whole number (a fraction <= 1 shares one GPU)",
            f"{name}=2 or {name}=0.5")
    return value


def _memory(name: str, value: object, ctx: _Ctx) -> object:
    if not _is_number(value) or not math.isfinite(float(value)) or value < 0:
        raise ctx.fail(name, value, "it must be a number of bytes >= 0", f"{name}=2 * 1024**3")
    return value


def _resources(name: str, value: object, ctx: _Ctx) -> dict:
    if not isinstance(value, Mapping):
        raise ctx.fail(name, value, "it must be a dict of custom resource name to quantity",
                       "resources={'my_resource': 1}")
    normalized: dict[str, object] = {}
    for key, quantity in value.items():
        if not isinstance(key, str) or not key:
            raise ctx.fail(name, value, f"resource name {key!r} must be a non-empty str",
                           "resources={'my_resource': 1}")
        if key in _RESERVED_RESOURCES:
            keyword = _RESERVED_RESOURCES[key]
            raise ValueError(
                f"invalid option resources={{{key!r}: {quantity!r}}} for {ctx.target}: use the "
                f"'{keyword}' option instead of {key!r} in resources, e.g. {keyword}={quantity!r}")
        normalized[key] = _quantity(f"resources[{key!r}]", quantity, ctx)
    return normalized


def _int_at_least(minimum: int, example: str) -> Callable[[str, object, _Ctx], object]:
    def check(name: str, value: object, ctx: _Ctx) -> object:
        if not _is_int(value) or value < minimum:
            raise ctx.fail(name, value, f"it must be an int >= {minimum}", example)
        return value
    return check


def _num_returns(name: str, value: object, ctx: _Ctx) -> object:
    if (isinstance(value, str) and value in ("streaming", "dynamic")) or (
            _is_int(value) and value >= 0):
        return value
    raise ctx.fail(name, value, "it must be an int >= 0, 'streaming' or 'dynamic'",
                   f"{name}=2 or {name}='streaming'")


def _retry_exceptions(name: str, value: object, ctx: _Ctx) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ctx.fail(name, value, f"{item!r} is not an exception class; it must be "
                               "a bool or a list of exception classes",
                               f"{name}=[ConnectionError, TimeoutError]")
        return tuple(value)
    raise ctx.fail(name, value, "it must be a bool or a list of exception classes",
                   f"{name}=True or {name}=[ConnectionError]")


def _runtime_env(name: str, value: object, ctx: _Ctx) -> dict:
    if not isinstance(value, Mapping):
        raise ctx.fail(name, value, "it must be a dict (or None)",
                       "runtime_env={'env_vars': {'KEY': 'value'}}")
    unknown = sorted(key for key in value if key not in RUNTIME_ENV_KEYS)
    if unknown:
        key = unknown[0]
        hint = _suggest(str(key), RUNTIME_ENV_KEYS) or (
            f"; valid keys are {', '.join(sorted(RUNTIME_ENV_KEYS))}")
        raise ValueError(
            f"invalid option runtime_env for {ctx.target}: unknown runtime_env key {key!r}{hint}")
    normalized = dict(value)
    if "env_vars" in normalized and normalized["env_vars"] is not None:
        normalized["env_vars"] = _env_vars(normalized["env_vars"], ctx)
    # working_dir, py_modules, excludes, pip, config (runtime_env/spec.py).
    from .runtime_env.spec import validate as validate_runtime_env
    return validate_runtime_env(normalized, ctx.target)


def _env_vars(env_vars: object, ctx: _Ctx) -> dict[str, str]:
    if not isinstance(env_vars, Mapping):
        raise ValueError(
            f"invalid option runtime_env['env_vars']={env_vars!r} for {ctx.target}: it must "
            "be a dict of str to str, e.g. runtime_env={'env_vars': {'KEY': 'value'}}")
    for key, val in env_vars.items():
        if not isinstance(key, str):
            raise ValueError(
                f"invalid option runtime_env['env_vars'] for {ctx.target}: key {key!r} has type "
                f"{type(key).__name__}, but environment variable names must be str")
        if not isinstance(val, str):
            raise ValueError(
                f"invalid option runtime_env['env_vars'][{key!r}]={val!r} for {ctx.target}: "
                f"the value has type {type(val).__name__}, but environment variable values must "
                f"be str; convert it, e.g. {{{key!r}: {str(val)!r}}}")
    return dict(env_vars)


def _lifetime(name: str, value: object, ctx: _Ctx) -> object:
    if isinstance(value, str) and value in ("detached", "non_detached"):
        return value
    raise ctx.fail(name, value, "it must be None, 'detached' or 'non_detached'",
                   f"{name}='detached'")


def _type_check(kind: type | tuple[type, ...], description: str,
                example: str) -> Callable[[str, object, _Ctx], object]:
    def check(name: str, value: object, ctx: _Ctx) -> object:
        if not isinstance(value, kind):
            raise ctx.fail(name, value, f"it must be {description}", example)
        return value
    return check


def _name(name: str, value: object, ctx: _Ctx) -> object:
    if not isinstance(value, str):
        raise ctx.fail(name, value, "it must be a str", f"{name}='my_name'")
    if ctx.for_actor and not value:
        raise ctx.fail(name, value, "an actor name cannot be empty (use None for no name)",
                       f"{name}='my_actor'")
    return value


def _str_dict(name: str, value: object, ctx: _Ctx) -> object:
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ctx.fail(name, value, "it must be a dict of str to str", f"{name}={{'region': 'us'}}")
    return dict(value)


def _scheduling_strategy(name: str, value: object, ctx: _Ctx) -> object:
    # Strategy objects (placement group, node affinity, ...) are defined
    # elsewhere and checked where they are used; only the string forms are
    # fully known here.
    if isinstance(value, str) and value not in ("DEFAULT", "SPREAD"):
        raise ctx.fail(name, value, "a string strategy must be 'DEFAULT' or 'SPREAD'",
                       f"{name}='SPREAD'")
    return value


def _concurrency_groups(name: str, value: object, ctx: _Ctx) -> object:
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, Mapping):
        raise ctx.fail(name, value, "it must be a dict of group name to max concurrency",
                       f"{name}={{'io': 4}}")
    for group, limit in value.items():
        if not isinstance(group, str) or not _is_int(limit) or limit < 1:
            raise ctx.fail(name, value, f"group {group!r} must map a str to an int >= 1",
                           f"{name}={{'io': 4}}")
    return dict(value)


def _max_pending_calls(name: str, value: object, ctx: _Ctx) -> object:
    if _is_int(value) and (value == -1 or value >= 1):
        return value
    raise ctx.fail(name, value, "it must be -1 (unlimited) or an int >= 1", f"{name}=100")


def _backpressure(name: str, value: object, ctx: _Ctx) -> object:
    # 0 would stall a generator forever, so only "off" (-1) or a positive window.
    if _is_int(value) and (value == -1 or value >= 1):
        return value
    raise ctx.fail(name, value, "it must be -1 (disabled) or an int >= 1", f"{name}=10")


def _anything(name: str, value: object, ctx: _Ctx) -> object:
    return value


_BOOL = _type_check(bool, "a bool", "True")

_VALIDATORS: dict[str, Callable[[str, object, _Ctx], object]] = {
    "num_returns": _num_returns,
    "num_cpus": _quantity,
    "num_gpus": _num_gpus,
    "resources": _resources,
    "accelerator_type": _type_check(str, "a str such as 'H100'", "accelerator_type='H100'"),
    "memory": _memory,
    "object_store_memory": _memory,
    "max_calls": _int_at_least(0, "max_calls=1 (0 means unlimited)"),
    "max_retries": _int_at_least(-1, "max_retries=3 (-1 retries forever)"),
    "retry_exceptions": _retry_exceptions,
    "runtime_env": _runtime_env,
    "scheduling_strategy": _scheduling_strategy,
    "name": _name,
    "namespace": _type_check(str, "a str", "namespace='my_namespace'"),
    "label_selector": _str_dict,
    "placement_group": _anything,
    "placement_group_bundle_index": _int_at_least(-1, "placement_group_bundle_index=0"),
    "placement_group_capture_child_tasks": _BOOL,
    "_metadata": _type_check(dict, "a dict", "_metadata={}"),
    "enable_task_events": _BOOL,
    "generator_backpressure_num_objects": _backpressure,
    "max_restarts": _int_at_least(-1, "max_restarts=3 (-1 restarts forever)"),
    "max_task_retries": _int_at_least(-1, "max_task_retries=3 (-1 retries forever)"),
    "max_concurrency": _int_at_least(1, "max_concurrency=4"),
    "concurrency_groups": _concurrency_groups,
    "lifetime": _lifetime,
    "get_if_exists": _BOOL,
    "max_pending_calls": _max_pending_calls,
}


def _suggest(name: str, valid: frozenset[str]) -> str:
    matches = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def validate_options(opts: Mapping[str, Any], *, for_actor: bool = False) -> dict[str, Any]:
    """Check ``@remote``/``.options()`` arguments and return a normalized copy.

    Normalization copies nested dicts (so later mutation by the caller cannot
    change a decorated function) and turns ``retry_exceptions`` lists into
    tuples. Raises ValueError naming the offending option and how to fix it.
    """
    ctx = _Ctx(for_actor)
    if not isinstance(opts, Mapping):
        raise ValueError(f"options must be a dict of option name to value, got "
                         f"{type(opts).__name__} {opts!r}")
    valid = ACTOR_OPTIONS if for_actor else TASK_OPTIONS
    other = TASK_OPTIONS if for_actor else ACTOR_OPTIONS
    for name in opts:
        if name not in valid:
            raise ValueError(_unknown_option_message(name, valid, other, ctx))
    normalized: dict[str, Any] = {}
    for name, value in opts.items():
        normalized[name] = None if value is None else _VALIDATORS[name](name, value, ctx)
    if normalized.get("get_if_exists") and not normalized.get("name"):
        raise ValueError(f"invalid option get_if_exists=True for {ctx.target}: it needs a "
                         "name to look the actor up by; e.g. .options(name='my_actor', "
                         "get_if_exists=True)")
    return normalized


# Options whose actor/task twin has a different name; difflib would pick a
# look-alike (max_retries -> max_restarts) with a different meaning.
_COUNTERPARTS: dict[bool, dict[str, str]] = {
    True: {"max_retries": "max_task_retries"},
    False: {"max_task_retries": "max_retries", "max_restarts": "max_retries"},
}


def _unknown_option_message(name: object, valid: frozenset[str], other: frozenset[str],
                            ctx: _Ctx) -> str:
    message = f"unknown option {name!r} for {ctx.target}"
    if isinstance(name, str):
        if name in other:
            other_target = "remote functions" if ctx.for_actor else "actor classes"
            message += f" (it is only valid for {other_target})"
        suggestion = _suggest(name, valid)
        counterpart = _COUNTERPARTS[ctx.for_actor].get(name)
        if counterpart:
            suggestion = f"; did you mean {counterpart!r}?"
        if suggestion:
            return message + suggestion
    return message + f"; valid options are {', '.join(sorted(valid))}"


def merge_runtime_env(parent: Mapping[str, Any] | None,
                      child: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Merge runtime envs the way Ray merges a child's over its parent's.

    Child fields replace parent fields, except ``env_vars`` which merge key by
    key, so a task can add one variable without dropping the job's others.
    """
    if parent is None:
        return None if child is None else _copy_env(child)
    if child is None:
        return _copy_env(parent)
    merged = _copy_env(parent)
    for key, value in child.items():
        if key == "env_vars" and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = dict(value) if key == "env_vars" and isinstance(value, Mapping) else value
    return merged


def _copy_env(env: Mapping[str, Any]) -> dict[str, Any]:
    copied = dict(env)
    if isinstance(copied.get("env_vars"), Mapping):
        copied["env_vars"] = dict(copied["env_vars"])
    return copied


def merge_options(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override`` (as ``.options()`` does over the decorator).

    ``override`` wins per option, including an explicit None (which, as in
    Ray, restores the default). ``runtime_env`` dicts merge via
    :func:`merge_runtime_env`. Inputs are not modified.
    """
    merged = dict(base)
    for name, value in override.items():
        current = merged.get(name)
        if name == "runtime_env" and isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[name] = merge_runtime_env(current, value)
        else:
            merged[name] = value
    return merged


def _requested(opts: Mapping[str, Any], default_cpus: float) -> dict[str, float]:
    request: dict[str, float] = {}
    for name, value in (opts.get("resources") or {}).items():
        request[name] = float(value)
    num_cpus = opts.get("num_cpus")
    request["CPU"] = float(default_cpus if num_cpus is None else num_cpus)
    request["GPU"] = float(opts.get("num_gpus") or 0)
    request["memory"] = float(opts.get("memory") or 0)
    accelerator_type = opts.get("accelerator_type")
    if accelerator_type:
        key = accelerator_resource_name(accelerator_type)
        request[key] = max(request.get(key, 0.0), _ACCELERATOR_REQUEST)
    return {name: value for name, value in request.items() if value}


def resource_request(opts: Mapping[str, Any], *, for_actor: bool = False
                     ) -> dict[str, float] | tuple[dict[str, float], dict[str, float]]:
    """Turn validated options into what the scheduler must reserve.

    For a remote function, returns ``{resource: quantity}`` with CPU
    defaulting to 1. For an actor (``for_actor=True``), returns
    ``(placement_request, lifetime_request)``; see :func:`actor_resource_request`.
    Zero quantities are dropped. ``object_store_memory`` is not a scheduling
    resource (Ray stopped reserving it per task) and is ignored here.
    """
    if for_actor:
        return actor_resource_request(opts)
    return _requested(opts, default_cpus=DEFAULT_TASK_OPTIONS["num_cpus"])


def actor_resource_request(opts: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Return ``(placement_request, lifetime_request)`` for creating an actor.

    Ray's rule: an actor that names no resources (num_cpus, num_gpus,
    accelerator_type and resources all unset; memory does not count) needs 1
    CPU free to be placed but holds 0 CPU while alive, so many idle actors can
    share a node. Once any of those is given, even as 0, the actor holds
    exactly what it asked for (CPU defaulting to 0) and is placed by the same.
    """
    lifetime = _requested(opts, default_cpus=0)
    named = (opts.get("num_cpus") is not None or opts.get("num_gpus") is not None
             or opts.get("accelerator_type") is not None or bool(opts.get("resources")))
    if named:
        return dict(lifetime), lifetime
    placement = dict(lifetime)
    placement["CPU"] = 1.0
    return placement, lifetime

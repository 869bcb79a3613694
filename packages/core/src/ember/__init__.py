"""Ember: scale Python from a laptop to a cluster, with Ray's API.

>>> import ember
>>> ember.init()
>>> @ember.remote
... def square(x):
...     return x * x
>>> ember.get([square.remote(i) for i in range(4)])
[0, 1, 4, 9]

Importing ``ember`` is cheap: nothing starts and gRPC is not loaded until
``ember.init()``.
"""
from __future__ import annotations

# Libraries (ember-data, ember-train, ...) ship ``ember/<lib>/`` folders in
# their own distributions; extending __path__ lets them join this package in
# normal and editable installs alike.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from typing import TYPE_CHECKING, Any  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ObjectRef",
    "ObjectRefGenerator",
    "available_resources",
    "cancel",
    "cluster_resources",
    "actor",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "util",
    "wait",
    "__version__",
]

if TYPE_CHECKING:
    from . import actor, exceptions, util
    from ._private.actor_class import method
    from ._private.api import (available_resources, cancel, cluster_resources, get, get_actor,
                               get_gpu_ids, init, is_initialized, kill, nodes, put, shutdown,
                               wait)
    from ._private.object_ref import ObjectRef, ObjectRefGenerator
    from ._remote import remote
    from .runtime_context import get_runtime_context

_LAZY = {
    "ObjectRef": "._private.object_ref",
    "ObjectRefGenerator": "._private.object_ref",
    "available_resources": "._private.api",
    "cancel": "._private.api",
    "cluster_resources": "._private.api",
    "get": "._private.api",
    "get_actor": "._private.api",
    "kill": "._private.api",
    "method": "._private.actor_class",
    "get_gpu_ids": "._private.api",
    "init": "._private.api",
    "is_initialized": "._private.api",
    "nodes": "._private.api",
    "put": "._private.api",
    "shutdown": "._private.api",
    "wait": "._private.api",
    "remote": "._remote",
    "get_runtime_context": ".runtime_context",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import ember` costs milliseconds, not the gRPC import.
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in ("actor", "exceptions", "util", "runtime_context"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ember' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

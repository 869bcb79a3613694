"""Utilities built on Ember's public API, with the names of ``ray.util``.

>>> from ember.util import ActorPool           # spread work over a fixed set of actors
>>> from ember.util.queue import Queue         # a FIFO queue shared by tasks and actors
>>> from ember.util.multiprocessing import Pool  # multiprocessing.Pool, backed by actors
>>> from ember.util.state import list_tasks    # what runs where (Ray's state API)
>>> from ember.util.metrics import Counter     # application metrics, scraped by Prometheus

Everything here uses only the public ``ember`` API (``remote``, ``get``, ``wait``,
``kill``, ...), the way a library would. Importing ``ember.util`` is cheap: the
submodules load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ActorPool", "get_current_placement_group", "get_placement_group",
           "list_named_actors", "multiprocessing", "placement_group", "placement_group_table",
           "queue", "remove_placement_group", "scheduling_strategies", "state", "metrics"]

# Imported eagerly (the module is light): otherwise importing the submodule
# ember.util.placement_group later would rebind the package attribute
# `placement_group` from Ray's function to the module.
from .placement_group import (get_current_placement_group, get_placement_group,  # noqa: E402
                              placement_group, placement_group_table,
                              remove_placement_group)

if TYPE_CHECKING:
    from . import multiprocessing, queue
    from . import metrics, scheduling_strategies, state
    from .._private.api import list_named_actors
    from .actor_pool import ActorPool

_SUBMODULES = ("multiprocessing", "queue", "scheduling_strategies", "state", "metrics")


def __getattr__(name: str) -> Any:
    # Lazy, like ember/__init__.py: `import ember.util` loads no submodule.
    import importlib

    if name == "ActorPool":
        value = importlib.import_module(".actor_pool", __name__).ActorPool
        globals()[name] = value
        return value
    if name == "list_named_actors":
        from .._private.api import list_named_actors
        globals()[name] = list_named_actors
        return list_named_actors
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ember.util' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

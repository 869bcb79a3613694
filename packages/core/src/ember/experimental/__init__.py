"""Experimental APIs, with the names of ``ray.experimental``.

>>> from ember.experimental import get_object_locations
>>> get_object_locations([ref])[ref]["node_ids"]
['9f1c...']

Importing ``ember.experimental`` is cheap: the implementation loads on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["get_object_locations"]

if TYPE_CHECKING:
    from .._private.object_locations import get_object_locations


def __getattr__(name: str) -> Any:
    if name == "get_object_locations":
        from .._private.object_locations import get_object_locations
        globals()[name] = get_object_locations
        return get_object_locations
    raise AttributeError(f"module 'ember.experimental' has no attribute {name!r}")

"""Compute strategies for ``map``/``map_batches`` (Ray's ``ActorPoolStrategy``).

>>> ds.map_batches(Model, compute=ActorPoolStrategy(min_size=1, max_size=4))
>>> ds.map_batches(Model, concurrency=(1, 4))          # the same, Ray's newer spelling
"""
from __future__ import annotations

__all__ = ["ActorPoolStrategy", "TaskPoolStrategy"]

UNBOUNDED = 2**31 - 1


class ActorPoolStrategy:
    """Run a callable class on a pool of ``size`` actors, or autoscale in [min_size, max_size]."""

    def __init__(self, *, size: int | None = None, min_size: int | None = None,
                 max_size: int | None = None,
                 max_tasks_in_flight_per_actor: int | None = None) -> None:
        if size is not None:
            if min_size is not None or max_size is not None:
                raise ValueError("ActorPoolStrategy: give either size or min_size/max_size")
            min_size = max_size = size
        min_size = 1 if min_size is None else min_size
        if max_size is None:
            max_size = UNBOUNDED  # autoscale as far as the cluster allows, as in Ray
        if not isinstance(min_size, int) or min_size < 1:
            raise ValueError(f"ActorPoolStrategy: min_size must be an int >= 1, got {min_size!r}")
        if not isinstance(max_size, int) or max_size < min_size:
            raise ValueError(f"ActorPoolStrategy: max_size must be an int >= min_size "
                             f"({min_size}), got {max_size!r}")
        if max_tasks_in_flight_per_actor is not None and max_tasks_in_flight_per_actor < 1:
            raise ValueError("ActorPoolStrategy: max_tasks_in_flight_per_actor must be >= 1")
        self.min_size = min_size
        self.max_size = max_size
        self.max_tasks_in_flight_per_actor = max_tasks_in_flight_per_actor

    def __repr__(self) -> str:
        return f"ActorPoolStrategy(min_size={self.min_size}, max_size={self.max_size})"


class TaskPoolStrategy:
    """Run a function as stateless tasks (the default); ``size`` caps concurrent tasks."""

    def __init__(self, size: int | None = None) -> None:
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"TaskPoolStrategy: size must be an int >= 1, got {size!r}")
        self.size = size

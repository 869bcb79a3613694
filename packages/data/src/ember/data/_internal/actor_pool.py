"""Actor pools for map operators with callable classes (``concurrency=n`` or ``(min, max)``).

Each actor builds the operator's stages once (constructing the user's class), then
processes one input bundle per call. The pool starts ``min_size`` actors, adds one
(up to ``max_size``) while every actor is busy and inputs wait, and removes idle
actors once no more input can come.
"""
from __future__ import annotations

from typing import Any

import ember

from .transforms import MapTransformer, run_transform_stream, user_traceback

__all__ = ["ActorPoolState", "MapWorker"]


class MapWorker:
    """The actor: holds the operator's constructed UDF for its whole life."""

    def __init__(self, transformer: MapTransformer, context: Any = None) -> None:
        self._transformer = transformer
        self._context = context
        self._set_context()
        try:
            transformer.init()
        except Exception as e:
            raise e.with_traceback(user_traceback(e))

    def ready(self) -> bool:
        return True

    def _set_context(self) -> None:
        """Run the UDF under the DataContext of the driver that started the dataset."""
        if self._context is not None:
            from ..context import DataContext
            DataContext._set_current(self._context)

    def process(self, task_idx: int, *inputs: Any) -> Any:
        """A streaming method: yields metadata, block, metadata, block, ..."""
        self._set_context()
        from ..context import DataContext
        try:
            yield from run_transform_stream(self._transformer, task_idx, inputs,
                                            DataContext.get_current().target_max_block_size)
        except Exception as e:
            raise e.with_traceback(user_traceback(e))


class ActorPoolState:
    """The live actors of one operator and how many calls each has in flight."""

    def __init__(self, transformer: MapTransformer, *, min_size: int, max_size: int,
                 num_cpus: float, num_gpus: float, remote_args: dict[str, Any],
                 max_in_flight: int, name: str, context: Any = None) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_in_flight = max(1, max_in_flight)
        self.name = name
        args = {k: v for k, v in remote_args.items()
                if k not in ("num_cpus", "num_gpus", "scheduling_strategy", "max_retries",
                             "retry_exceptions", "num_returns")}
        self._cls = ember.remote(MapWorker).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                    **args)
        # The transformer goes into the object store once, not once per actor.
        self._transformer_ref = ember.put(transformer)
        self._context = context
        self.actors: list[Any] = []
        self.in_flight: dict[int, int] = {}     # actor index -> calls in flight
        self.ready: set[int] = set()
        self.pending_ready: dict[Any, int] = {}  # ready() ref -> actor index
        self.dead: set[int] = set()

    # -- size ------------------------------------------------------------------------------
    def start(self) -> None:
        for _ in range(self.min_size):
            self.add_actor()

    def add_actor(self) -> None:
        actor = self._cls.remote(self._transformer_ref, self._context)
        idx = len(self.actors)
        self.actors.append(actor)
        self.in_flight[idx] = 0
        self.pending_ready[actor.ready.remote()] = idx

    @property
    def live(self) -> int:
        return len(self.actors) - len(self.dead)

    @property
    def cpus_held(self) -> float:
        return self.live * self.num_cpus

    @property
    def gpus_held(self) -> float:
        return self.live * self.num_gpus

    def wants_more(self, queued_inputs: int) -> bool:
        """Scale up: every actor (including starting ones) busy and inputs waiting."""
        if self.live >= self.max_size or queued_inputs <= 0 or self.pending_ready:
            return False
        return self.free_slots() == 0

    def remove_idle(self, keep: int) -> None:
        """Kill idle actors beyond ``keep`` (called once inputs are exhausted)."""
        for idx in list(self.ready):
            if self.live <= keep:
                break
            if self.in_flight[idx] == 0:
                self._kill(idx)

    # -- calls -----------------------------------------------------------------------------
    def mark_ready(self, ref: Any) -> None:
        idx = self.pending_ready.pop(ref)
        ember.get(ref)  # raises if the constructor failed
        self.ready.add(idx)

    def free_slots(self) -> int:
        return sum(self.max_in_flight - self.in_flight[i] for i in self.ready)

    def submit(self, task_idx: int, inputs: list[Any]) -> tuple[Any, int]:
        """Call the least loaded ready actor; returns (ObjectRefGenerator of metadata/block
        items, actor index)."""
        idx = min(self.ready, key=lambda i: self.in_flight[i])
        self.in_flight[idx] += 1
        gen = self.actors[idx].process.options(num_returns="streaming").remote(
            task_idx, *inputs)
        return gen, idx

    def done(self, idx: int) -> None:
        self.in_flight[idx] -= 1

    def _kill(self, idx: int) -> None:
        self.ready.discard(idx)
        self.dead.add(idx)
        try:
            ember.kill(self.actors[idx])
        except Exception:  # noqa: BLE001 - already gone is fine
            pass

    def shutdown(self) -> None:
        for idx in range(len(self.actors)):
            if idx not in self.dead:
                self._kill(idx)
        self.pending_ready.clear()

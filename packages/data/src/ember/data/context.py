"""``DataContext``: process-wide settings of Ember Data (Ray's names).

>>> ctx = ember.data.DataContext.get_current()
>>> ctx.enable_progress_bars = False
>>> ctx.execution_options.preserve_order = True
>>> ctx.object_store_memory_limit_fraction = 0.25   # memory budget for in-flight blocks

Settings are read when a dataset starts executing, in the driver.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["DataContext", "ExecutionOptions", "ExecutionResources"]

MiB = 1024 * 1024


@dataclass
class ExecutionResources:
    """Resource amounts (None: no limit) used as execution limits.

    >>> ExecutionResources(cpu=1, object_store_memory=512 * 1024**2)
    """

    cpu: float | None = None
    gpu: float | None = None
    object_store_memory: float | None = None

    @classmethod
    def for_limits(cls, cpu: float | None = None, gpu: float | None = None,
                   object_store_memory: float | None = None) -> "ExecutionResources":
        return cls(cpu=cpu, gpu=gpu, object_store_memory=object_store_memory)


@dataclass
class ExecutionOptions:
    """How the streaming executor runs a dataset.

    ``resource_limits`` caps what the executor uses (default: the whole cluster, and
    ``DataContext.object_store_memory_limit_fraction`` of its object store);
    ``preserve_order`` delivers blocks in input order (slower: a slow block holds back
    the ones after it).
    """

    resource_limits: ExecutionResources = field(default_factory=ExecutionResources)
    exclude_resources: ExecutionResources = field(default_factory=ExecutionResources)
    preserve_order: bool = False
    locality_with_output: bool = False
    verbose_progress: bool = False


@dataclass
class DataContext:
    """Settings for Ember Data in this process; ``DataContext.get_current()`` to change them."""

    # Blocks are split when larger than this and fused reads aim for at least the min.
    target_max_block_size: int = 128 * MiB
    target_min_block_size: int = 1 * MiB
    # Default number of output blocks for reads and range/from_items (capped by size).
    read_op_min_num_blocks: int = 200
    # Fraction of the cluster's object store that blocks in flight may use; beyond
    # it the executor stops launching work that would add more (backpressure).
    object_store_memory_limit_fraction: float = 0.5
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)
    enable_progress_bars: bool = True
    # Progress bars only when stderr is a terminal, unless forced on here.
    progress_bars_force_tty: bool = False
    # How many blocks may fail (their rows skipped) before the dataset fails;
    # -1: any number.
    max_errored_blocks: int = 0
    # Batches prepared ahead of the consumer by iter_batches by default.
    iter_prefetch_batches: int = 1
    # Scheduling strategy for data tasks ("SPREAD" balances nodes, like Ray).
    scheduling_strategy: Any = "DEFAULT"
    # How many blocks each operator may have in flight per CPU it can use.
    max_tasks_in_flight_per_actor: int = 2
    enable_auto_log_stats: bool = False
    # Actor pools' requested CPUs are scaled down when the pools would otherwise
    # leave no CPU to the other operators (reads) of the same dataset.
    reserve_cpus_for_tasks: float = 1.0
    verbose_stats_logs: bool = False

    _current: ClassVar["DataContext | None"] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @staticmethod
    def get_current() -> "DataContext":
        """The context of this process (created with defaults on first use)."""
        with DataContext._lock:
            if DataContext._current is None:
                DataContext._current = DataContext()
            return DataContext._current

    @staticmethod
    def _set_current(context: "DataContext") -> None:
        with DataContext._lock:
            DataContext._current = context

    def copy(self) -> "DataContext":
        return copy.deepcopy(self)

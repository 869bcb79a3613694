"""Execution statistics: per operator wall time, CPU time, rows and bytes (``ds.stats()``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DatasetStats", "OpStats", "format_bytes"]


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@dataclass
class OpStats:
    """What one operator did during one execution."""

    name: str
    num_tasks: int = 0
    blocks_out: int = 0
    rows_out: int = 0
    bytes_out: int = 0
    task_wall_s: float = 0.0
    task_cpu_s: float = 0.0
    errored_blocks: int = 0
    start: float | None = None
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def started(self) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def finished(self) -> None:
        if self.end is None:
            self.end = time.perf_counter()

    @property
    def wall_s(self) -> float:
        if self.start is None:
            return 0.0
        return (self.end if self.end is not None else time.perf_counter()) - self.start

    def add_task(self, meta: Any) -> None:
        """Account one finished task from its output metadata."""
        self.num_tasks += 1
        self.add_output(meta)
        exec_stats = getattr(meta, "exec_stats", None) or {}
        self.task_wall_s += float(exec_stats.get("wall_s", 0.0))
        self.task_cpu_s += float(exec_stats.get("cpu_s", 0.0))

    def add_exec_stats(self, meta: Any) -> None:
        exec_stats = getattr(meta, "exec_stats", None) or {}
        self.task_wall_s += float(exec_stats.get("wall_s", 0.0))
        self.task_cpu_s += float(exec_stats.get("cpu_s", 0.0))

    def add_output(self, meta: Any) -> None:
        self.blocks_out += 1
        self.rows_out += meta.num_rows or 0
        self.bytes_out += meta.size_bytes or 0

    def to_string(self, index: int) -> str:
        lines = [f"Operator {index} {self.name}: {self.num_tasks} tasks executed, "
                 f"{self.blocks_out} blocks produced in {self.wall_s:.2f}s"]
        if self.num_tasks:
            lines.append(f"* Task wall time: {self.task_wall_s:.3f}s total, "
                         f"{self.task_wall_s / self.num_tasks * 1000:.1f}ms mean")
            lines.append(f"* Task CPU time: {self.task_cpu_s:.3f}s total")
        lines.append(f"* Output rows: {self.rows_out} total"
                     + (f", {self.rows_out // self.blocks_out} per block"
                        if self.blocks_out else ""))
        lines.append(f"* Output size: {format_bytes(self.bytes_out)} total")
        if self.errored_blocks:
            lines.append(f"* Errored blocks skipped: {self.errored_blocks}")
        for key, value in self.extra.items():
            lines.append(f"* {key}: {value}")
        return "\n".join(lines)


@dataclass
class DatasetStats:
    """Stats of one execution of a dataset (the last one, for ``ds.stats()``)."""

    ops: list[OpStats] = field(default_factory=list)
    wall_s: float = 0.0
    peak_memory_bytes: float = 0.0
    memory_limit_bytes: float = 0.0
    parent: "DatasetStats | None" = None

    def to_string(self) -> str:
        parts = []
        if self.parent is not None:
            parts.append(self.parent.to_string())
        parts.extend(op.to_string(i + 1) for i, op in enumerate(self.ops))
        parts.append(f"Dataset execution: {self.wall_s:.2f}s wall; peak object store use "
                     f"by blocks in flight {format_bytes(self.peak_memory_bytes)} (budget "
                     f"{format_bytes(self.memory_limit_bytes)})")
        return "\n\n".join(parts)

    def __str__(self) -> str:
        return self.to_string()

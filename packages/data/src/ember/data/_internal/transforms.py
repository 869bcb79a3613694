"""What a map task runs: a chain of stages over the blocks of one task's input.

Consecutive map-like operators are fused by the optimizer into one ``MapTransformer``,
so a ``read -> map_batches -> filter`` pipeline is one task per input and no
intermediate block is written to the object store.

Everything here is pickled into tasks and actors; it must not hold refs or handles.
"""
from __future__ import annotations

import os
import pickle
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from ..datasource.datasource import ReadTask, TaskContext
from . import block as B
from .batch import batch_to_block, block_to_batch

__all__ = ["BatchStage", "ExprFilterStage", "LimitStage", "MapTransformer", "ProjectStage", "ReadStage",
           "RowStage", "SampleStage", "Stage", "WriteStage", "run_transform",
           "run_transform_stream", "split_blocks", "stream_map_task"]


class Stage:
    """One step of a map task: blocks in, blocks out."""

    name = "Stage"

    def init(self) -> None:
        """Called once per task, or once per actor for actor-pool operators."""

    def apply(self, blocks: Iterator[Any], ctx: TaskContext) -> Iterator[B.Block]:
        raise NotImplementedError


class ReadStage(Stage):
    """Inputs are ReadTasks; run each and yield its tables as blocks.

    ``block_bytes`` asks the readers for blocks of at most about that size (see
    ``read_block_limit``); the planner sets it when the task ends in a write.
    """

    name = "Read"

    def __init__(self, block_bytes: int | None = None) -> None:
        self.block_bytes = block_bytes

    def apply(self, items: Iterator[Any], ctx: TaskContext) -> Iterator[B.Block]:
        # Here, not at the top: actor-pool and other map tasks import this module too,
        # and need none of the file readers' modules (pyarrow.fs among them).
        from .datasource.file_based_datasource import read_block_limit
        for item in items:
            if not isinstance(item, ReadTask):
                raise TypeError(f"read stage expected a ReadTask, got {type(item).__name__}")
            with read_block_limit(self.block_bytes):
                for table in item():
                    yield B.to_block(table)


def _instantiate(fn: Any, args: Sequence[Any], kwargs: dict[str, Any] | None) -> Any:
    if isinstance(fn, type):
        return fn(*args, **(kwargs or {}))
    return fn


class BatchStage(Stage):
    """``map_batches``: re-batch to ``batch_size`` rows, convert, call the UDF, convert back."""

    def __init__(self, fn: Any, *, batch_size: int | None, batch_format: str,
                 zero_copy_batch: bool = False, fn_args: Sequence[Any] = (),
                 fn_kwargs: dict[str, Any] | None = None,
                 fn_constructor_args: Sequence[Any] = (),
                 fn_constructor_kwargs: dict[str, Any] | None = None,
                 name: str = "MapBatches") -> None:
        self.fn = fn
        self.batch_size = batch_size
        self.batch_format = batch_format
        self.zero_copy_batch = zero_copy_batch
        self.fn_args = tuple(fn_args)
        self.fn_kwargs = dict(fn_kwargs or {})
        self.ctor_args = tuple(fn_constructor_args)
        self.ctor_kwargs = dict(fn_constructor_kwargs or {})
        self.name = name
        self._callable: Any = None

    def init(self) -> None:
        if self._callable is None:
            self._callable = _instantiate(self.fn, self.ctor_args, self.ctor_kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_callable"] = None  # instances are built where they run
        return state

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        self.init()
        # As Ray 2.60 (ensure_copy = not zero_copy_batch and batch_size is not None):
        # batches cut to batch_size are copied so the UDF may write to them; whole
        # blocks (batch_size=None, the default) are handed over as they are, which
        # saves a copy of every column but may leave NumPy arrays read-only.
        copy = (self.batch_format in ("default", "numpy") and not self.zero_copy_batch
                and self.batch_size is not None)
        for batch_block in rebatch(blocks, self.batch_size):
            batch = block_to_batch(batch_block, self.batch_format)
            if copy:
                # Values from the object store are read-only views; UDFs expect to
                # be able to modify their batch in place, as in Ray.
                batch = {k: (v if v.flags.writeable else v.copy()) for k, v in batch.items()}
            out = self._callable(batch, *self.fn_args, **self.fn_kwargs)
            if out is None:
                raise ValueError(f"{self.name} UDF returned None; it must return a batch "
                                 "(pyarrow.Table, pandas.DataFrame or dict of numpy arrays)")
            if _is_generator(out):
                for item in out:
                    yield batch_to_block(item, what=self.name)
            else:
                yield batch_to_block(out, what=self.name)


def _is_generator(value: Any) -> bool:
    return isinstance(value, Iterator) and not isinstance(value, (dict, pa.Table))


def rebatch(blocks: Iterable[B.Block], batch_size: int | None) -> Iterator[B.Block]:
    """Cut a stream of blocks into blocks of exactly ``batch_size`` rows (last may be short).

    ``None`` passes blocks through whole.
    """
    return B.rebatch_blocks(blocks, batch_size)


class RowStage(Stage):
    """``map`` / ``flat_map`` / ``filter``: a UDF called once per row (a dict)."""

    def __init__(self, fn: Any, kind: str, *, fn_args: Sequence[Any] = (),
                 fn_kwargs: dict[str, Any] | None = None,
                 fn_constructor_args: Sequence[Any] = (),
                 fn_constructor_kwargs: dict[str, Any] | None = None, name: str = "") -> None:
        if kind not in ("map", "flat_map", "filter"):
            raise ValueError(f"unknown row stage kind {kind!r}")
        self.fn = fn
        self.kind = kind
        self.fn_args = tuple(fn_args)
        self.fn_kwargs = dict(fn_kwargs or {})
        self.ctor_args = tuple(fn_constructor_args)
        self.ctor_kwargs = dict(fn_constructor_kwargs or {})
        self.name = name or {"map": "Map", "flat_map": "FlatMap", "filter": "Filter"}[kind]
        self._callable: Any = None

    def init(self) -> None:
        if self._callable is None:
            self._callable = _instantiate(self.fn, self.ctor_args, self.ctor_kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_callable"] = None
        return state

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        self.init()
        fn: Callable[..., Any] = self._callable
        for block in blocks:
            if self.kind == "filter":
                mask = [bool(fn(row, *self.fn_args, **self.fn_kwargs)) for row in B.rows_of(block)]
                yield block.filter(pa.array(mask, type=pa.bool_()))
                continue
            out_rows: list[dict[str, Any]] = []
            for row in B.rows_of(block):
                result = fn(row, *self.fn_args, **self.fn_kwargs)
                if self.kind == "map":
                    out_rows.append(self._check_row(result, row))
                else:
                    if isinstance(result, dict) or not isinstance(result, Iterable):
                        raise ValueError(
                            f"{self.name} UDF must return a list (or other iterable) of "
                            f"dicts, one per output row; got {type(result).__name__}: "
                            f"{_short(result)}")
                    out_rows.extend(self._check_row(r, row) for r in result)
            if out_rows:
                yield B.block_from_rows(out_rows)

    def _check_row(self, result: Any, row: Any) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise ValueError(
                f"{self.name} UDF must return a dict (one output row, column name -> value); "
                f"got {type(result).__name__}: {_short(result)} for input row {_short(row)}")
        return result


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class ExprFilterStage(Stage):
    """``filter(expr="a > 5")``: a string expression evaluated with pyarrow.compute."""

    def __init__(self, expr: str) -> None:
        from .expressions import to_arrow_expression
        to_arrow_expression(expr)  # invalid expressions fail when the dataset is built
        self.expr = expr
        self.name = f"Filter({expr})"

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        from .expressions import to_arrow_expression
        expression = to_arrow_expression(self.expr)
        for block in blocks:
            if block.num_columns == 0:
                yield block
                continue
            try:
                yield block.filter(expression)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                raise ValueError(f"filter(expr={self.expr!r}) failed on a block with columns "
                                 f"{block.column_names}: {e}") from e


class ProjectStage(Stage):
    """select_columns / drop_columns / rename_columns, without touching the data."""

    def __init__(self, *, select: list[str] | None = None, drop: list[str] | None = None,
                 rename: dict[str, str] | None = None) -> None:
        self.select = select
        self.drop = drop
        self.rename = rename
        self.name = ("SelectColumns" if select is not None else
                     "DropColumns" if drop is not None else "RenameColumns")

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        for block in blocks:
            names = block.column_names
            if self.select is not None:
                _check_columns("select_columns", self.select, names)
                block = block.select(self.select)
            if self.drop is not None:
                _check_columns("drop_columns", self.drop, names)
                block = block.drop_columns(self.drop)
            if self.rename is not None:
                _check_columns("rename_columns", self.rename, names)
                block = block.rename_columns([self.rename.get(n, n) for n in names])
            yield block


def _check_columns(op: str, wanted: Iterable[str], names: list[str]) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise KeyError(f"{op}: no column(s) {missing}; the dataset has {names}")


class LimitStage(Stage):
    """At most ``limit`` rows out of this task (the global limit is applied by the executor)."""

    name = "Limit"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        left = self.limit
        for block in blocks:
            if left <= 0:
                return
            if block.num_rows > left:
                block = B.slice_block(block, 0, left)
            left -= block.num_rows
            yield block


class SampleStage(Stage):
    """``random_sample``: keep each row with probability ``fraction``."""

    name = "RandomSample"

    def __init__(self, fraction: float, seed: int | None) -> None:
        self.fraction = fraction
        self.seed = seed

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        # Seeded per task so a seeded sample is the same on every run.
        rng = np.random.default_rng(None if self.seed is None else [self.seed, ctx.task_idx])
        for block in blocks:
            yield block.filter(pa.array(rng.random(block.num_rows) < self.fraction))


class WriteStage(Stage):
    """Hands the task's blocks to ``Datasink.write``; outputs one row with its result."""

    def __init__(self, datasink: Any) -> None:
        self.datasink = datasink
        self.name = datasink.get_name()

    def apply(self, blocks: Iterator[B.Block], ctx: TaskContext) -> Iterator[B.Block]:
        result = self.datasink.write(blocks, ctx)
        yield pa.table({"write_result": pa.array([pickle.dumps(result)], type=pa.binary())})


class MapTransformer:
    """A fused chain of stages: what one map task (or actor call) runs."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def init(self) -> None:
        for stage in self.stages:
            stage.init()

    def fused_with(self, downstream: "MapTransformer") -> "MapTransformer":
        return MapTransformer(self.stages + downstream.stages)

    def apply(self, inputs: Iterable[Any], ctx: TaskContext) -> Iterator[B.Block]:
        stream: Iterator[Any] = iter(inputs)
        for stage in self.stages:
            stream = stage.apply(stream, ctx)
        return stream

    @property
    def name(self) -> str:
        return "->".join(s.name for s in self.stages)


def run_transform(transformer: MapTransformer, task_idx: int,
                  inputs: Sequence[Any]) -> tuple[B.Block, Any]:
    """Run a transformer over one task's inputs: (output block, its metadata)."""
    start, cpu_start = time.perf_counter(), time.thread_time()
    input_files: list[str] = []
    for item in inputs:
        if isinstance(item, ReadTask):
            input_files.extend(item.metadata.input_files or [])
    blocks = list(transformer.apply(inputs, TaskContext(task_idx=task_idx)))
    if not blocks:
        schema = next((b.schema for b in inputs if isinstance(b, pa.Table)), None)
        out = B.empty_block(schema if _only_projection_free(transformer) else None)
    else:
        out = B.concat(blocks)
    stats = {"wall_s": time.perf_counter() - start, "cpu_s": time.thread_time() - cpu_start}
    return out, B.metadata_for(out, input_files, stats)


def run_transform_stream(transformer: MapTransformer, task_idx: int, inputs: Sequence[Any],
                         target_max_block_size: int | None) -> Iterator[Any]:
    """Like ``run_transform`` but yields ``metadata, block, metadata, block, ...``: each
    output block (cut at ``target_max_block_size`` bytes) preceded by its metadata.

    The metadata comes first so that the driver learns of a failure from a small
    object, never from a block it would have to fetch.
    """
    start, cpu_start = time.perf_counter(), time.thread_time()
    input_files: list[str] = []
    for item in inputs:
        if isinstance(item, ReadTask):
            input_files.extend(item.metadata.input_files or [])
    emitted = 0

    def stats() -> dict[str, float]:
        nonlocal start, cpu_start
        now, cpu = time.perf_counter(), time.thread_time()
        out = {"wall_s": now - start, "cpu_s": cpu - cpu_start}
        start, cpu_start = now, cpu
        return out

    for out in split_blocks(transformer.apply(inputs, TaskContext(task_idx=task_idx)),
                            target_max_block_size):
        emitted += 1
        out = B.compact(out)
        yield B.metadata_for(out, input_files if emitted == 1 else None, stats())
        yield out
    if not emitted:
        schema = next((b.schema for b in inputs if isinstance(b, pa.Table)), None)
        out = B.empty_block(schema if _only_projection_free(transformer) else None)
        yield B.metadata_for(out, input_files, stats())
        yield out


def split_blocks(blocks: Iterable[B.Block], target: int | None) -> Iterator[B.Block]:
    """Re-cut a stream of blocks into blocks of about ``target`` bytes (at least one row
    each); small blocks are merged until they reach it. ``None``: one block in all."""
    pending: list[B.Block] = []
    pending_bytes = 0
    for block in blocks:
        if not block.num_rows and (pending or block.num_columns == 0):
            continue
        pending.append(block)
        pending_bytes += B.size_bytes(block)
        if target is None or pending_bytes < target:
            continue
        table = B.concat(pending)
        pending, pending_bytes = [], 0
        rows, nbytes = table.num_rows, max(1, B.size_bytes(table))
        per = max(1, int(rows * target // nbytes))
        offset = 0
        while rows - offset > per:
            yield B.slice_block(table, offset, offset + per)
            offset += per
        rest = B.slice_block(table, offset, rows) if offset else table
        if B.size_bytes(rest) >= target:
            yield rest
        else:
            pending, pending_bytes = [rest], B.size_bytes(rest)
    if pending:
        yield B.concat(pending)


def stream_map_task(transformer: MapTransformer, context: Any, task_idx: int,
                    *inputs: Any) -> Iterator[Any]:
    """Body of a streaming map task (``num_returns="streaming"``): runs under the driver's
    DataContext and yields metadata/block pairs (see ``run_transform_stream``)."""
    from ..context import DataContext
    if context is not None:
        DataContext._set_current(context)
    try:
        transformer.init()
        yield from run_transform_stream(transformer, task_idx, inputs,
                                        DataContext.get_current().target_max_block_size)
    except Exception as e:
        raise e.with_traceback(user_traceback(e))


def _only_projection_free(transformer: MapTransformer) -> bool:
    # An empty result keeps its input's schema only when no stage could have changed it.
    return all(isinstance(s, (LimitStage, SampleStage, ExprFilterStage)) or
               (isinstance(s, RowStage) and s.kind == "filter") for s in transformer.stages)


def map_task(transformer: MapTransformer, task_idx: int, *inputs: Any) -> tuple[B.Block, Any]:
    """Body of a map task (inputs arrive resolved: blocks or ReadTasks)."""
    try:
        transformer.init()
        return run_transform(transformer, task_idx, inputs)
    except Exception as e:
        raise e.with_traceback(user_traceback(e))


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_traceback(error: BaseException) -> Any:
    """The error's traceback without Ember Data's own frames, so the user sees their code."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        if not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            frames.append(tb)
        tb = tb.tb_next
    if not frames:
        return error.__traceback__
    for a, b in zip(frames, frames[1:]):
        a.tb_next = b
    frames[-1].tb_next = None
    return frames[0]

"""The streaming executor: runs a physical plan as Ember tasks and actor pools.

One background thread per execution loops over: collect finished tasks, advance the
operators that run in the driver (limit, union, all-to-all), then launch work while
``policy.select_next`` allows it. Blocks stay in the object store; only metadata comes
back to the driver. The consumer reads output bundles from a queue; what it has not
read yet counts toward the memory budget, so a slow consumer slows the reads down.

>>> ex = StreamingExecutor(sink, DataContext.get_current())
>>> for bundle in ex.iter_bundles():   # RefBundles of the sink's output
...     ...
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Iterator

import ember

from ..context import DataContext
from ..exceptions import UserCodeException
from . import transforms
from .actor_pool import ActorPoolState
from .bundle import RefBundle
from .logical import ActorPool
from .physical import (AllToAllPhys, InputBuffer, LimitPhys, MapPhys, PhysicalOp, UnionPhys,
                       topo_order)
from .policy import Budget, OpView, plan_actor_cpus, pool_may_grow, select_next
from .progress import ProgressBar, progress_enabled
from .stats import DatasetStats, OpStats

logger = logging.getLogger(__name__)

__all__ = ["ExchangeContext", "StreamingExecutor", "remote_fn"]

_REMOTE_CACHE: dict[tuple[Any, str], Any] = {}

# How long a released block still counts toward the memory budget (its file is
# unlinked asynchronously, typically within a few ms, slower under load).
_FREE_GRACE_S = 0.2
# After this long without any change, the executor logs what it is waiting for.
_STALL_WARNING_S = 60
# A block in shared memory takes a header page more than its Arrow buffers.
_BLOCK_OVERHEAD = 4096


def _stored(bundle: RefBundle) -> float:
    """Bytes the bundle's blocks take in the object store."""
    return bundle.size_bytes + _BLOCK_OVERHEAD * len(bundle.blocks)


def remote_fn(fn: Any, **options: Any) -> Any:
    """``ember.remote(fn).options(**options)``, made once per process per option set."""
    key = (fn, repr(sorted(options.items(), key=lambda kv: kv[0])))
    if key not in _REMOTE_CACHE:
        _REMOTE_CACHE[key] = ember.remote(fn).options(**options) if options \
            else ember.remote(fn)
    return _REMOTE_CACHE[key]


def _slice_task(block: Any, start: int, end: int) -> tuple[Any, Any]:
    from .block import metadata_for, slice_block
    from .block import compact
    out = compact(slice_block(block, start, end))
    return out, metadata_for(out)


def _context_for_workers(ctx: DataContext) -> DataContext:
    """A copy of the driver's context to ship to workers (the context itself if it
    cannot be copied, e.g. a setting holds something that cannot be deep-copied)."""
    try:
        return ctx.copy()
    except Exception:  # noqa: BLE001
        return ctx


class ExchangeContext:
    """Handed to all-to-all functions: settings, stats and the remote options for tasks."""

    def __init__(self, data_context: DataContext, stats: OpStats, cpus: float,
                 context_ref: Any = None) -> None:
        self.data_context = data_context
        self.stats = stats
        self.cpus = cpus
        # The driver's DataContext in the object store, for tasks that run user code
        # (aggregations), so DataContext.get_current() there sees the driver's settings.
        self.context_ref = context_ref

    def task(self, fn: Any, num_returns: int = 2) -> Any:
        options: dict[str, Any] = {"num_returns": num_returns}
        if self.data_context.scheduling_strategy not in (None, "DEFAULT"):
            options["scheduling_strategy"] = self.data_context.scheduling_strategy
        return remote_fn(fn, **options)


class _Running:
    """A map task (or actor call) in flight: a streaming generator of metadata/block items."""

    __slots__ = ("gen", "inputs", "input_bytes", "est_output", "actor_idx", "seq", "cpus",
                 "gpus", "order", "pending_meta", "outputs", "out_bytes", "num_out")

    def __init__(self, gen: Any, inputs: list[Any], input_bytes: float,
                 est_output: float, actor_idx: int | None, seq: int, cpus: float,
                 gpus: float) -> None:
        self.gen = gen
        self.pending_meta: Any = None     # metadata received, its block not yet
        self.outputs: list[RefBundle] = []  # held until the task ends (preserve_order)
        self.out_bytes = 0.0
        self.num_out = 0
        self.inputs = inputs  # kept so input blocks live until the task is done
        self.input_bytes = input_bytes
        self.est_output = est_output
        self.actor_idx = actor_idx
        self.seq = seq
        self.cpus = cpus
        self.gpus = gpus
        self.order: tuple = (seq,)


class _OpState:
    """Runtime state of one physical operator."""

    def __init__(self, op: PhysicalOp, index: int) -> None:
        self.op = op
        self.index = index
        n_in = max(1, len(op.inputs))
        self.inqueues: list[collections.deque[Any]] = [collections.deque() for _ in range(n_in)]
        self.inputs_done = [False] * n_in
        self.counted_inputs = [True] * n_in   # False for queues fed by an InputBuffer
        self.consumers: list[tuple[_OpState, int]] = []
        self.running: dict[Any, _Running] = {}
        self.finished = False
        self.stats = OpStats(op.name)
        self.pool: ActorPoolState | None = None
        self.next_task_idx = 0
        self.completed: dict[int, list[RefBundle]] = {}   # preserve_order: held outputs
        self.next_release = 0
        self.rows_emitted = 0
        self.avg_output = 0.0
        self.avg_input = 0.0
        self.dispatched = 0
        self.progress: ProgressBar | None = None

    def all_inputs_done(self) -> bool:
        return all(self.inputs_done) and not any(self.inqueues)


class StreamingExecutor:
    """Executes one physical plan; iterate ``iter_bundles()`` to run it and get its output."""

    def __init__(self, sink: PhysicalOp, ctx: DataContext, *, name: str = "Dataset") -> None:
        self._ctx = ctx
        self._name = name
        self._order = topo_order(sink)
        self._states = [_OpState(op, i) for i, op in enumerate(self._order)]
        by_op = {id(s.op): s for s in self._states}
        for state in self._states:
            for idx, parent in enumerate(state.op.inputs):
                by_op[id(parent)].consumers.append((state, idx))
                state.counted_inputs[idx] = not isinstance(parent, InputBuffer)
        self._sink = self._states[-1]
        self._output: collections.deque[RefBundle] = collections.deque()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = False
        self._done = False
        self._error: BaseException | None = None
        self._by_ref: dict[Any, _OpState] = {}
        self._pending_ready: dict[Any, _OpState] = {}
        self._preserve = ctx.execution_options.preserve_order
        self._errored_blocks = 0
        # Blocks we let go of are unlinked a little later (the free is asynchronous):
        # count them for a moment longer so the budget holds for the real store.
        self._releasing: collections.deque[tuple[float, float]] = collections.deque()
        self._item_order: dict[int, tuple] = {}
        self._context_ref: Any = None
        self._progress_marker: tuple = ()
        self._progress_at = time.perf_counter()
        self._warned = False
        self._thread: threading.Thread | None = None
        self.stats = DatasetStats(ops=[s.stats for s in self._states
                                       if not isinstance(s.op, InputBuffer)])
        self._t0 = time.perf_counter()

    # -- consumer side ---------------------------------------------------------------------
    def iter_bundles(self) -> Iterator[RefBundle]:
        """Start execution and yield the sink's output as it is produced."""
        self._start()
        try:
            while True:
                with self._cond:
                    while not self._output and not self._done:
                        self._cond.wait(0.5)
                    if self._output:
                        bundle = self._output.popleft()
                    elif self._error is not None:
                        raise self._error
                    else:
                        return
                self._wake.set()  # room in the budget: the loop may launch more
                yield bundle
        finally:
            self.shutdown()

    def shutdown(self, wait: bool = True) -> None:
        """Stop launching work, cancel what runs, free actors (idempotent)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._wake.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # -- the loop --------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            self._setup()
        except BaseException:
            self._cleanup()  # actors of pools started before the failure
            raise
        self._thread = threading.Thread(target=self._run, name=f"ember-data-{self._name}",
                                        daemon=True)
        self._thread.start()

    def _setup(self) -> None:
        ctx = self._ctx
        cluster = ember.cluster_resources()
        limits = ctx.execution_options.resource_limits
        self._total_cpus = float(cluster.get("CPU", 0.0))
        if limits.cpu is not None:
            self._total_cpus = min(self._total_cpus, float(limits.cpu))
        self._total_gpus = float(cluster.get("GPU", 0.0))
        if limits.gpu is not None:
            self._total_gpus = min(self._total_gpus, float(limits.gpu))
        if limits.object_store_memory is not None:
            self._memory_limit = float(limits.object_store_memory)
        else:
            store = float(cluster.get("object_store_memory", 2 * 1024**3))
            self._memory_limit = store * ctx.object_store_memory_limit_fraction
        self.stats.memory_limit_bytes = self._memory_limit
        maps = [(s, s.op) for s in self._states if isinstance(s.op, MapPhys)]
        for _, op in maps:
            if op.num_cpus > self._total_cpus + 1e-9 or op.num_gpus > self._total_gpus + 1e-9:
                raise ValueError(
                    f"{op.name} asks for num_cpus={op.num_cpus}, num_gpus={op.num_gpus} per "
                    f"task but the cluster has {self._total_cpus:g} CPUs and "
                    f"{self._total_gpus:g} GPUs: it could never run")
        # The driver's DataContext, applied inside every map task and actor (as Ray does).
        self._context_ref = ember.put(_context_for_workers(ctx))
        pools = [(s, op, op.compute) for s, op in maps if isinstance(op.compute, ActorPool)]
        cpus = plan_actor_cpus(self._total_cpus,
                               [(pool.min_size, op.num_cpus) for _, op, pool in pools],
                               task_ops=len(maps) - len(pools),
                               reserve=ctx.reserve_cpus_for_tasks)
        for (state, op, pool), num_cpus in zip(pools, cpus):
            if num_cpus < op.num_cpus:
                logger.info("%s: actors get %.3g CPUs each instead of %.3g so that the other "
                            "operators can run on this %g-CPU cluster", op.name, num_cpus,
                            op.num_cpus, self._total_cpus)
            if op.num_gpus * pool.min_size > self._total_gpus + 1e-9:
                raise ValueError(f"{op.name} needs {pool.min_size} actors with "
                                 f"{op.num_gpus} GPUs each; the cluster has "
                                 f"{self._total_gpus:g} GPUs")
            state.pool = ActorPoolState(
                op.transformer, min_size=pool.min_size, max_size=pool.max_size,
                num_cpus=num_cpus, num_gpus=op.num_gpus, remote_args=op.remote_args,
                max_in_flight=pool.max_tasks_in_flight_per_actor, name=op.name,
                context=self._context_ref)
            state.pool.start()
            for ref in state.pool.pending_ready:
                self._pending_ready[ref] = state
        self._transformer_refs = {id(s): ember.put(op.transformer) for s, op in maps
                                  if s.pool is None}
        show = progress_enabled(ctx)
        position = 0
        for state in self._states:
            if isinstance(state.op, InputBuffer):
                continue
            total = None
            if state.op.inputs and isinstance(state.op.inputs[0], InputBuffer) and \
                    isinstance(state.op, MapPhys) and state.op.min_rows_per_bundle is None:
                total = len(state.op.inputs[0].items)
            state.progress = ProgressBar(state.op.name, total, position=position, enabled=show)
            position += 1

    def _run(self) -> None:
        try:
            for state in self._states:
                if isinstance(state.op, InputBuffer):
                    for i, item in enumerate(state.op.items):
                        # Read tasks carry no order key of their own: use their position.
                        self._item_order[id(item)] = getattr(item, "seq", (i,))
                        self._emit(state, item)
                    self._finish(state)
            while True:
                with self._cond:
                    if self._stop:
                        break
                self._collect(timeout=0.0)
                self._step_driver_ops()
                self._launch()
                if self._sink.finished:
                    break
                self.stats.peak_memory_bytes = max(self.stats.peak_memory_bytes,
                                                   self._memory_used())
                self._check_progress()
                self._wait()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._error = e
        finally:
            self._cleanup()
            self.stats.wall_s = time.perf_counter() - self._t0
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _check_progress(self) -> None:
        """Say so (once) when nothing has happened for a long time: a stuck dataset is
        most often one whose tasks cannot get CPUs held by other work."""
        marker = (sum(s.stats.num_tasks for s in self._states), len(self._by_ref),
                  len(self._output), sum(len(q) for s in self._states for q in s.inqueues))
        now = time.perf_counter()
        if marker != self._progress_marker:
            self._progress_marker = marker
            self._progress_at = now
            return
        if now - self._progress_at > _STALL_WARNING_S and not self._warned:
            self._warned = True
            waiting = ", ".join(f"{s.op.name}: {len(s.running)} running, "
                                f"{sum(len(q) for q in s.inqueues)} queued"
                                for s in self._states if not s.finished)
            logger.warning("Dataset execution has made no progress for %ds (%s). Tasks may be "
                           "waiting for CPUs held by other tasks or actors (ember status "
                           "shows them), or the consumer stopped reading.",
                           _STALL_WARNING_S, waiting)

    def _wait(self) -> None:
        refs = list(self._by_ref) + list(self._pending_ready)
        if refs:
            ember.wait(refs, num_returns=1, timeout=0.05)
        else:
            self._wake.wait(0.05)
            self._wake.clear()

    def _cleanup(self) -> None:
        for state in self._states:
            if state.running and state.pool is None:
                for ref in list(state.running):
                    try:
                        ember.cancel(ref)
                    except Exception:  # noqa: BLE001 - finished meanwhile
                        pass
            state.running.clear()
            if state.pool is not None:
                state.pool.shutdown()
            if state.progress is not None:
                state.progress.close()
            state.stats.finished()
        self._by_ref.clear()
        self._transformer_refs = {}

    # -- accounting ------------------------------------------------------------------------
    def _memory_used(self) -> float:
        used = 0.0
        for state in self._states:
            for counted, queue in zip(state.counted_inputs, state.inqueues):
                if counted:
                    used += sum(_stored(b) for b in queue if isinstance(b, RefBundle))
            for r in state.running.values():
                used += r.input_bytes + max(0.0, r.est_output - r.out_bytes)
                used += sum(_stored(b) for b in r.outputs)
            used += sum(_stored(b) for bs in state.completed.values() for b in bs)
        used += sum(_stored(b) for b in self._output)
        now = time.perf_counter()
        while self._releasing and now - self._releasing[0][0] > _FREE_GRACE_S:
            self._releasing.popleft()
        used += sum(size for _, size in self._releasing)
        return used

    def _resources_used(self) -> tuple[float, float]:
        cpus = gpus = 0.0
        for state in self._states:
            if state.pool is not None:
                cpus += state.pool.cpus_held
                gpus += state.pool.gpus_held
            else:
                for r in state.running.values():
                    cpus += r.cpus
                    gpus += r.gpus
        return cpus, gpus

    # -- outputs ---------------------------------------------------------------------------
    def _emit(self, state: _OpState, bundle: Any) -> None:
        if isinstance(bundle, RefBundle) and state.progress is not None:
            state.progress.update(len(bundle.blocks), bundle.num_rows)
        if state is self._sink:
            with self._cond:
                self._output.append(bundle)
                self._cond.notify_all()
            return
        for consumer, idx in state.consumers:
            consumer.inqueues[idx].append(bundle)

    def _finish(self, state: _OpState) -> None:
        if state.finished:
            return
        state.finished = True
        state.stats.finished()
        for consumer, idx in state.consumers:
            consumer.inputs_done[idx] = True
        if state.pool is not None:
            state.pool.shutdown()
        if state.progress is not None:
            state.progress.set_total(state.stats.blocks_out)
            state.progress.close()

    def _release(self, state: _OpState, seq: int, bundles: list[RefBundle]) -> None:
        """Hand a finished task's outputs on (in dispatch order if order is preserved)."""
        if not self._preserve:
            for bundle in bundles:
                self._emit(state, bundle)
            return
        state.completed[seq] = bundles
        while state.next_release in state.completed:
            ready = state.completed.pop(state.next_release)
            state.next_release += 1
            for bundle in ready:
                self._emit(state, bundle)

    # -- finished tasks --------------------------------------------------------------------
    def _collect(self, timeout: float) -> None:
        refs = list(self._by_ref) + list(self._pending_ready)
        if not refs:
            return
        ready, _ = ember.wait(refs, num_returns=len(refs), timeout=timeout)
        for ref in ready:
            if ref in self._pending_ready:
                state = self._pending_ready.pop(ref)
                if state.pool is not None and ref in state.pool.pending_ready:
                    try:
                        state.pool.mark_ready(ref)
                    except Exception as e:
                        raise RuntimeError(f"{state.op.name}: an actor of its pool failed to "
                                           f"start: {e}") from e
                continue
            if ref in self._by_ref:
                self._drain(self._by_ref[ref], ref)
        for state in self._states:
            self._maybe_finish_map(state)

    def _drain(self, state: _OpState, gen: Any) -> None:
        """Take the items a streaming map task has produced so far; finish it at its end."""
        running = state.running[gen]
        while gen.ready():
            try:
                ref = next(gen)
            except StopIteration:
                self._task_done(state, gen, running, None)
                return
            if running.pending_meta is None:
                try:
                    running.pending_meta = ember.get(ref)
                except Exception as e:  # noqa: BLE001
                    self._task_done(state, gen, running, e)
                    return
                continue
            meta, running.pending_meta = running.pending_meta, None
            state.stats.add_output(meta)
            state.stats.add_exec_stats(meta)
            running.out_bytes += (meta.size_bytes or 0) + _BLOCK_OVERHEAD
            # Several blocks of one task keep the task's place in the dataset's order.
            bundle = RefBundle([(ref, meta)], tuple(running.order) + (running.num_out,))
            running.num_out += 1
            if self._preserve:
                running.outputs.append(bundle)
            else:
                self._emit(state, bundle)

    def _task_done(self, state: _OpState, gen: Any, running: _Running,
                   error: Exception | None) -> None:
        self._by_ref.pop(gen, None)
        state.running.pop(gen, None)
        if running.input_bytes:
            self._releasing.append((time.perf_counter(), running.input_bytes))
        if state.pool is not None and running.actor_idx is not None:
            state.pool.done(running.actor_idx)
        if error is not None:
            if state.pool is None:
                try:
                    ember.cancel(gen)
                except Exception:  # noqa: BLE001 - already finished
                    pass
            self._task_failed(state, running, error)
            return
        state.stats.num_tasks += 1
        n = state.stats.num_tasks
        state.avg_output += (running.out_bytes - state.avg_output) / n
        self._release(state, running.seq, running.outputs)

    def _task_failed(self, state: _OpState, running: _Running, error: Exception) -> None:
        limit = self._ctx.max_errored_blocks
        if limit < 0 or self._errored_blocks < limit:
            self._errored_blocks += 1
            state.stats.errored_blocks += 1
            logger.warning("%s: skipping a block that failed (%d of at most %s): %s",
                           state.op.name, self._errored_blocks,
                           "any" if limit < 0 else limit, error)
            self._release(state, running.seq, running.outputs)
            return
        if isinstance(error, ember.exceptions.TaskError):
            raise UserCodeException(
                f"{state.op.name} failed: the function it runs raised "
                f"{type(error.cause).__name__ if error.cause is not None else 'an error'} "
                f"while processing a block (set DataContext.max_errored_blocks to skip "
                f"failing blocks).\n{error}", operator=state.op.name) from error
        raise error

    def _maybe_finish_map(self, state: _OpState) -> None:
        if state.finished or not isinstance(state.op, MapPhys):
            return
        if state.all_inputs_done() and not state.running and not state.completed:
            self._finish(state)
        elif state.pool is not None and state.all_inputs_done():
            state.pool.remove_idle(keep=0)

    # -- driver-side operators -------------------------------------------------------------
    def _step_driver_ops(self) -> None:
        for state in self._states:
            if state.finished:
                continue
            op = state.op
            if isinstance(op, LimitPhys):
                self._step_limit(state, op)
            elif isinstance(op, UnionPhys):
                self._step_union(state)
            elif isinstance(op, AllToAllPhys) and all(state.inputs_done):
                self._run_all_to_all(state, op)

    def _step_limit(self, state: _OpState, op: LimitPhys) -> None:
        queue = state.inqueues[0]
        state.stats.started()
        while queue and state.rows_emitted < op.limit:
            bundle = queue.popleft()
            left = op.limit - state.rows_emitted
            if bundle.num_rows > left:
                bundle = self._truncate(bundle, left)
            state.rows_emitted += bundle.num_rows
            for _, meta in bundle.blocks:
                state.stats.add_output(meta)
            self._emit(state, bundle)
        if state.rows_emitted >= op.limit:
            queue.clear()
            self._stop_upstream(state)
            self._finish(state)
        elif state.all_inputs_done():
            self._finish(state)

    def _truncate(self, bundle: RefBundle, rows: int) -> RefBundle:
        kept: list[tuple[Any, Any]] = []
        for ref, meta in bundle.blocks:
            if rows <= 0:
                break
            n = meta.num_rows or 0
            if n <= rows:
                kept.append((ref, meta))
                rows -= n
                continue
            block_ref, meta_ref = remote_fn(_slice_task, num_returns=2).remote(ref, 0, rows)
            kept.append((block_ref, ember.get(meta_ref)))
            rows = 0
        return RefBundle(kept, bundle.seq)

    def _stop_upstream(self, state: _OpState) -> None:
        """The limit is reached: upstream operators feeding only it can stop now."""
        for parent_op in state.op.inputs:
            parent = next(s for s in self._states if s.op is parent_op)
            if len(parent.consumers) != 1 or parent.finished:
                continue
            for ref in list(parent.running):
                self._by_ref.pop(ref, None)
                if parent.pool is None:
                    try:
                        ember.cancel(ref)
                    except Exception:  # noqa: BLE001 - already finished
                        pass
            parent.running.clear()
            parent.completed.clear()
            for queue in parent.inqueues:
                queue.clear()
            parent.inputs_done = [True] * len(parent.inputs_done)
            self._stop_upstream(parent)
            self._finish(parent)

    def _step_union(self, state: _OpState) -> None:
        state.stats.started()
        for idx, queue in enumerate(state.inqueues):
            if self._preserve and not all(state.inputs_done[:idx]):
                break  # in order: input i only after every earlier input is exhausted
            while queue:
                bundle = queue.popleft()
                for _, meta in bundle.blocks:
                    state.stats.add_output(meta)
                self._emit(state, RefBundle(bundle.blocks, (idx,) + tuple(bundle.seq)))
        if state.all_inputs_done():
            self._finish(state)

    def _run_all_to_all(self, state: _OpState, op: AllToAllPhys) -> None:
        state.stats.started()
        inputs = [sorted(q, key=lambda b: b.seq) for q in state.inqueues]
        for q in state.inqueues:
            q.clear()
        ctx = ExchangeContext(self._ctx, state.stats, self._total_cpus, self._context_ref)
        outputs = op.bulk_fn(inputs, ctx)
        del inputs
        for bundle in outputs:
            for _, meta in bundle.blocks:
                state.stats.add_output(meta)
            self._emit(state, bundle)
        self._finish(state)

    # -- launching -------------------------------------------------------------------------
    @staticmethod
    def _rows(item: Any, min_rows: int) -> int:
        if isinstance(item, RefBundle):
            return item.num_rows
        rows = getattr(getattr(item, "metadata", None), "num_rows", None)
        return min_rows if rows is None else int(rows)  # unknown: a task of its own

    def _ready_inputs(self, state: _OpState) -> int:
        op = state.op
        assert isinstance(op, MapPhys)
        queue = state.inqueues[0]
        if not queue:
            return 0
        min_rows = op.min_rows_per_bundle
        if min_rows is None:
            return len(queue)
        rows = sum(self._rows(b, min_rows) for b in queue)
        full = rows // min_rows
        if state.inputs_done[0] and rows % min_rows:
            full += 1
        return min(len(queue), full)

    def _take_inputs(self, state: _OpState) -> list[Any]:
        """One task's inputs: items grouped until they hold ``min_rows_per_bundle`` rows."""
        op = state.op
        assert isinstance(op, MapPhys)
        queue = state.inqueues[0]
        min_rows = op.min_rows_per_bundle
        if min_rows is None:
            return [queue.popleft()]
        taken, rows = [], 0
        while queue and rows < min_rows:
            item = queue.popleft()
            taken.append(item)
            rows += self._rows(item, min_rows)
        return taken

    def _views(self) -> list[OpView]:
        views = []
        for state in self._states:
            op = state.op
            if not isinstance(op, MapPhys) or state.finished:
                views.append(OpView(op.name))
                continue
            pool = state.pool
            if pool is not None:
                max_running = None
            else:
                max_running = op.compute.size if op.compute.size else None  # type: ignore[union-attr]
            est = state.avg_output
            if not est and state.inqueues[0] and not isinstance(state.inqueues[0][0], RefBundle):
                est = float(getattr(state.inqueues[0][0].metadata, "size_bytes", 0) or 0)
            views.append(OpView(
                name=op.name, ready_inputs=self._ready_inputs(state), running=len(state.running),
                max_running=max_running, cpus_per_task=op.num_cpus, gpus_per_task=op.num_gpus,
                uses_actors=pool is not None,
                free_actor_slots=pool.free_slots() if pool is not None else 0,
                is_source=op.is_read or not state.counted_inputs[0],
                est_output_bytes=est))
        return views

    def _launch(self) -> None:
        # Pools whose actors are all busy grow first, while CPUs are free.
        cpus_used, gpus_used = self._resources_used()
        actor_cpus = sum(s.pool.cpus_held for s in self._states if s.pool is not None)
        task_cpus_needed = max((s.op.num_cpus for s in self._states
                                if s.pool is None and isinstance(s.op, MapPhys)
                                and not s.finished), default=0.0)
        for state in self._states:
            pool = state.pool
            if pool is not None and not state.finished and \
                    pool.wants_more(self._ready_inputs(state)) and \
                    pool_may_grow(total_cpus=self._total_cpus, cpus_used=cpus_used,
                                  actor_cpus=actor_cpus, new_actor_cpus=pool.num_cpus,
                                  task_cpus_needed=task_cpus_needed) and \
                    pool.num_gpus <= self._total_gpus - gpus_used + 1e-9:
                pool.add_actor()
                for ref, _ in pool.pending_ready.items():
                    self._pending_ready[ref] = state
                cpus_used += pool.num_cpus
                actor_cpus += pool.num_cpus
                gpus_used += pool.num_gpus
        while True:
            with self._cond:
                if self._stop:
                    return
                consumer_has_output = bool(self._output)
            cpus_used, gpus_used = self._resources_used()
            budget = Budget(cpus_free=self._total_cpus - cpus_used,
                            gpus_free=self._total_gpus - gpus_used,
                            memory_limit=self._memory_limit, memory_used=self._memory_used(),
                            consumer_has_output=consumer_has_output,
                            reserved=self._reserved())
            choice = select_next(self._views(), budget)
            if choice is None:
                return
            self._dispatch(self._states[choice])

    def _reserved(self) -> float:
        """Memory idle downstream operators need for one task (input + output)."""
        reserved = 0.0
        for state in self._states:
            op = state.op
            if isinstance(op, MapPhys) and not op.is_read and state.counted_inputs[0] and \
                    not state.finished and not state.running:
                reserved += state.avg_input + (state.avg_output or state.avg_input)
        return reserved

    def _dispatch(self, state: _OpState) -> None:
        op = state.op
        assert isinstance(op, MapPhys)
        state.stats.started()
        items = self._take_inputs(state)
        args: list[Any] = []
        input_bytes = 0.0
        for item in items:
            if isinstance(item, RefBundle):
                args.extend(item.refs)
                if state.counted_inputs[0]:
                    input_bytes += _stored(item)
            else:
                args.append(item)
        seq = state.next_task_idx
        state.next_task_idx += 1
        state.dispatched += 1
        state.avg_input += (input_bytes - state.avg_input) / state.dispatched
        est = state.avg_output or input_bytes
        if state.pool is not None:
            gen, actor_idx = state.pool.submit(seq, args)
            cpus = gpus = 0.0
        else:
            options: dict[str, Any] = {k: v for k, v in op.remote_args.items() if v is not None}
            options["num_returns"] = "streaming"
            options.setdefault("num_cpus", op.num_cpus)
            if self._ctx.scheduling_strategy not in (None, "DEFAULT"):
                options.setdefault("scheduling_strategy", self._ctx.scheduling_strategy)
            fn = remote_fn(transforms.stream_map_task, **options)
            gen = fn.remote(self._transformer_refs[id(state)], self._context_ref, seq, *args)
            actor_idx, cpus, gpus = None, op.num_cpus, op.num_gpus
        running = _Running(gen, items, input_bytes, est, actor_idx, seq, cpus, gpus)
        # Where the output sits in the dataset's order (all-to-all operators and
        # materialize() sort by it, so results do not depend on which task finished first).
        running.order = min(self._item_order.get(id(i), getattr(i, "seq", (seq,))) for i in items)
        state.running[gen] = running
        self._by_ref[gen] = state

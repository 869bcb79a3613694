"""The streaming executor on a real 2-CPU cluster: actor pools beside reads, memory
budget and backpressure, early stop, stats and progress bars."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import ember
import ember.data as ed
from ember.data.datasource import Datasink

MiB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


def wait_for_cpus(n=2.0, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ember.available_resources().get("CPU", 0) >= n:
            return True
        time.sleep(0.05)
    return False


class Stamp:
    """Actor UDF: records when and where each batch was processed."""

    def __init__(self):
        self.pid = os.getpid()

    def __call__(self, batch):
        # Longer than a read (0.1 s): one actor cannot keep up, so both get blocks.
        time.sleep(0.15)
        n = len(batch["id"])
        return {"id": batch["id"], "read_at": batch["read_at"],
                "mapped_at": np.full(n, time.time()), "pid": np.full(n, self.pid)}


def stamp_read(batch):
    # Reading lasts ~3 s in all: longer than the actors take to start, even on a busy
    # machine, so "the actors ran while reads went on" is not a race.
    time.sleep(0.1)
    return {"id": batch["id"], "read_at": np.full(len(batch["id"]), time.time())}


@pytest.mark.timeout(60)
def test_actor_pool_and_reader_progress_together_on_two_cpus():
    """Two 1-CPU actors would take both CPUs and starve the read: the executor gives
    them less so the read keeps running, and both make progress at the same time."""
    assert ember.cluster_resources()["CPU"] == 2
    ds = (ed.range(600, override_num_blocks=30)
          .map_batches(stamp_read, batch_size=None)          # fused into the read
          .map_batches(Stamp, concurrency=2, batch_size=None, num_cpus=1))
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(600))
    read_times = [r["read_at"] for r in rows]
    map_times = [r["mapped_at"] for r in rows]
    # The actors processed blocks while later blocks were still being read.
    assert min(map_times) < max(read_times)
    assert len({r["pid"] for r in rows}) == 2
    assert wait_for_cpus()      # the pool's actors are gone once the dataset is done


class SlowAdd:
    """Actor UDF slow enough that the pool is busy (and wants to grow) between reads."""

    def __call__(self, batch):
        time.sleep(0.2)
        return {"data": batch["data"] + 1}


def run_with_deadline(fn, seconds):
    """Run fn in a thread; fail (naming the stall) instead of hanging the suite."""
    result, error = [], []
    thread = threading.Thread(target=lambda: _capture(fn, result, error), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"dataset made no progress for {seconds}s (deadlock)"
    if error:
        raise error[0]
    return result[0]


def _capture(fn, result, error):
    try:
        result.append(fn())
    except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
        error.append(e)


@pytest.mark.timeout(90)
def test_growing_pool_leaves_a_cpu_for_the_reads_still_to_come(ctx):
    """A (1, 2) pool of 1-CPU actors on 2 CPUs, with the memory budget holding reads
    back while the actor works: a second actor would take the last CPU and the next
    read could never run (the pool then waits forever for input). It must not grow
    while reads remain."""
    assert wait_for_cpus()
    # Room for ~6 of the 64 KiB blocks: fast reads fill it and stop (over budget) while
    # inputs queue for the busy actor, which is when the pool wants to grow.
    ctx.execution_options.resource_limits.object_store_memory = 6 * 64 * 1024
    ds = (ed.range_tensor(2048, shape=(64,), override_num_blocks=16)   # 64 KiB per block
          .map_batches(SlowAdd, concurrency=(1, 2), batch_size=None, num_cpus=1))
    rows = run_with_deadline(ds.take_all, 45)
    assert sorted(int(r["data"][0]) for r in rows) == list(range(1, 2049))
    assert wait_for_cpus()


class SumSink(Datasink):
    """Adds up every value it is given (so the test can check all data went through)."""

    def write(self, blocks, ctx):
        total = 0
        for block in blocks:
            values = block.column("data").combine_chunks()
            total += int(values.storage.flatten().to_numpy().sum())
        return total

    def on_write_complete(self, write_results):
        self.total = sum(write_results)


def shm_bytes():
    """Bytes of the shared-memory files (by inode: a file being sealed has two names)."""
    sizes = {}
    for entry in os.scandir("/dev/shm"):
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        sizes[st.st_ino] = st.st_blocks * 512
    return sum(sizes.values())


@pytest.mark.timeout(90)
def test_streams_five_times_the_budget_with_peak_store_use_under_it(ctx):
    budget = 16 * MiB
    ctx.execution_options.resource_limits.object_store_memory = budget
    rows, width = 10_240, 1024                       # 80 MiB of int64 tensors: 5x the budget
    base = shm_bytes()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], shm_bytes() - base)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    sink = SumSink()
    try:
        ds = (ed.range_tensor(rows, shape=(width,), override_num_blocks=40)
              # Other resources than the read: a separate operator, so blocks queue
              # between the two and the budget has something to hold back.
              .map_batches(lambda b: {"data": b["data"] * 2}, batch_size=256, num_cpus=0.5))
        ds.write_datasink(sink)
    finally:
        stop.set()
        sampler.join()
    assert sink.total == 2 * width * rows * (rows - 1) // 2
    data_bytes = rows * width * 8
    assert data_bytes >= 5 * budget
    assert 0 < peak[0] <= budget, f"peak store use {peak[0] / MiB:.1f} MiB"


@pytest.mark.timeout(60)
def test_slow_consumer_holds_the_reads_back(ctx):
    ctx.execution_options.resource_limits.object_store_memory = 4 * MiB
    ds = ed.range_tensor(4096, shape=(512,), override_num_blocks=64)   # 64 blocks of 256 KiB
    it = ds.iter_batches(batch_size=64, prefetch_batches=0)
    next(it)
    time.sleep(0.5)
    read_tasks = ds._last_stats.ops[0].num_tasks
    it.close()
    # 4 MiB of budget holds ~16 of the 256 KiB blocks: the rest wait for the consumer.
    assert read_tasks <= 24, read_tasks
    assert ds.count() == 4096


def test_stats_report_each_operator():
    ds = ed.range(1000, override_num_blocks=5).map_batches(lambda b: b, batch_size=None) \
        .repartition(2).filter(lambda r: r["id"] % 2 == 0)
    assert ds.stats().startswith("Dataset has not been executed")
    assert ds.count() == 500
    text = ds.stats()
    assert "ReadRange->MapBatches(<lambda>): 5 tasks executed" in text
    assert "Repartition" in text and "Filter(<lambda>)" in text
    assert "Output rows: 1000 total" in text and "Output rows: 500 total" in text
    assert "Task CPU time" in text and "peak object store use" in text
    op = ds._last_stats.ops[0]
    assert op.wall_s > 0 and op.bytes_out == 8000 and op.task_wall_s > 0


def test_progress_bars(ctx, capfd):
    ctx.progress_bars_force_tty = True
    ed.range(100, override_num_blocks=2).map(lambda r: r).materialize()
    err = capfd.readouterr().err
    assert "ReadRange->Map(<lambda>)" in err
    ctx.enable_progress_bars = False
    ed.range(100, override_num_blocks=2).map(lambda r: r).materialize()
    assert "ReadRange" not in capfd.readouterr().err


def test_impossible_resource_request_is_an_error():
    with pytest.raises(ValueError, match="could never run"):
        ed.range(3).map(lambda r: r, num_cpus=64).take_all()


def test_early_stop_frees_the_cluster():
    class Slow:
        def __call__(self, batch):
            time.sleep(0.05)
            return batch

    ds = ed.range(2000, override_num_blocks=40).map_batches(Slow, concurrency=2,
                                                            batch_size=None)
    assert len(ds.take(10)) == 10
    assert wait_for_cpus()


def test_autoscaling_pool_grows_while_inputs_wait():
    class Pid:
        def __call__(self, batch):
            time.sleep(0.1)
            return {"pid": np.full(len(batch["id"]), os.getpid())}

    ds = ed.range(40, override_num_blocks=20).materialize().map_batches(
        Pid, concurrency=(1, 2), batch_size=None, num_cpus=1)
    pids = {r["pid"] for r in ds.take_all()}
    assert len(pids) == 2          # started with one actor, added a second
    single = ed.range(40, override_num_blocks=20).materialize().map_batches(
        Pid, concurrency=1, batch_size=None)
    assert len({r["pid"] for r in single.take_all()}) == 1


# -- DataContext on workers, block splitting -----------------------------------------------
class _ReadsContext:
    def __call__(self, batch):
        seen = ed.DataContext.get_current().target_min_block_size
        return {"id": batch["id"], "seen": np.full(len(batch["id"]), seen)}


def test_driver_data_context_is_applied_inside_tasks_and_actors(ctx):
    def reads_context(batch):
        seen = ed.DataContext.get_current().target_min_block_size
        return {"id": batch["id"], "seen": np.full(len(batch["id"]), seen)}

    ds = ed.range(40, override_num_blocks=4)
    for value in (12345, 54321):   # a second value: workers are reused, not left stale
        ctx.target_min_block_size = value
        for out in (ds.map_batches(reads_context),
                    ds.map_batches(_ReadsContext, concurrency=1),
                    ds.map(lambda r: {"seen": ed.DataContext.get_current()
                                      .target_min_block_size})):
            rows = out.take_all()
            assert len(rows) == 40
            assert {r["seen"] for r in rows} == {value}


def test_driver_data_context_is_applied_inside_aggregations(ctx):
    from ember.data.aggregate import AggregateFn

    seen_min = AggregateFn(
        init=lambda k: 0,
        accumulate_row=lambda acc, row: ed.DataContext.get_current().target_min_block_size,
        merge=max, name="seen")
    ds = ed.range(40, override_num_blocks=4).add_column("k", lambda b: b["id"] % 2)
    for value in (2222, 3333):
        ctx.target_min_block_size = value
        assert ds.aggregate(seen_min) == {"seen": value}
        grouped = ds.groupby("k").aggregate(seen_min).take_all()
        assert sorted((r["k"], r["seen"]) for r in grouped) == [(0, value), (1, value)]


def _block_sizes(ds):
    tables = [ember.get(ref) for ref in ds.to_arrow_refs()]
    return [t.num_rows for t in tables], [t.nbytes for t in tables]


@pytest.mark.parametrize("preserve_order", [False, True])
def test_map_outputs_are_split_at_target_max_block_size(ctx, preserve_order):
    ctx.execution_options.preserve_order = preserve_order
    ctx.target_max_block_size = 800          # 100 rows of one int64 column
    ds = ed.range(1000, override_num_blocks=2).map_batches(lambda b: {"id": b["id"] * 2})
    mat = ds.materialize()
    rows, sizes = _block_sizes(mat)
    assert sum(rows) == 1000
    assert len(rows) >= 10, rows             # 2 tasks, each cut into several blocks
    assert max(sizes) <= 800, sizes
    ids = [r["id"] for r in ds.take_all()]
    if preserve_order:
        assert ids == list(range(0, 2000, 2))
    else:
        assert sorted(ids) == list(range(0, 2000, 2))
    assert ds.count() == 1000
    # Actor pools split too; stats count every block of a task, and tasks once.
    pooled = ed.range(600, override_num_blocks=1).map_batches(_ReadsContext, concurrency=1)
    rows, sizes = _block_sizes(pooled.materialize())
    assert sum(rows) == 600 and len(rows) >= 6 and max(sizes) <= 800
    ctx.target_max_block_size = 128 * MiB
    assert len(_block_sizes(ds.materialize())[0]) <= 2   # the default: no split

"""Optimizer rules and the planner (pure: no cluster is started here)."""
from __future__ import annotations

import pyarrow as pa

from ember.data.context import DataContext
from ember.data.datasource import BlockMetadata, Datasource, ReadTask
from ember.data._internal.logical import (ActorPool, InputData, Limit, MapOp, Read, TaskPool,
                                          Union, Write)
from ember.data._internal.optimizer import optimize
from ember.data._internal.physical import InputBuffer, LimitPhys, MapPhys, topo_order
from ember.data._internal.planner import WRITE_READ_BLOCK_BYTES, autodetect_parallelism, plan
from ember.data._internal.transforms import (LimitStage, MapTransformer, ProjectStage,
                                             ReadStage, RowStage, WriteStage)


class Source(Datasource):
    """A datasource that records the pushdowns it was given."""

    def __init__(self, columns=None, limit=None, projection=True, limit_ok=True, rows=100):
        self.columns = columns
        self.limit = limit
        self.projection = projection
        self.limit_ok = limit_ok
        self.rows = rows
        self.asked_parallelism = None

    def supports_projection_pushdown(self):
        return self.projection

    def apply_projection(self, columns):
        return Source(columns, self.limit, self.projection, self.limit_ok, self.rows)

    def supports_limit_pushdown(self):
        return self.limit_ok

    def apply_limit(self, limit):
        return Source(self.columns, limit, self.projection, self.limit_ok, self.rows)

    def estimate_inmemory_data_size(self):
        return 8 * self.rows

    def get_read_tasks(self, parallelism):
        self.asked_parallelism = parallelism
        return [ReadTask(lambda: [pa.table({"a": [1]})],
                         BlockMetadata(num_rows=1, size_bytes=8, input_files=[], schema=None))
                for _ in range(parallelism)]


def select(cols, below):
    return MapOp(transformer=MapTransformer([ProjectStage(select=list(cols))]),
                 row_preserving=True, projection=tuple(cols), label="SelectColumns",
                 inputs=(below,))


def row_map(below, preserving=True, label="Map", **kw):
    stage = RowStage(lambda r: r, "map" if preserving else "flat_map")
    return MapOp(transformer=MapTransformer([stage]), row_preserving=preserving, label=label,
                 inputs=(below,), **kw)


def chain(op):
    out = []
    while True:
        out.append(op)
        if not op.inputs:
            return out[::-1]
        op = op.inputs[0]


# -- projection pushdown -------------------------------------------------------------------
def test_select_is_pushed_into_a_read_that_supports_it():
    out = optimize(select(["b", "a"], Read(datasource=Source())))
    assert isinstance(out, Read)
    assert out.datasource.columns == ["b", "a"]


def test_select_stays_when_the_datasource_cannot_project():
    plan_ = select(["a"], Read(datasource=Source(projection=False)))
    out = optimize(plan_)
    assert isinstance(out, MapOp) and out.projection == ("a",)
    assert out.inputs[0].datasource.columns is None


def test_select_is_pushed_through_a_limit():
    out = optimize(select(["a"], Limit(limit=5, inputs=(Read(datasource=Source()),))))
    assert isinstance(out, Limit) and out.limit == 5
    read = out.inputs[0]
    assert isinstance(read, Read) and read.datasource.columns == ["a"] and read.limit == 5


def test_consecutive_selects_collapse():
    out = optimize(select(["a"], select(["a", "b"], InputData())))
    assert isinstance(out, MapOp) and out.projection == ("a",)
    assert isinstance(out.inputs[0], InputData)


def test_wider_select_above_narrower_does_not_collapse():
    out = optimize(select(["a", "b"], select(["a"], InputData())))
    assert [type(o).__name__ for o in chain(out)] == ["InputData", "MapOp", "MapOp"]


# -- limit pushdown --------------------------------------------------------------------------
def test_limit_moves_below_row_preserving_maps_into_the_read():
    out = optimize(Limit(limit=7, inputs=(row_map(row_map(Read(datasource=Source()))),)))
    kinds = [type(o).__name__ for o in chain(out)]
    assert kinds == ["Read", "Limit", "MapOp", "MapOp"]
    assert chain(out)[0].limit == 7


def test_limit_does_not_move_below_a_row_changing_map():
    out = optimize(Limit(limit=7, inputs=(row_map(Read(datasource=Source()),
                                                  preserving=False),)))
    kinds = [type(o).__name__ for o in chain(out)]
    assert kinds == ["Read", "MapOp", "Limit"]
    assert chain(out)[0].limit is None


def test_consecutive_limits_merge_to_the_smallest():
    out = optimize(Limit(limit=10, inputs=(Limit(limit=3, inputs=(InputData(),)),)))
    assert isinstance(out, Limit) and out.limit == 3 and isinstance(out.inputs[0], InputData)
    out = optimize(Limit(limit=2, inputs=(Limit(limit=30, inputs=(InputData(),)),)))
    assert out.limit == 2


def test_shared_nodes_stay_shared():
    read = Read(datasource=Source())
    mapped = row_map(read, preserving=False)
    out = optimize(Union(inputs=(mapped, mapped)))
    assert out.inputs[0] is out.inputs[1]


# -- planning and fusion -------------------------------------------------------------------
def physical(logical, cpus=2):
    return plan(logical, cpus=cpus, ctx=DataContext())


def test_read_and_task_maps_fuse_into_one_operator():
    sink = physical(row_map(row_map(Read(datasource=Source()), label="A"), label="B"))
    ops = topo_order(sink)
    assert [type(o) for o in ops] == [InputBuffer, MapPhys]
    assert sink.name == "ReadSource->A->B"
    assert [type(s) for s in sink.transformer.stages] == [ReadStage, RowStage, RowStage]
    assert sink.is_read


class Sink:
    def get_name(self):
        return "Sink"


def test_a_read_fused_with_a_write_reads_bounded_blocks():
    # Its blocks never leave the task: only the write's memory depends on their size.
    sink = physical(Write(datasink=Sink(), inputs=(row_map(Read(datasource=Source())),)))
    assert sink.name == "ReadSource->Map->Sink"
    stages = sink.transformer.stages
    assert [type(s) for s in stages] == [ReadStage, RowStage, WriteStage]
    assert stages[0].block_bytes == WRITE_READ_BLOCK_BYTES
    # Without a write the read's blocks are the dataset's: the target block size.
    alone = physical(row_map(Read(datasource=Source())))
    assert alone.transformer.stages[0].block_bytes is None
    # A write that does not fuse with its read leaves the read alone.
    split = physical(Write(datasink=Sink(), inputs=(row_map(
        Read(datasource=Source()), compute=ActorPool(1, 1)),)))
    reads = [o for o in topo_order(split) if isinstance(o, MapPhys) and o.is_read]
    assert [o.transformer.stages[0].block_bytes for o in reads] == [None]


def test_limit_pushed_into_read_tasks_and_kept_globally():
    source = Source()
    sink = physical(Limit(limit=3, inputs=(row_map(Read(datasource=source)),)))
    assert isinstance(sink, MapPhys)   # the map moved above the limit
    limit = sink.inputs[0]
    assert isinstance(limit, LimitPhys) and limit.limit == 3
    read = limit.inputs[0]
    assert any(isinstance(s, LimitStage) and s.limit == 3 for s in read.transformer.stages)


def test_different_resources_do_not_fuse():
    sink = physical(row_map(Read(datasource=Source()), ray_remote_args={"num_cpus": 0.5}))
    assert [type(o) for o in topo_order(sink)] == [InputBuffer, MapPhys, MapPhys]


def test_reads_never_fuse_into_actor_pools_but_task_maps_do():
    actor_map = row_map(row_map(Read(datasource=Source()), label="T"), label="Actors",
                        compute=ActorPool(2, 2))
    sink = physical(actor_map)
    # T joins the read (task -> task); the read then stays out of the pool.
    assert [o.name for o in topo_order(sink)] == ["Input", "ReadSource->T", "Actors"]
    assert isinstance(sink.compute, ActorPool)
    fused = physical(row_map(row_map(InputData(), label="T"), label="Actors",
                             compute=ActorPool(2, 2)))
    assert [o.name for o in topo_order(fused)] == ["InputData", "T->Actors"]
    assert isinstance(fused.compute, ActorPool)
    direct = physical(row_map(Read(datasource=Source()), label="Actors", compute=ActorPool(1, 1)))
    assert [o.name for o in topo_order(direct)] == ["Input", "ReadSource", "Actors"]


def test_operator_with_two_consumers_is_not_fused():
    mapped = row_map(Read(datasource=Source()), label="Shared")
    sink = physical(Union(inputs=(row_map(mapped, label="L"), row_map(mapped, label="R"))))
    names = [o.name for o in topo_order(sink)]
    assert "ReadSource->Shared" in names and "L" in names and "R" in names


def test_task_pool_sizes_combine_to_the_smallest():
    read = Read(datasource=Source(), concurrency=4)
    sink = physical(row_map(read, compute=TaskPool(2)))
    assert sink.compute == TaskPool(2)


def test_read_asks_the_datasource_for_the_planned_parallelism():
    source = Source(rows=10)
    physical(Read(datasource=source, parallelism=-1), cpus=3)
    assert source.asked_parallelism == 6           # 2 x CPUs for small data
    source = Source(rows=10)
    physical(Read(datasource=source, parallelism=5))
    assert source.asked_parallelism == 5


def test_autodetect_parallelism():
    ctx = DataContext()
    mib = 1024 * 1024
    assert autodetect_parallelism(7, None, cpus=2, ctx=ctx) == 7
    assert autodetect_parallelism(-1, 1000, cpus=2, ctx=ctx) == 4
    assert autodetect_parallelism(-1, 50 * mib, cpus=2, ctx=ctx) == 50        # 1 MiB blocks
    assert autodetect_parallelism(-1, 10_000 * mib, cpus=2, ctx=ctx) == 200   # min_num_blocks
    huge = 1000 * ctx.target_max_block_size
    assert autodetect_parallelism(-1, huge, cpus=2, ctx=ctx) == 1000          # max block size

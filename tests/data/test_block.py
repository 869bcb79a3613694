"""Blocks, batch formats and the stages map tasks run (pure: no cluster)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ember.data._internal import block as B
from ember.data._internal.batch import batch_to_block, block_to_batch, check_batch_format
from ember.data._internal.transforms import (BatchStage, LimitStage, MapTransformer,
                                             ProjectStage, RowStage, SampleStage, map_task,
                                             rebatch)
from ember.data.datasource import BlockMetadata, ReadTask, TaskContext


def test_to_block_accepts_arrow_pandas_and_dicts():
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert B.to_block(df).to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert B.to_block({"a": np.arange(3)}).num_rows == 3
    table = pa.table({"a": [1]})
    assert B.to_block(table) is table
    with pytest.raises(TypeError, match="expected a pyarrow.Table"):
        B.to_block([1, 2])


def test_tensor_columns_round_trip():
    data = np.arange(24).reshape(3, 2, 4)
    block = B.block_from_columns({"t": data, "i": [0, 1, 2]})
    assert isinstance(block.schema.field("t").type, pa.FixedShapeTensorType)
    np.testing.assert_array_equal(block_to_batch(block, "numpy")["t"], data)
    rows = list(B.rows_of(block))
    np.testing.assert_array_equal(rows[2]["t"], data[2])
    df = block_to_batch(block, "pandas")
    np.testing.assert_array_equal(df["t"].iloc[1], data[1])
    back = B.to_block(df)
    np.testing.assert_array_equal(block_to_batch(back, "numpy")["t"], data)


def test_rows_to_block_unions_keys():
    block = B.block_from_rows([{"a": 1}, {"a": 2, "b": "z"}])
    assert block.to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": "z"}]


def test_columns_of_different_length_are_an_error():
    with pytest.raises(ValueError, match="different lengths"):
        B.block_from_columns({"a": [1, 2], "b": [1]})


def test_slice_concat_and_sizes():
    block = pa.table({"a": np.arange(100, dtype=np.int64)})
    part = B.slice_block(block, 10, 30)
    assert part.column("a").to_pylist() == list(range(10, 30))
    assert B.size_bytes(part) == 20 * 8
    joined = B.concat([pa.table({"a": [1]}), pa.table({"a": [None]}), pa.table({})])
    assert joined.column("a").to_pylist() == [1, None]
    assert B.concat([]).num_rows == 0


def test_metadata_for():
    block = pa.table({"a": [1, 2, 3]})
    meta = B.metadata_for(block, ["f.csv"])
    assert (meta.num_rows, meta.size_bytes, meta.input_files) == (3, 24, ["f.csv"])
    assert meta.schema == block.schema


@pytest.mark.parametrize("fmt", ["default", "numpy", "pandas", "pyarrow"])
def test_batch_formats_round_trip(fmt):
    block = pa.table({"a": [1, 2, 3], "s": ["x", "y", "z"]})
    batch = block_to_batch(block, fmt)
    kind = {"default": dict, "numpy": dict, "pandas": pd.DataFrame, "pyarrow": pa.Table}[fmt]
    assert isinstance(batch, kind)
    assert batch_to_block(batch).to_pylist() == block.to_pylist()


def test_bad_batch_format_and_return_types():
    with pytest.raises(ValueError, match="batch_format must be one of"):
        check_batch_format("arrow")
    with pytest.raises(ValueError, match="must return a pyarrow.Table, a pandas.DataFrame"):
        batch_to_block([1, 2, 3])
    with pytest.raises(ValueError, match="column 'a' is a int"):
        batch_to_block({"a": 5})


def test_rebatch_cuts_exact_sizes_across_blocks():
    blocks = [pa.table({"a": list(range(i * 5, i * 5 + 5))}) for i in range(3)]
    sizes = [b.num_rows for b in rebatch(iter(blocks), 4)]
    assert sizes == [4, 4, 4, 3]
    assert [b.num_rows for b in rebatch(iter(blocks), None)] == [5, 5, 5]
    flat = [x for b in rebatch(iter(blocks), 4) for x in b.column("a").to_pylist()]
    assert flat == list(range(15))


def run(stages, blocks):
    return list(MapTransformer(stages).apply(iter(blocks), TaskContext(0)))


def test_batch_stage_calls_udf_per_batch_and_copies_read_only_arrays():
    seen = []

    def udf(batch, k):
        seen.append(len(batch["a"]))
        batch["a"] += k            # must be writable even if the input is read-only
        return batch

    data = np.arange(10)
    data.flags.writeable = False
    out = run([BatchStage(udf, batch_size=4, batch_format="numpy", fn_args=(100,))],
              [pa.table({"a": data})])
    assert seen == [4, 4, 2]
    assert [x for b in out for x in b.column("a").to_pylist()] == list(range(100, 110))


def test_whole_block_batches_are_handed_over_without_a_copy():
    # As Ray 2.60: only batches cut to batch_size are copied to be writable.
    table = pa.table({"a": np.arange(10.0)})
    seen = []

    def udf(batch):
        seen.append(batch["a"])
        return batch

    run([BatchStage(udf, batch_size=None, batch_format="numpy")], [table])
    arrow_data = table.column("a").chunk(0).buffers()[1]
    assert np.shares_memory(seen[0], np.frombuffer(arrow_data, dtype=np.float64))
    assert not seen[0].flags.writeable
    run([BatchStage(udf, batch_size=5, batch_format="numpy")], [table])
    assert seen[1].flags.writeable and not np.shares_memory(
        seen[1], np.frombuffer(arrow_data, dtype=np.float64))


@pytest.mark.parametrize("arrow_type", [pa.int8(), pa.int16(), pa.int32(), pa.int64(),
                                        pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
                                        pa.float16(), pa.float32(), pa.float64()])
def test_numeric_columns_convert_both_ways_like_pyarrow(arrow_type):
    values = np.arange(40).astype(arrow_type.to_pandas_dtype())
    column = pa.chunked_array([pa.array(values[:25], type=arrow_type),
                               pa.array(values[25:], type=arrow_type)])
    for part in (column, column.slice(7, 20), column.chunk(1).slice(3, 9),
                 column.slice(0, 0)):
        got = B.column_to_numpy(part)
        want = part.to_numpy() if isinstance(part, pa.ChunkedArray) else \
            part.to_numpy(zero_copy_only=False)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    back = B.to_arrow_column(values[::3])           # strided: copied, then wrapped
    assert back.type == arrow_type and back.to_pylist() == values[::3].tolist()
    with_nulls = pa.array([1, None, 3], type=arrow_type)
    assert B.column_to_numpy(with_nulls).tolist()[::2] == [1, 3]   # pyarrow's own path


def test_numeric_blocks_never_import_pandas():
    # pyarrow's to_numpy, pa.array and pa.table import pandas (~0.25 s in each worker
    # and in the driver) through their pandas shim; the numeric paths stay clear of it.
    import subprocess
    import sys
    code = (
        "import sys, numpy as np, pyarrow as pa\n"
        "from ember.data._internal import block as B\n"
        "from ember.data._internal.batch import block_to_batch, batch_to_block\n"
        "t = B.block_from_columns({'a': np.arange(100), 'b': np.ones(100, np.float32)})\n"
        "batch = block_to_batch(B.concat([t, t]).slice(50, 100), 'numpy')\n"
        "out = batch_to_block({'x': batch['a'] * 2.0, 'b': batch['b']}, what='test')\n"
        "assert out.num_rows == 100 and out.column('x')[0].as_py() == 100.0\n"
        "print('pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_batch_stage_with_callable_class_and_generator():
    class Repeat:
        def __init__(self, times):
            self.times = times

        def __call__(self, batch):
            for _ in range(self.times):
                yield batch

    stage = BatchStage(Repeat, batch_size=None, batch_format="pandas",
                       fn_constructor_args=(3,))
    out = run([stage], [pa.table({"a": [1, 2]})])
    assert len(out) == 3 and all(b.column("a").to_pylist() == [1, 2] for b in out)


def test_batch_stage_rejects_none():
    with pytest.raises(ValueError, match="returned None"):
        run([BatchStage(lambda b: None, batch_size=None, batch_format="numpy")],
            [pa.table({"a": [1]})])


def test_row_stages():
    block = pa.table({"a": [1, 2, 3]})
    doubled = run([RowStage(lambda r: {"a": r["a"] * 2}, "map")], [block])
    assert doubled[0].column("a").to_pylist() == [2, 4, 6]
    kept = run([RowStage(lambda r: r["a"] != 2, "filter")], [block])
    assert kept[0].column("a").to_pylist() == [1, 3]
    flat = run([RowStage(lambda r: [r] * r["a"], "flat_map")], [block])
    assert flat[0].column("a").to_pylist() == [1, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="must return a dict"):
        run([RowStage(lambda r: 7, "map")], [block])
    with pytest.raises(ValueError, match="list .* of dicts"):
        run([RowStage(lambda r: {"a": 1}, "flat_map")], [block])


def test_project_limit_and_sample_stages():
    block = pa.table({"a": [1, 2, 3], "b": [4, 5, 6]})
    assert run([ProjectStage(select=["b"])], [block])[0].column_names == ["b"]
    assert run([ProjectStage(drop=["a"])], [block])[0].column_names == ["b"]
    assert run([ProjectStage(rename={"a": "x"})], [block])[0].column_names == ["x", "b"]
    with pytest.raises(KeyError, match="no column"):
        run([ProjectStage(select=["zzz"])], [block])
    limited = run([LimitStage(4)], [block, block])
    assert sum(b.num_rows for b in limited) == 4
    big = pa.table({"a": np.arange(10_000)})
    kept = run([SampleStage(0.25, seed=1)], [big])[0].num_rows
    assert 2000 < kept < 3000
    assert run([SampleStage(0.25, seed=1)], [big])[0].num_rows == kept   # seeded


def test_map_task_reads_and_reports_metadata():
    task = ReadTask(lambda: [pd.DataFrame({"a": [1, 2]}), pa.table({"a": [3]})],
                    BlockMetadata(num_rows=3, size_bytes=24, input_files=["x.csv"],
                                  schema=None))
    from ember.data._internal.transforms import ReadStage
    block, meta = map_task(MapTransformer([ReadStage()]), 0, task)
    assert block.column("a").to_pylist() == [1, 2, 3]
    assert meta.num_rows == 3 and meta.input_files == ["x.csv"]
    assert meta.exec_stats["wall_s"] >= 0


def test_map_task_keeps_schema_of_an_empty_filter_result():
    block, meta = map_task(MapTransformer([RowStage(lambda r: False, "filter")]), 0,
                           pa.table({"a": [1, 2]}))
    assert block.num_rows == 0 and block.column_names == ["a"]


def test_compact_copies_only_a_slices_rows():
    import pickle

    import numpy as np
    import pyarrow as pa

    from ember.data._internal import block as B

    table = pa.table({"a": np.arange(1_000_000), "s": [str(i) for i in range(1_000_000)]})
    part = table.slice(10, 1000)
    assert len(pickle.dumps(part, protocol=5)) > 5_000_000     # why compact exists
    small = B.compact(part)
    assert small.equals(part) and small.schema == part.schema
    assert len(pickle.dumps(small, protocol=5)) < 50_000
    assert B.compact(table) is table                           # not a slice: untouched
    chunked = pa.concat_tables([table.slice(0, 5), table.slice(100, 5)])
    assert B.compact(chunked).equals(chunked)
    assert B.compact(pa.table({})).num_columns == 0

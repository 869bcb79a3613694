"""ParquetDatasink / CSVDatasink / JSONDatasink, driven as the executor drives them
(on_write_start, write per task, on_write_complete), and write -> read round trips
checked against pyarrow/pandas reading the written files."""
from __future__ import annotations

import gzip
import os
import cloudpickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ember.data._internal.block import column_to_numpy, to_arrow_column
from ember.data._internal.datasource.csv_datasink import CSVDatasink
from ember.data._internal.datasource.csv_datasource import CSVDatasource
from ember.data._internal.datasource.json_datasink import JSONDatasink
from ember.data._internal.datasource.json_datasource import JSONDatasource
from ember.data._internal.datasource.parquet_datasink import ParquetDatasink
from ember.data._internal.datasource.parquet_datasource import ParquetDatasource
from ember.data.datasource import TaskContext


def table(n: int, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + n)
    return pa.table({"id": ids, "value": ids * 0.5,
                     "name": [f"n{i}" for i in ids], "group": [f"g{i % 3}" for i in ids]})


def run_write(sink, tasks: list[list[pa.Table]]):
    """What Dataset.write_datasink does: start, one write() per task (pickled, as it
    travels to a worker), complete."""
    sink.on_write_start()
    shipped = cloudpickle.loads(cloudpickle.dumps(sink))
    results = [shipped.write(iter(blocks), TaskContext(task_idx=i))
               for i, blocks in enumerate(tasks)]
    return sink.on_write_complete(results)


def read_back(src, parallelism: int = 4) -> pa.Table:
    return pa.concat_tables([t for task in src.get_read_tasks(parallelism) for t in task()])


# ---- Parquet -------------------------------------------------------------------------


def test_parquet_one_file_per_task_round_trip(tmp_path):
    out = tmp_path / "out" / "nested"  # created, parents too
    sink = ParquetDatasink(str(out))
    result = run_write(sink, [[table(10), table(5, 10)], [table(7, 15)], [table(3, 22)]])
    files = sorted(os.listdir(out))
    assert len(files) == 3  # one per write task, blocks of a task in one file
    prefixes = {f.rsplit("_", 2)[0] for f in files}
    assert len(prefixes) == 1 and len(prefixes.pop()) == 32  # the write's uuid
    assert [f.rsplit("_", 2)[1] for f in files] == ["000000", "000001", "000002"]
    assert all(f.endswith("_000000.parquet") for f in files)
    assert result["num_rows"] == 25 and len(result["paths"]) == 3
    assert sink.write_result == result
    expected = table(25)
    assert pq.read_table(out).sort_by("id").equals(expected)
    assert read_back(ParquetDatasource(str(out))).equals(expected)
    # A second write adds files with a new prefix (mode="append").
    run_write(ParquetDatasink(str(out)), [[table(1, 100)]])
    assert len(os.listdir(out)) == 4


def test_parquet_writer_options(tmp_path):
    sink = ParquetDatasink(str(tmp_path), compression="gzip", row_group_size=10,
                           arrow_parquet_args_fn=lambda: {"use_dictionary": False})
    (path,) = run_write(sink, [[table(35)]])["paths"]
    md = pq.read_metadata(path)
    assert md.num_row_groups == 4
    assert md.row_group(0).column(0).compression == "GZIP"
    assert "PLAIN_DICTIONARY" not in md.row_group(0).column(2).encodings
    assert "RLE_DICTIONARY" not in md.row_group(0).column(2).encodings
    with pytest.raises(TypeError, match="ParquetWriter"):
        ParquetDatasink(str(tmp_path), compresion="gzip")


def test_parquet_partition_cols_round_trip(tmp_path):
    sink = ParquetDatasink(str(tmp_path), partition_cols=["group"])
    result = run_write(sink, [[table(9)], [table(3, 9)]])
    assert sorted(os.listdir(tmp_path)) == ["group=g0", "group=g1", "group=g2"]
    assert len(result["paths"]) == 6  # 3 partitions x 2 tasks
    back = read_back(ParquetDatasource(str(tmp_path)))
    assert back.schema.names == ["id", "value", "name", "group"]
    assert back.sort_by("id").equals(table(12))
    with pytest.raises(ValueError, match=r"partition_cols \['nope'\]"):
        run_write(ParquetDatasink(str(tmp_path / "x"), partition_cols=["nope"]), [[table(2)]])


def test_parquet_partition_values_are_escaped_and_nulls(tmp_path):
    t = pa.table({"k": ["a/b", None, "c d"], "v": [1, 2, 3]})
    run_write(ParquetDatasink(str(tmp_path), partition_cols=["k"]), [[t]])
    assert sorted(os.listdir(tmp_path)) == ["k=__HIVE_DEFAULT_PARTITION__", "k=a%2Fb",
                                            "k=c%20d"]
    back = read_back(ParquetDatasource(str(tmp_path))).sort_by("v")
    assert back.to_pylist() == [{"v": 1, "k": "a/b"}, {"v": 2, "k": None},
                                {"v": 3, "k": "c d"}]


def test_blocks_with_null_and_typed_columns_share_a_file(tmp_path):
    a = pa.table({"x": [1, 2], "s": pa.array([None, None], pa.null())})
    b = pa.table({"x": [3], "s": ["z"]})
    (path,) = run_write(ParquetDatasink(str(tmp_path)), [[a, b]])["paths"]
    assert pq.read_table(path).to_pylist() == [{"x": 1, "s": None}, {"x": 2, "s": None},
                                               {"x": 3, "s": "z"}]


def test_parquet_blocks_stream_into_the_file_a_row_group_at_a_time(tmp_path):
    # Each row group is written as soon as it is complete: the file grows while the
    # task's later blocks have not been made yet.
    sink = ParquetDatasink(str(tmp_path), row_group_size=10)
    sizes = []

    def blocks():
        for i in range(5):
            yield table(7, 7 * i)
            sizes.append(sum(os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path)))

    (path,) = run_write(sink, [blocks()])["paths"]
    # held after each block: 7, 14 -> 4, 11 -> 1, 8, 15 -> 5 (then the last 5)
    assert sizes[0] == 0 < sizes[1] < sizes[2] == sizes[3] < sizes[4]
    md = pq.read_metadata(path)   # exactly row_group_size, as one table written at once
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [10, 10, 10, 5]
    assert pq.read_table(path).equals(table(35))


def test_parquet_default_row_groups_are_held_up_to_a_size(tmp_path, monkeypatch):
    from ember.data._internal.datasource import parquet_datasink as P

    monkeypatch.setattr(P, "DEFAULT_ROW_GROUP_BYTES", table(25).nbytes)
    (path,) = run_write(ParquetDatasink(str(tmp_path)),
                        [[table(10, 10 * i) for i in range(7)]])["paths"]
    md = pq.read_metadata(path)
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [30, 30, 10]
    assert pq.read_table(path).equals(table(70))
    monkeypatch.setattr(P, "DEFAULT_ROW_GROUP_ROWS", 16)   # the row limit comes first
    (path,) = run_write(ParquetDatasink(str(tmp_path / "rows")),
                        [[table(10, 10 * i) for i in range(4)]])["paths"]
    md = pq.read_metadata(path)
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [16, 16, 8]


def test_parquet_later_blocks_that_fit_the_file_are_cast_to_it(tmp_path):
    a = pa.table({"x": pa.array([1, 2], pa.int64()), "s": ["a", "b"]})
    b = pa.table({"x": pa.array([3], pa.int32()), "s": pa.array([None], pa.null())})
    (path,) = run_write(ParquetDatasink(str(tmp_path), row_group_size=2), [[a, b]])["paths"]
    back = pq.read_table(path)
    assert back.schema == a.schema and pq.read_metadata(path).num_row_groups == 2
    assert back.to_pylist() == [{"x": 1, "s": "a"}, {"x": 2, "s": "b"}, {"x": 3, "s": None}]


def test_parquet_a_type_change_after_the_first_row_group_rewrites_the_file(tmp_path):
    # The file's schema is set by its first row group; a later block that it cannot
    # hold makes the task write its rows again as one table, types promoted.
    a = pa.table({"x": [1, 2], "s": pa.array([None, None], pa.null())})
    b = pa.table({"x": [3], "s": ["z"]})
    c = pa.table({"x": [4], "s": ["w"]})
    result = run_write(ParquetDatasink(str(tmp_path), row_group_size=2), [[a, b, c]])
    (path,) = result["paths"]
    assert result["num_rows"] == 4 and os.listdir(tmp_path) == [os.path.basename(path)]
    assert pq.read_table(path).to_pylist() == [
        {"x": 1, "s": None}, {"x": 2, "s": None}, {"x": 3, "s": "z"}, {"x": 4, "s": "w"}]


def test_parquet_errors_of_the_blocks_producer_are_not_write_errors(tmp_path):
    def blocks():
        yield table(3)
        raise ValueError("bad row in my UDF")

    with pytest.raises(ValueError) as info:
        run_write(ParquetDatasink(str(tmp_path), row_group_size=2), [blocks()])
    assert str(info.value) == "bad row in my UDF"


def test_empty_task_writes_no_file(tmp_path):
    result = run_write(ParquetDatasink(str(tmp_path)), [[table(0)], [], [table(2)]])
    assert result["num_rows"] == 2 and len(os.listdir(tmp_path)) == 1


def test_tensor_column_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    t = pa.table({"id": [0, 1], "image": to_arrow_column(images)})
    run_write(ParquetDatasink(str(tmp_path)), [[t]])
    back = read_back(ParquetDatasource(str(tmp_path)))
    np.testing.assert_array_equal(column_to_numpy(back["image"]), images)


def test_save_modes(tmp_path):
    target = tmp_path / "t"
    run_write(ParquetDatasink(str(target)), [[table(2)]])
    with pytest.raises(FileExistsError, match="already exists"):
        run_write(ParquetDatasink(str(target), mode="error"), [[table(2)]])
    run_write(ParquetDatasink(str(target), mode="ignore"), [[table(2)]])
    assert len(os.listdir(target)) == 1
    run_write(ParquetDatasink(str(target), mode="overwrite"), [[table(5)], [table(1)]])
    assert len(os.listdir(target)) == 2 and pq.read_table(target).num_rows == 6
    with pytest.raises(ValueError, match="mode must be one of"):
        ParquetDatasink(str(target), mode="upsert")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        ParquetDatasink(str(tmp_path / "file")).on_write_start()


def test_filename_provider_and_fsspec(tmp_path):
    class Names:
        def get_filename_for_block(self, block, task_index, block_index):
            return f"part-{task_index}-{block.num_rows}.parquet"

    result = run_write(ParquetDatasink(str(tmp_path), filename_provider=Names()),
                       [[table(4)], [table(2)]])
    assert sorted(os.listdir(tmp_path)) == ["part-0-4.parquet", "part-1-2.parquet"]
    assert result["paths"][0] == str(tmp_path / "part-0-4.parquet")
    with pytest.raises(TypeError, match="get_filename_for_block"):
        ParquetDatasink(str(tmp_path), filename_provider=lambda *a: "x")
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    try:
        run_write(ParquetDatasink("memory://ember-out", filesystem=mem), [[table(3)]])
        (name,) = mem.ls("/ember-out", detail=False)
        with mem.open(name, "rb") as f:
            assert pq.read_table(f).equals(table(3))
    finally:
        mem.rm("/ember-out", recursive=True)


# ---- CSV -----------------------------------------------------------------------------


def test_csv_round_trip_matches_pandas(tmp_path):
    result = run_write(CSVDatasink(str(tmp_path)), [[table(6)], [table(4, 6)]])
    files = sorted(result["paths"])
    assert all(f.endswith(".csv") for f in files)
    theirs = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(theirs, table(10).to_pandas())
    assert read_back(CSVDatasource(str(tmp_path))).equals(table(10))


def test_csv_options_and_compression(tmp_path):
    sink = CSVDatasink(str(tmp_path), write_options=pacsv.WriteOptions(delimiter="|"),
                       arrow_open_stream_args={"compression": "gzip"})
    (path,) = run_write(sink, [[table(3)]])["paths"]
    with gzip.open(path, "rt") as f:
        assert f.readline().strip() == '"id"|"value"|"name"|"group"'
    with pytest.raises(TypeError, match="unexpected arguments.*delimiter"):
        CSVDatasink(str(tmp_path), delimiter="|")


def test_csv_unsupported_type_is_explained(tmp_path):
    t = pa.table({"nested": [[1, 2], [3]]})
    with pytest.raises(ValueError, match=r"as CSV"):
        run_write(CSVDatasink(str(tmp_path)), [[t]])


# ---- JSON ----------------------------------------------------------------------------


def test_json_lines_round_trip(tmp_path):
    result = run_write(JSONDatasink(str(tmp_path)), [[table(3), table(2, 3)], [table(4, 5)]])
    files = sorted(result["paths"])
    assert all(f.endswith(".json") for f in files)
    for f in files:
        lines = open(f).read().splitlines()
        assert all(line.startswith("{") and line.endswith("}") for line in lines)
    theirs = pd.concat([pd.read_json(f, lines=True) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(theirs, table(9).to_pandas())
    assert read_back(JSONDatasource(str(tmp_path))).sort_by("id").equals(table(9))


def test_json_pandas_args(tmp_path):
    t = pa.table({"when": pa.array([pd.Timestamp("2024-05-01 12:00:00")], pa.timestamp("ms"))})
    (path,) = run_write(JSONDatasink(str(tmp_path), date_format="iso"), [[t]])["paths"]
    assert "2024-05-01T12:00:00" in open(path).read()
    with pytest.raises(TypeError, match="path_or_buf"):
        JSONDatasink(str(tmp_path), path_or_buf="x")

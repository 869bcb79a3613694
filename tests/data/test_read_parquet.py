"""read_parquet / ParquetDatasource: row-group splitting, projection, filters, hive
partitions, path handling and bad input. Results are checked against pyarrow reading
the same files. Datasource tests run the read tasks in-process (no cluster needed);
the end-to-end tests at the bottom go through ember.data.read_parquet."""
from __future__ import annotations

import os

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ember.data._internal.datasource.file_utils import FileShuffleConfig, SchemaConflictError
from ember.data._internal.datasource.parquet_datasource import ParquetDatasource
from ember.data._internal.datasource.partitioning import Partitioning


def run_tasks(tasks) -> pa.Table:
    """Execute read tasks here, in order, as the executor would in workers."""
    tables = [t for task in tasks for t in task()]
    return pa.concat_tables(tables)


def read(src: ParquetDatasource, parallelism: int = 4) -> pa.Table:
    return run_tasks(src.get_read_tasks(parallelism))


def taxi(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "trip_id": np.arange(n, dtype=np.int64),
        "fare": rng.uniform(2, 80, n).round(2),
        "passengers": rng.integers(1, 6, n).astype(np.int32),
        "vendor": pa.array(rng.choice(["CMT", "VTS", "DDS"], n)),
    })


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "trips.parquet"
    pq.write_table(taxi(1000), path, row_group_size=100)  # 10 row groups
    return path


def test_single_file_is_split_by_row_group(big_file):
    src = ParquetDatasource(str(big_file))
    tasks = src.get_read_tasks(4)
    assert len(tasks) == 4
    # Every task knows its exact row count (no filter) and reads only its row groups.
    assert sum(t.metadata.num_rows for t in tasks) == 1000
    assert all(0 < t.metadata.num_rows < 1000 for t in tasks)
    assert all(t.metadata.input_files == [str(big_file)] for t in tasks)
    assert all(t.metadata.schema == src.schema() for t in tasks)
    per_task = [run_tasks([t]).num_rows for t in tasks]
    assert per_task == [t.metadata.num_rows for t in tasks]
    assert read(src).equals(pq.read_table(big_file))


def test_more_tasks_than_row_groups_and_one_task(big_file):
    src = ParquetDatasource(str(big_file))
    assert len(src.get_read_tasks(50)) == 10  # a row group is the smallest unit
    assert len(src.get_read_tasks(1)) == 1
    assert read(src, 1).equals(pq.read_table(big_file))


def test_many_small_files_are_grouped_in_order(tmp_path):
    expected = []
    for i in range(6):
        t = taxi(20, seed=i)
        pq.write_table(t, tmp_path / f"part-{i}.parquet")
        expected.append(t)
    src = ParquetDatasource(str(tmp_path))
    tasks = src.get_read_tasks(2)
    assert len(tasks) == 2
    assert [len(t.metadata.input_files) for t in tasks] == [3, 3]
    assert read(src, 2).equals(pa.concat_tables(expected))
    assert src.files == [str(tmp_path / f"part-{i}.parquet") for i in range(6)]


def test_estimate_inmemory_size_and_projection(big_file):
    src = ParquetDatasource(str(big_file))
    full = src.estimate_inmemory_data_size()
    in_memory = pq.read_table(big_file).nbytes
    assert full is not None and 0.5 * in_memory < full < 2 * in_memory
    assert src.supports_projection_pushdown()
    projected = src.apply_projection(["fare"])
    assert projected.estimate_inmemory_data_size() < full / 2
    assert projected.schema().names == ["fare"]
    assert read(projected).equals(pq.read_table(big_file, columns=["fare"]))
    # The original is unchanged: apply_projection returns a new datasource.
    assert src.schema().names == ["trip_id", "fare", "passengers", "vendor"]


def test_columns_in_given_order(big_file):
    src = ParquetDatasource(str(big_file), columns=["vendor", "trip_id"])
    out = read(src)
    assert out.column_names == ["vendor", "trip_id"]
    assert out.equals(pq.read_table(big_file, columns=["vendor", "trip_id"]))


def test_filter_matches_pyarrow(big_file):
    expr = (pc.field("fare") > 40.0) & (pc.field("vendor") == "VTS")
    src = ParquetDatasource(str(big_file), columns=["trip_id"], filter=expr)
    tasks = src.get_read_tasks(3)
    assert all(t.metadata.num_rows is None for t in tasks)  # unknown with a filter
    out = run_tasks(tasks)
    # pyarrow's own filtered read may reorder rows; ours keeps file order.
    expected = pq.read_table(big_file, filters=expr).select(["trip_id"]).sort_by("trip_id")
    assert out.column_names == ["trip_id"]  # the filter's columns are not returned
    assert out.num_rows == expected.num_rows > 0
    assert out.equals(expected)


def test_filter_that_drops_everything_keeps_schema(big_file):
    src = ParquetDatasource(str(big_file), filter=pc.field("fare") < 0)
    out = read(src)
    assert out.num_rows == 0
    assert out.schema.names == ["trip_id", "fare", "passengers", "vendor"]


def write_hive(root, types=("a", "b")):
    """year=2023|2024 / month=01|02, 5 rows per leaf."""
    expected = []
    for year in (2023, 2024):
        for month in ("01", "02"):
            d = root / f"year={year}" / f"month={month}"
            d.mkdir(parents=True)
            t = pa.table({"x": np.arange(5) + year * 100 + int(month), "kind": list(types * 3)[:5]})
            pq.write_table(t, d / "data.parquet")
            expected.append((year, month, t))
    return expected


def test_hive_partitions_become_string_columns(tmp_path):
    expected = write_hive(tmp_path)
    src = ParquetDatasource(str(tmp_path))
    assert src.schema() == pa.schema([("x", pa.int64()), ("kind", pa.string()),
                                      ("year", pa.string()), ("month", pa.string())])
    out = read(src)
    rows = out.to_pylist()
    assert len(rows) == 20
    want = [{"x": x, "kind": k, "year": str(y), "month": m}
            for y, m, t in expected for x, k in zip(t["x"].to_pylist(), t["kind"].to_pylist())]
    assert rows == want
    # Compare with pyarrow's own hive reading (which types partition values as it infers).
    theirs = pq.read_table(tmp_path, partitioning=pa.dataset.partitioning(
        flavor="hive", schema=pa.schema([("year", pa.string()), ("month", pa.string())])))
    assert sorted(out.to_pylist(), key=str) == sorted(theirs.to_pylist(), key=str)


def test_hive_partition_types_filter_and_projection(tmp_path):
    write_hive(tmp_path)
    src = ParquetDatasource(str(tmp_path),
                            partitioning=Partitioning("hive", field_types={"year": int}),
                            columns=["year", "x"], filter=pc.field("year") == 2024)
    assert src.schema() == pa.schema([("year", pa.int64()), ("x", pa.int64())])
    out = read(src)
    assert out.num_rows == 10
    assert set(out["year"].to_pylist()) == {2024}
    assert sorted(out["x"].to_pylist()) == sorted(
        [202401 + i for i in range(5)] + [202402 + i for i in range(5)])


def test_partitioning_none_and_dir_style(tmp_path):
    write_hive(tmp_path)
    assert ParquetDatasource(str(tmp_path), partitioning=None).schema().names == ["x", "kind"]
    src = ParquetDatasource(str(tmp_path), partitioning=Partitioning(
        "dir", base_dir=str(tmp_path), field_names=["y", "m"]))
    out = read(src)
    assert set(out["y"].to_pylist()) == {"year=2023", "year=2024"}


def test_include_paths(tmp_path):
    pq.write_table(taxi(3), tmp_path / "a.parquet")
    pq.write_table(taxi(2), tmp_path / "b.parquet")
    src = ParquetDatasource(str(tmp_path), include_paths=True, columns=["trip_id"])
    out = read(src)
    assert out.column_names == ["trip_id", "path"]
    assert out["path"].to_pylist() == [str(tmp_path / "a.parquet")] * 3 + \
        [str(tmp_path / "b.parquet")] * 2
    # The planner may project the path column away, or reorder it.
    assert read(src.apply_projection(["trip_id"])).column_names == ["trip_id"]
    assert read(src.apply_projection(["path", "trip_id"])).column_names == ["path", "trip_id"]


def test_schema_conflict_names_both_files_and_column(tmp_path):
    pq.write_table(pa.table({"id": [1, 2], "v": [1.0, 2.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": ["x"], "v": [3.0]}), tmp_path / "b.parquet")
    with pytest.raises(SchemaConflictError) as info:
        ParquetDatasource(str(tmp_path))
    msg = str(info.value)
    assert "'id'" in msg and "a.parquet" in msg and "b.parquet" in msg
    assert "int64" in msg and "string" in msg
    assert isinstance(info.value, ValueError)


def test_missing_columns_and_null_columns_are_unified(tmp_path):
    pq.write_table(pa.table({"id": [1], "v": pa.array([None], pa.null())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": [2], "v": ["x"], "extra": [True]}), tmp_path / "b.parquet")
    src = ParquetDatasource(str(tmp_path))
    assert src.schema() == pa.schema([("id", pa.int64()), ("v", pa.string()),
                                      ("extra", pa.bool_())])
    assert read(src).to_pylist() == [{"id": 1, "v": None, "extra": None},
                                     {"id": 2, "v": "x", "extra": True}]


def test_explicit_schema_casts(big_file):
    schema = pa.schema([("trip_id", pa.int32()), ("fare", pa.float32())])
    out = read(ParquetDatasource(str(big_file), schema=schema))
    assert out.schema == schema
    assert out["trip_id"].to_pylist() == list(range(1000))


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope" / "x.parquet"
    with pytest.raises(FileNotFoundError, match="nope/x.parquet"):
        ParquetDatasource(str(missing))
    with pytest.raises(FileNotFoundError, match="nope"):
        ParquetDatasource([str(tmp_path), str(missing)])


def test_not_a_parquet_file_is_named(tmp_path):
    bad = tmp_path / "fake.parquet"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="fake.parquet.*not a Parquet file"):
        ParquetDatasource(str(bad))


def test_directory_skips_hidden_and_other_extensions(tmp_path):
    pq.write_table(taxi(4), tmp_path / "part-0.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-0.parquet.crc").write_text("junk")
    (tmp_path / "README.txt").write_text("not data")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "part-9.parquet").write_text("half written")
    src = ParquetDatasource(str(tmp_path))
    assert src.files == [str(tmp_path / "part-0.parquet")]
    assert read(src).num_rows == 4


def test_extension_mismatch_is_explained(tmp_path):
    (tmp_path / "data.csv").write_text("a\n1\n")
    with pytest.raises(ValueError, match=r"file extensions \['parquet'\].*data.csv.*"
                                         r"file_extensions=None"):
        ParquetDatasource(str(tmp_path))


def test_globs(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        pq.write_table(taxi(2), tmp_path / d / "x.parquet")
        pq.write_table(taxi(3), tmp_path / d / "y.parquet")
    src = ParquetDatasource(str(tmp_path / "*" / "x.parquet"))
    assert src.files == [str(tmp_path / "a" / "x.parquet"), str(tmp_path / "b" / "x.parquet")]
    src = ParquetDatasource(str(tmp_path / "**" / "*.parquet"))
    assert len(src.files) == 4 and read(src).num_rows == 10
    with pytest.raises(FileNotFoundError, match=r"\*.nothing"):
        ParquetDatasource(str(tmp_path / "*.nothing"))


def test_limit_pushdown_skips_row_groups(big_file):
    src = ParquetDatasource(str(big_file))
    assert src.supports_limit_pushdown()
    limited = src.apply_limit(150)
    tasks = limited.get_read_tasks(10)
    assert len(tasks) == 2  # only the first two row groups (100 rows each)
    out = run_tasks(tasks)
    assert 150 <= out.num_rows <= 200
    assert out["trip_id"].to_pylist()[:150] == list(range(150))
    assert read(src.apply_limit(0)).num_rows == 0


def test_shuffle_files_with_seed(tmp_path):
    for i in range(8):
        pq.write_table(pa.table({"f": [i]}), tmp_path / f"{i}.parquet")
    order = lambda seed: read(ParquetDatasource(  # noqa: E731
        str(tmp_path), shuffle=FileShuffleConfig(seed=seed)), 8)["f"].to_pylist()
    assert sorted(order(1)) == list(range(8))
    assert order(1) == order(1)
    assert order(1) != list(range(8)) or order(2) != list(range(8))
    assert read(ParquetDatasource(str(tmp_path), shuffle="files"), 8).num_rows == 8
    with pytest.raises(ValueError, match="shuffle"):
        ParquetDatasource(str(tmp_path), shuffle="rows")


def test_empty_file_keeps_schema(tmp_path):
    pq.write_table(taxi(0), tmp_path / "empty.parquet")
    src = ParquetDatasource(str(tmp_path / "empty.parquet"))
    tasks = src.get_read_tasks(4)
    assert len(tasks) == 1 and tasks[0].metadata.num_rows == 0
    out = run_tasks(tasks)
    assert out.num_rows == 0 and out.schema.names == taxi(0).schema.names


def test_read_tasks_pickle(big_file):
    src = ParquetDatasource(str(big_file), columns=["fare"], filter=pc.field("fare") > 10)
    tasks = [cloudpickle.loads(cloudpickle.dumps(t)) for t in src.get_read_tasks(3)]
    expected = pq.read_table(big_file).filter(pc.field("fare") > 10).select(["fare"])
    assert run_tasks(tasks).equals(expected)


def test_explicit_pyarrow_filesystem_and_uri(tmp_path, big_file):
    src = ParquetDatasource(str(big_file), filesystem=pafs.LocalFileSystem())
    assert read(src).num_rows == 1000
    assert read(ParquetDatasource(f"file://{big_file}")).num_rows == 1000
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    assert read(ParquetDatasource("trips.parquet", filesystem=sub)).num_rows == 1000


def test_fsspec_filesystems(tmp_path, big_file):
    fsspec = pytest.importorskip("fsspec")
    local = fsspec.filesystem("file")
    assert read(ParquetDatasource(str(big_file), filesystem=local)).equals(
        pq.read_table(big_file))
    mem = fsspec.filesystem("memory")
    with mem.open("/ember-test/t.parquet", "wb") as f:
        pq.write_table(taxi(7), f)
    try:
        src = ParquetDatasource("memory://ember-test/", filesystem=mem)
        assert read(src).equals(taxi(7))
    finally:
        mem.rm("/ember-test", recursive=True)


def test_bad_arguments(big_file):
    with pytest.raises(TypeError, match="pyarrow expression"):
        ParquetDatasource(str(big_file), filter="fare > 3")
    with pytest.raises(ValueError, match=r"\['nope'\].*available columns"):
        ParquetDatasource(str(big_file), columns=["fare", "nope"])
    with pytest.raises(TypeError, match="list of column names"):
        ParquetDatasource(str(big_file), columns="fare")
    with pytest.raises(TypeError, match="unexpected arguments.*colums"):
        ParquetDatasource(str(big_file), to_batches_kwargs={"colums": ["x"]})
    with pytest.raises(ValueError, match="empty"):
        ParquetDatasource([])
    with pytest.raises(TypeError, match="filesystem"):
        ParquetDatasource(str(big_file), filesystem=os)


def test_batch_size_passthrough(big_file):
    src = ParquetDatasource(str(big_file), to_batches_kwargs={"batch_size": 10})
    assert read(src).equals(pq.read_table(big_file))


@pytest.mark.parametrize("parallelism", [1, 2, 3, 4, 7, 10])
def test_rows_come_back_in_file_order(big_file, parallelism):
    # Guards against pyarrow reordering a fragment's row groups.
    src = ParquetDatasource(str(big_file), filter=pc.field("fare") > 0)
    assert read(src, parallelism).equals(pq.read_table(big_file))


_PLAIN_READ = r"""
import sys, cloudpickle
tasks = cloudpickle.loads(open(sys.argv[1], "rb").read())
rows = sum(t.num_rows for task in tasks for t in task())
print(rows, "pyarrow.dataset" in sys.modules, "pandas" in sys.modules)
"""


@pytest.mark.parametrize("how", ["plain", "filtered", "column missing"])
def test_a_plain_read_does_not_load_pyarrow_dataset(tmp_path, how):
    # A worker that imports pyarrow.dataset also imports pandas (~0.24 s): only
    # what a scanner adds (a filter, partitions, options, a cast) needs it.
    import subprocess
    import sys
    pq.write_table(taxi(1000), tmp_path / "a.parquet", row_group_size=300)
    kwargs = {"filter": pc.field("fare") > 10} if how == "filtered" else {}
    if how == "column missing":     # filled with nulls: the scanner's work
        pq.write_table(taxi(1000).drop_columns(["vendor"]), tmp_path / "b.parquet")
    src = ParquetDatasource(str(tmp_path), **kwargs)
    expected = read(src).num_rows
    (tmp_path / "tasks.pkl").write_bytes(cloudpickle.dumps(src.get_read_tasks(2)))
    out = subprocess.run([sys.executable, "-c", _PLAIN_READ, str(tmp_path / "tasks.pkl")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows, dataset_loaded, pandas_loaded = out.stdout.split()
    assert int(rows) == expected
    if how == "plain":
        assert (dataset_loaded, pandas_loaded) == ("False", "False")
    else:
        assert dataset_loaded == "True"


def test_plain_reads_yield_runs_of_row_groups_near_the_block_size(big_file, monkeypatch):
    # One table per run of row groups, each column one chunk (NumPy batches are views).
    from ember.data._internal.datasource import parquet_datasource as P

    meta = pq.ParquetFile(big_file).metadata
    per_group = meta.row_group(0).total_byte_size
    monkeypatch.setattr(P, "target_block_size", lambda: per_group * 3 + 1)
    tables = [t for task in ParquetDatasource(str(big_file)).get_read_tasks(1) for t in task()]
    assert [t.num_rows for t in tables] == [300, 300, 300, 100]  # at most 3 row groups
    assert all(c.num_chunks == 1 for t in tables for c in t.columns)
    assert pa.concat_tables(tables).equals(pq.read_table(big_file))


def test_a_read_block_limit_makes_smaller_runs_only_while_open(big_file, monkeypatch):
    # What a fused read -> write task reads under (planner._bounded_reads).
    from ember.data._internal.datasource import parquet_datasource as P
    from ember.data._internal.datasource.file_based_datasource import read_block_limit

    per_group = pq.ParquetFile(big_file).metadata.row_group(0).total_byte_size
    monkeypatch.setattr(P, "target_block_size", lambda: per_group * 3 + 1)
    (task,) = ParquetDatasource(str(big_file)).get_read_tasks(1)
    with read_block_limit(per_group * 2):
        assert [t.num_rows for t in task()] == [200] * 5
    with read_block_limit(1):   # below one row group: one row group per table
        assert [t.num_rows for t in task()] == [100] * 10
    with read_block_limit(per_group * 100):  # above the target: the target
        assert [t.num_rows for t in task()] == [300, 300, 300, 100]
    assert [t.num_rows for t in task()] == [300, 300, 300, 100]

"""read_csv / CSVDatasource and the shared path handling (directories, globs, lists,
compression, partitions, include_paths, bad input). Checked against pyarrow/pandas
reading the same files; read tasks run in-process."""
from __future__ import annotations

import gzip

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from ember.data._internal.datasource.csv_datasource import CSVDatasource
from ember.data._internal.datasource.file_utils import FileShuffleConfig, split_balanced


def run_tasks(tasks) -> pa.Table:
    # Promote as the executor does when it combines blocks (int64 + double -> double).
    return pa.concat_tables([t for task in tasks for t in task()], promote_options="permissive")


def read(src, parallelism: int = 4) -> pa.Table:
    return run_tasks(src.get_read_tasks(parallelism))


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n) + seed * 1000, "score": rng.normal(size=n).round(3),
                         "city": rng.choice(["Oslo", "Lima", "Pune"], n)})


@pytest.fixture
def csv_dir(tmp_path):
    frames = []
    for i in range(5):
        df = frame(30, seed=i)
        df.to_csv(tmp_path / f"part-{i}.csv", index=False)
        frames.append(df)
    return tmp_path, pd.concat(frames, ignore_index=True)


def test_directory_matches_pandas(csv_dir):
    root, expected = csv_dir
    src = CSVDatasource(str(root))
    tasks = src.get_read_tasks(2)
    assert len(tasks) == 2
    assert sum(len(t.metadata.input_files) for t in tasks) == 5
    assert all(t.metadata.num_rows is None for t in tasks)  # unknown before parsing
    pd.testing.assert_frame_equal(run_tasks(tasks).to_pandas(), expected)


def test_one_task_per_file_at_most(csv_dir):
    root, expected = csv_dir
    tasks = CSVDatasource(str(root)).get_read_tasks(100)
    assert len(tasks) == 5
    assert [t.metadata.input_files for t in tasks] == [[str(root / f"part-{i}.csv")]
                                                       for i in range(5)]


def test_size_estimate_is_file_sizes(csv_dir):
    root, _ = csv_dir
    src = CSVDatasource(str(root))
    total = sum(p.stat().st_size for p in root.iterdir())
    assert src.estimate_inmemory_data_size() == total
    assert sum(t.metadata.size_bytes for t in src.get_read_tasks(3)) == total


def test_list_single_file_and_glob(csv_dir):
    root, expected = csv_dir
    one = read(CSVDatasource(str(root / "part-1.csv")))
    pd.testing.assert_frame_equal(one.to_pandas(), frame(30, seed=1))
    two = read(CSVDatasource([str(root / "part-3.csv"), str(root / "part-0.csv")]))
    # A list is read in the order given.
    assert two["id"].to_pylist() == list(frame(30, 3)["id"]) + list(frame(30, 0)["id"])
    globbed = CSVDatasource(str(root / "part-[12].csv"))
    assert globbed.files == [str(root / "part-1.csv"), str(root / "part-2.csv")]


def test_arrow_options_pass_through(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("# comment line\nzip;amount\n00501;1,5\n10001;2,25\n")
    src = CSVDatasource(str(path), arrow_csv_args={
        "read_options": pacsv.ReadOptions(skip_rows=1),
        "parse_options": pacsv.ParseOptions(delimiter=";"),
        "convert_options": pacsv.ConvertOptions(column_types={"zip": pa.string()},
                                                decimal_point=","),
    })
    out = read(src)
    assert out.schema == pa.schema([("zip", pa.string()), ("amount", pa.float64())])
    assert out.to_pylist() == [{"zip": "00501", "amount": 1.5}, {"zip": "10001", "amount": 2.25}]
    with pytest.raises(TypeError, match="unexpected arguments.*delimiter"):
        CSVDatasource(str(path), arrow_csv_args={"delimiter": ";"})


def test_gzip_is_detected(tmp_path):
    df = frame(50)
    with gzip.open(tmp_path / "data.csv.gz", "wt") as f:
        df.to_csv(f, index=False)
    pd.testing.assert_frame_equal(read(CSVDatasource(str(tmp_path / "data.csv.gz"))).to_pandas(),
                                  df)


def test_large_file_is_streamed_in_blocks(tmp_path, monkeypatch):
    from ember.data.context import DataContext

    df = frame(20000)
    df.to_csv(tmp_path / "big.csv", index=False)
    # A tiny target block size makes the file "large": it is streamed, not read whole.
    monkeypatch.setattr(DataContext.get_current(), "target_max_block_size", 64 * 1024)
    src = CSVDatasource(str(tmp_path / "big.csv"), arrow_csv_args={
        "read_options": pacsv.ReadOptions(block_size=16 * 1024)})
    assert src._target_block_size == 64 * 1024
    tables = [t for task in src.get_read_tasks(1) for t in task()]
    assert len(tables) > 3
    assert all(t.nbytes < 4 * 64 * 1024 for t in tables)
    pd.testing.assert_frame_equal(pa.concat_tables(tables).to_pandas(), df)


def test_hive_partitions_and_include_paths(tmp_path):
    for region in ("eu", "us"):
        (tmp_path / f"region={region}").mkdir()
        frame(3).to_csv(tmp_path / f"region={region}" / "x.csv", index=False)
    out = read(CSVDatasource(str(tmp_path), partitioning="hive", include_paths=True))
    assert out.column_names == ["id", "score", "city", "region", "path"]
    assert out["region"].to_pylist() == ["eu"] * 3 + ["us"] * 3
    assert out["path"].to_pylist()[0] == str(tmp_path / "region=eu" / "x.csv")
    assert read(CSVDatasource(str(tmp_path), partitioning=None)).column_names == \
        ["id", "score", "city"]


def test_empty_file_and_header_only(tmp_path):
    (tmp_path / "a.csv").write_text("")
    (tmp_path / "b.csv").write_text("x,y\n")
    frame(2).to_csv(tmp_path / "c.csv", index=False)
    out = read(CSVDatasource(str(tmp_path)), 1)
    assert out.num_rows == 2


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist.csv"):
        CSVDatasource(str(tmp_path / "does-not-exist.csv"))
    # ignore_missing_paths skips it, but there must be something left to read.
    frame(2).to_csv(tmp_path / "ok.csv", index=False)
    src = CSVDatasource([str(tmp_path / "nope.csv"), str(tmp_path / "ok.csv")],
                        ignore_missing_paths=True)
    assert read(src).num_rows == 2
    with pytest.raises(ValueError, match="No input files"):
        CSVDatasource(str(tmp_path / "nope.csv"), ignore_missing_paths=True)


def test_file_extensions_filter(csv_dir):
    root, expected = csv_dir
    (root / "notes.txt").write_text("hello")
    src = CSVDatasource(str(root), file_extensions=["csv"])
    assert len(src.files) == 5
    with pytest.raises(ValueError, match=r"\['tsv'\].*part-0.csv"):
        CSVDatasource(str(root), file_extensions=["tsv"])


def test_malformed_csv_error_names_file(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4,5\n")
    src = CSVDatasource(str(tmp_path / "bad.csv"))
    with pytest.raises(ValueError, match=r"bad\.csv.*as CSV") as info:
        read(src)
    assert isinstance(info.value.__cause__, pa.ArrowInvalid)


def test_partition_filter_and_shuffle(csv_dir):
    root, _ = csv_dir
    src = CSVDatasource(str(root), partition_filter=lambda paths: [p for p in paths
                                                                   if p.endswith("3.csv")])
    assert src.files == [str(root / "part-3.csv")]
    order = [read(CSVDatasource(str(root), shuffle=FileShuffleConfig(seed=7)), 5)["id"][0].as_py()
             for _ in range(2)]
    assert order[0] == order[1]
    ids = read(CSVDatasource(str(root), shuffle=FileShuffleConfig(seed=7)), 5)["id"].to_pylist()
    assert sorted(ids) == sorted(read(CSVDatasource(str(root)))["id"].to_pylist())


def test_limit_pushdown(csv_dir):
    root, expected = csv_dir
    src = CSVDatasource(str(root)).apply_limit(40)
    tasks = src.get_read_tasks(1)
    out = run_tasks(tasks)
    assert out.num_rows == 40
    assert out["id"].to_pylist() == list(expected["id"][:40])


def test_read_tasks_pickle(csv_dir):
    root, expected = csv_dir
    tasks = [cloudpickle.loads(cloudpickle.dumps(t))
             for t in CSVDatasource(str(root)).get_read_tasks(3)]
    pd.testing.assert_frame_equal(run_tasks(tasks).to_pandas(), expected)
    # A task carries its own files only, not the whole list.
    assert len(cloudpickle.dumps(tasks[0])) < 10_000


def test_split_balanced():
    assert split_balanced([10, 1, 1, 10], 2) == [[0, 1], [2, 3]]
    assert split_balanced([1, 1, 1], 5) == [[0], [1], [2]]
    assert split_balanced([0, 0, 0, 0], 2) == [[0, 1], [2, 3]]
    assert split_balanced([100, 1, 1, 1], 3) == [[0], [1], [2, 3]]
    assert split_balanced([], 3) == []
    for weights in ([5] * 7, [1, 50, 2, 2, 9, 30, 1], list(range(20))):
        for n in range(1, 9):
            groups = split_balanced(weights, n)
            assert len(groups) == min(n, len(weights))
            assert [i for g in groups for i in g] == list(range(len(weights)))
            assert all(groups)


def test_globs_on_a_relative_filesystem(csv_dir):
    import pyarrow.fs as pafs

    root, expected = csv_dir
    (root / "sub").mkdir()
    frame(2, seed=9).to_csv(root / "sub" / "extra.csv", index=False)
    sub = pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())
    assert CSVDatasource("part-*.csv", filesystem=sub).files == \
        [f"part-{i}.csv" for i in range(5)]
    assert CSVDatasource("**/*.csv", filesystem=sub).files[-1] == "sub/extra.csv"
    assert CSVDatasource("*/*.csv", filesystem=sub).files == ["sub/extra.csv"]
    pd.testing.assert_frame_equal(read(CSVDatasource("part-*.csv", filesystem=sub)).to_pandas(),
                                  expected)


def test_conflicting_column_types_name_both_files(tmp_path):
    from ember.data._internal.datasource.file_utils import SchemaConflictError

    (tmp_path / "a.csv").write_text("k,v\n1,2\n")
    (tmp_path / "b.csv").write_text("k,v\nx,2.5\n")
    with pytest.raises(SchemaConflictError) as info:
        read(CSVDatasource(str(tmp_path)), 1)
    msg = str(info.value)
    assert "'k'" in msg and "a.csv" in msg and "b.csv" in msg and "column_types" in msg
    # Types that promote (int64 and double) are not a conflict.
    (tmp_path / "b.csv").write_text("k,v\n3,2.5\n")
    assert read(CSVDatasource(str(tmp_path)), 1)["v"].to_pylist() == [2.0, 2.5]

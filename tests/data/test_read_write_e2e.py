"""File I/O through the Dataset API on a 2-CPU cluster: every read_* function and
write_* method, round trips, pushdown, and bad input surfacing from ember.data.read_*.
Results are checked against pandas/pyarrow reading the same files."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest


def taxi(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "trip_id": np.arange(n, dtype=np.int64),
        "fare": rng.uniform(2, 80, n).round(2),
        "passengers": rng.integers(1, 6, n).astype(np.int64),
        "vendor": rng.choice(["CMT", "VTS"], n),
    })


@pytest.fixture(scope="module")
def taxi_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("taxi") / "trips.parquet"
    pq.write_table(pa.Table.from_pandas(taxi(2000), preserve_index=False), path,
                   row_group_size=250)  # 8 row groups
    return path


def test_read_parquet_matches_pandas(cluster, taxi_file):
    import ember.data

    ds = ember.data.read_parquet(str(taxi_file), override_num_blocks=4)
    assert ds.count() == 2000
    assert ds.schema().names == ["trip_id", "fare", "passengers", "vendor"]
    out = ds.to_pandas()
    pd.testing.assert_frame_equal(out.sort_values("trip_id").reset_index(drop=True),
                                  pd.read_parquet(taxi_file))
    materialized = ds.materialize()
    assert materialized.num_blocks() == 4  # one block per group of row groups
    assert str(taxi_file) in materialized.input_files()


def test_read_parquet_columns_filter_and_pushdown(cluster, taxi_file):
    import ember.data

    ds = ember.data.read_parquet(str(taxi_file), columns=["trip_id", "fare"],
                                 filter=pc.field("fare") > 50.0)
    got = ds.to_pandas().sort_values("trip_id").reset_index(drop=True)
    expected = pd.read_parquet(taxi_file)
    expected = expected[expected.fare > 50.0][["trip_id", "fare"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    # select_columns after the read is pushed into it; limit too.
    only = ember.data.read_parquet(str(taxi_file)).select_columns(["vendor"])
    assert only.schema().names == ["vendor"]
    assert only.count() == 2000
    first = ember.data.read_parquet(str(taxi_file)).limit(7).take_all()
    assert len(first) == 7


def test_read_csv_json_text_numpy_binary(cluster, tmp_path):
    import ember.data

    frames = [taxi(50, seed=i) for i in range(3)]
    for i, df in enumerate(frames):
        df.to_csv(tmp_path / f"t{i}.csv", index=False)
        df.to_json(tmp_path / f"t{i}.jsonl", orient="records", lines=True)
    expected = pd.concat(frames, ignore_index=True)
    csv = ember.data.read_csv(str(tmp_path / "*.csv")).to_pandas()
    pd.testing.assert_frame_equal(csv.sort_values(["trip_id", "fare"]).reset_index(drop=True),
                                  expected.sort_values(["trip_id", "fare"])
                                  .reset_index(drop=True))
    js = ember.data.read_json(str(tmp_path)).to_pandas()
    assert len(js) == 150 and sorted(js.fare) == sorted(expected.fare)

    (tmp_path / "poem.txt").write_text("one\n\ntwo\nthree\n")
    text = ember.data.read_text(str(tmp_path / "poem.txt")).take_all()
    assert text == [{"text": "one"}, {"text": "two"}, {"text": "three"}]

    arr = np.arange(12, dtype=np.int32).reshape(6, 2)
    np.save(tmp_path / "arr.npy", arr)
    rows = ember.data.read_numpy(str(tmp_path / "arr.npy")).take_all()
    np.testing.assert_array_equal(np.stack([r["data"] for r in rows]), arr)

    (tmp_path / "blob.bin").write_bytes(b"\x00\xffdata")
    bins = ember.data.read_binary_files(str(tmp_path / "blob.bin"), include_paths=True)
    assert bins.take_all() == [{"bytes": b"\x00\xffdata", "path": str(tmp_path / "blob.bin")}]


def test_write_read_round_trips(cluster, tmp_path):
    import ember.data

    df = taxi(300)
    ds = ember.data.from_pandas(df).repartition(3)
    ds.write_parquet(str(tmp_path / "pq"))
    ds.write_csv(str(tmp_path / "csv"))
    ds.write_json(str(tmp_path / "json"))
    assert len(list((tmp_path / "pq").iterdir())) == 3  # one file per write task
    for reader, sub in ((ember.data.read_parquet, "pq"), (ember.data.read_csv, "csv"),
                        (ember.data.read_json, "json")):
        back = reader(str(tmp_path / sub)).to_pandas().sort_values("trip_id")
        pd.testing.assert_frame_equal(back.reset_index(drop=True), df, check_dtype=False)
    # pyarrow reads what we wrote, too.
    pd.testing.assert_frame_equal(
        pq.read_table(tmp_path / "pq").to_pandas().sort_values("trip_id")
        .reset_index(drop=True), df)


def test_read_map_write_partitioned(cluster, taxi_file, tmp_path):
    import ember.data

    ds = ember.data.read_parquet(str(taxi_file)).map_batches(
        lambda b: {"trip_id": b["trip_id"], "double_fare": b["fare"] * 2,
                   "vendor": b["vendor"]})
    ds.write_parquet(str(tmp_path / "out"), partition_cols=["vendor"], compression="zstd")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vendor=CMT", "vendor=VTS"]
    back = ember.data.read_parquet(str(tmp_path / "out")).to_pandas()
    src = pd.read_parquet(taxi_file)
    merged = back.merge(src, on="trip_id")
    assert len(merged) == 2000
    np.testing.assert_allclose(merged.double_fare, merged.fare * 2)
    assert (merged.vendor_x == merged.vendor_y).all()


def test_bad_input_from_read_functions(cluster, tmp_path):
    import ember.data

    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        ember.data.read_parquet(str(tmp_path / "missing.parquet"))
    pq.write_table(pa.table({"k": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"k": ["one"]}), tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"'k'.*a\.parquet.*b\.parquet"):
        ember.data.read_parquet(str(tmp_path))
    (tmp_path / "x.json").write_text(json.dumps({"a": 1}) + "\n{broken\n")
    with pytest.raises(Exception, match=r"x\.json"):
        ember.data.read_json(str(tmp_path / "x.json")).take_all()


def test_fsspec_filesystem_end_to_end(cluster, taxi_file):
    fsspec = pytest.importorskip("fsspec")
    import ember.data

    ds = ember.data.read_parquet(str(taxi_file), filesystem=fsspec.filesystem("file"))
    assert ds.count() == 2000


def test_save_modes_through_dataset(cluster, tmp_path):
    import ember.data

    out = str(tmp_path / "out")
    ember.data.range(10).write_parquet(out)
    ember.data.range(3).write_parquet(out, mode="ignore")   # exists: nothing written
    assert ember.data.read_parquet(out).count() == 10
    ember.data.range(4).write_parquet(out, mode="overwrite")
    assert ember.data.read_parquet(out).count() == 4
    with pytest.raises(FileExistsError):
        ember.data.range(1).write_parquet(out, mode="error")

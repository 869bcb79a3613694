"""Dataset creation, transformations and consumption, checked against pandas/pyarrow."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import ember
import ember.data as ed


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


def frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "k": rng.integers(0, 5, n),
                         "v": rng.normal(size=n), "s": [f"s{i % 7}" for i in range(n)]})


def as_df(ds, sort="id"):
    return ds.to_pandas().sort_values(sort).reset_index(drop=True)


# -- creation ------------------------------------------------------------------------------
def test_range_and_range_tensor():
    ds = ed.range(103, override_num_blocks=4)
    assert ds.count() == 103
    assert sorted(r["id"] for r in ds.take_all()) == list(range(103))
    assert ds.schema().names == ["id"]
    assert ds.num_blocks() == 4
    t = ed.range_tensor(6, shape=(2, 3)).take_all()
    got = sorted(t, key=lambda r: r["data"][0, 0])
    for i, row in enumerate(got):
        np.testing.assert_array_equal(row["data"], np.full((2, 3), i))


def test_from_items_and_non_dict_items():
    ds = ed.from_items([{"a": i, "b": str(i)} for i in range(10)])
    assert ds.count() == 10
    assert sorted(r["a"] for r in ds.take_all()) == list(range(10))
    assert sorted(r["item"] for r in ed.from_items([3, 1, 2]).take_all()) == [1, 2, 3]
    assert ed.from_items([{"a": 1}] * 7, override_num_blocks=3).num_blocks() == 3


def test_from_pandas_arrow_numpy_round_trip():
    df = frame(50)
    pd.testing.assert_frame_equal(as_df(ed.from_pandas(df)), df, check_dtype=False)
    pd.testing.assert_frame_equal(as_df(ed.from_pandas([df[:20], df[20:]])), df,
                                  check_dtype=False)
    table = pa.Table.from_pandas(df, preserve_index=False)
    assert ed.from_arrow([table, table]).count() == 100
    arr = np.arange(12).reshape(6, 2)
    rows = ed.from_numpy(arr).take_all()
    np.testing.assert_array_equal(np.stack([r["data"] for r in rows]), arr)


def test_from_refs():
    df = frame(30)
    ds = ed.from_pandas_refs([ember.put(df[:10]), ember.put(df[10:])])
    pd.testing.assert_frame_equal(as_df(ds), df, check_dtype=False)
    table = pa.table({"x": [1, 2, 3]})
    assert ed.from_arrow_refs([ember.put(table)]).take_all() == table.to_pylist()
    arrays = ed.from_numpy_refs([ember.put(np.ones(4))]).take_all()
    assert [r["data"] for r in arrays] == [1.0] * 4


# -- row transformations -------------------------------------------------------------------
def test_map_filter_flat_map_match_pandas():
    df = frame()
    ds = ed.from_pandas(df)
    mapped = as_df(ds.map(lambda r: {"id": r["id"], "w": r["v"] * 2 + r["k"]}))
    np.testing.assert_allclose(mapped["w"], df["v"] * 2 + df["k"])
    kept = as_df(ds.filter(lambda r: r["k"] == 3))
    pd.testing.assert_frame_equal(kept, df[df.k == 3].reset_index(drop=True),
                                  check_dtype=False)
    flat = ds.flat_map(lambda r: [{"id": r["id"]}] * int(r["k"]))
    assert flat.count() == df["k"].sum()


def test_filter_with_string_expressions_matches_pandas():
    df = frame()
    df["s"] = np.where(df["k"] % 2 == 0, "even", "odd")
    ds = ed.from_pandas([df[:100], df[100:]])
    cases = {
        "k > 5": df[df.k > 5],
        "k >= 2 and s == 'even'": df[(df.k >= 2) & (df.s == "even")],
        "k in [1, 3] or v < 0.1": df[df.k.isin([1, 3]) | (df.v < 0.1)],
        "not (k != 4)": df[df.k == 4],
        "1 < k <= 3": df[(df.k > 1) & (df.k <= 3)],
        "v * 2 > 1": df[df.v * 2 > 1],
    }
    for expr, expected in cases.items():
        got = as_df(ds.filter(expr=expr))
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True),
                                      check_dtype=False, obj=expr)
    # Nothing kept: the schema stays.
    assert ds.filter(expr="k > 1000").count() == 0
    # Arbitrary code is never evaluated: calls, attributes, lambdas are rejected up front.
    for bad in ["__import__('os').system('true')", "k.real > 1", "lambda: 1", "k >"]:
        with pytest.raises(ValueError, match="fn="):
            ds.filter(expr=bad)
    with pytest.raises(ValueError, match="either fn or expr"):
        ds.filter(lambda r: True, expr="k > 1")
    with pytest.raises(Exception, match="nope"):
        ds.filter(expr="nope > 1").take_all()


def test_map_batches_formats_and_args():
    df = frame()
    ds = ed.from_pandas(df)

    def numpy_fn(batch, scale, *, offset):
        return {"id": batch["id"], "y": batch["v"] * scale + offset}

    out = as_df(ds.map_batches(numpy_fn, fn_args=(3,), fn_kwargs={"offset": 1},
                               batch_size=16))
    np.testing.assert_allclose(out["y"], df["v"] * 3 + 1)

    def pandas_fn(batch):
        assert isinstance(batch, pd.DataFrame)
        return batch.assign(z=batch["k"] * 10)

    out = as_df(ds.map_batches(pandas_fn, batch_format="pandas"))
    np.testing.assert_array_equal(out["z"], df["k"] * 10)

    def arrow_fn(batch):
        assert isinstance(batch, pa.Table)
        return batch.select(["id"])

    assert ds.map_batches(arrow_fn, batch_format="pyarrow").columns() == ["id"]


def test_map_batches_batch_size_spans_small_blocks():
    # Blocks of 10 rows; a batch takes rows from several of them (one task reads 3
    # blocks: 30 rows -> batches of 25 and 5).
    rows = ed.range(100, override_num_blocks=10).map_batches(
        lambda b: {"n": [len(b["id"])]}, batch_size=25).take_all()
    sizes = sorted(r["n"] for r in rows)
    assert sum(sizes) == 100 and max(sizes) == 25 and sizes.count(25) >= 3
    # Materialized blocks are grouped the same way.
    rows = ed.range(100, override_num_blocks=10).materialize().map_batches(
        lambda b: {"n": [len(b["id"])]}, batch_size=25).take_all()
    sizes = sorted(r["n"] for r in rows)
    assert sum(sizes) == 100 and max(sizes) == 25 and sizes.count(25) >= 3


def test_map_batches_callable_class_on_actor_pool():
    class AddConst:
        def __init__(self, c):
            import os
            self.c = c
            self.pid = os.getpid()

        def __call__(self, batch):
            return {"id": batch["id"], "y": batch["id"] + self.c,
                    "pid": np.full(len(batch["id"]), self.pid)}

    ds = ed.range(400, override_num_blocks=8).map_batches(
        AddConst, fn_constructor_args=(7,), concurrency=2, batch_size=50)
    rows = ds.take_all()
    assert sorted(r["y"] - r["id"] for r in rows) == [7] * 400
    assert len({r["pid"] for r in rows}) <= 2
    # Autoscaling pool from 1 to 2 actors also computes the same thing.
    auto = ed.range(100).map_batches(AddConst, fn_constructor_args=(1,), concurrency=(1, 2))
    assert sorted(r["y"] for r in auto.take_all()) == list(range(1, 101))


def test_compute_arguments_are_checked():
    class C:
        def __call__(self, b):
            return b

    with pytest.raises(ValueError, match="concurrency.*callable class"):
        ed.range(3).map_batches(C)
    with pytest.raises(ValueError, match="needs a callable class"):
        ed.range(3).map_batches(lambda b: b, concurrency=(1, 2))
    with pytest.raises(ValueError, match="batch_size"):
        ed.range(3).map_batches(lambda b: b, batch_size=0)
    with pytest.raises(ValueError, match="batch_format"):
        ed.range(3).map_batches(lambda b: b, batch_format="arrow")


def test_columns_operations():
    df = frame(40)
    ds = ed.from_pandas(df)
    assert ds.select_columns(["s", "id"]).columns() == ["s", "id"]
    assert ds.drop_columns(["v", "s"]).columns() == ["id", "k"]
    assert ds.rename_columns({"v": "value"}).columns() == ["id", "k", "value", "s"]
    assert ds.rename_columns(["a", "b", "c", "d"]).columns() == ["a", "b", "c", "d"]
    added = as_df(ds.add_column("k2", lambda d: d["k"] * 2))
    np.testing.assert_array_equal(added["k2"], df["k"] * 2)
    with pytest.raises(ValueError, match="duplicate"):
        ds.select_columns(["id", "id"])


def test_limit_and_take_stop_early():
    calls = ed.range(10_000, override_num_blocks=100).map(lambda r: r)
    assert len(calls.limit(15).take_all()) == 15
    assert len(calls.take(5)) == 5
    stats = calls.limit(15).materialize().stats()
    # The limit reached the reads: far fewer than 100 read tasks ran.
    first = stats.splitlines()[0]
    assert int(first.split(": ")[1].split(" tasks")[0]) < 50, stats
    assert ed.range(5).limit(0).count() == 0


def test_union_zip_random_sample():
    a, b = ed.range(10), ed.range(5).map(lambda r: {"id": r["id"] + 100})
    assert sorted(r["id"] for r in a.union(b).take_all()) == list(range(10)) + \
        list(range(100, 105))
    left = ed.from_items([{"x": i} for i in range(20)], override_num_blocks=3)
    right = ed.from_items([{"y": i * 2, "x": -i} for i in range(20)], override_num_blocks=4)
    zipped = left.zip(right).take_all()
    assert [(r["x"], r["y"], r["x_1"]) for r in zipped] == [(i, 2 * i, -i) for i in range(20)]
    with pytest.raises(ValueError, match="same number of rows"):
        left.zip(ed.range(3)).take_all()
    n = ed.range(2000).random_sample(0.3, seed=5).count()
    assert 450 < n < 750
    assert ed.range(2000).random_sample(0.3, seed=5).count() == n


# -- consumption ---------------------------------------------------------------------------
def test_take_batch_show_schema(capsys):
    ds = ed.from_pandas(frame(30))
    batch = ds.take_batch(7)
    assert set(batch) == {"id", "k", "v", "s"} and len(batch["id"]) == 7
    assert isinstance(ds.take_batch(3, batch_format="pandas"), pd.DataFrame)
    ds.show(2)
    assert capsys.readouterr().out.count("\n") == 2
    schema = ds.schema()
    assert schema.names == ["id", "k", "v", "s"]
    assert "Column" in repr(schema) and "int64" in repr(schema)
    with pytest.raises(ValueError, match="empty"):
        ds.filter(lambda r: False).take_batch(2)


def test_take_all_limit_and_to_pandas_limit():
    with pytest.raises(ValueError, match="more than the given limit"):
        ed.range(10).take_all(limit=5)
    with pytest.raises(ValueError, match="more than limit"):
        ed.range(10).to_pandas(limit=5)


def test_refs_and_sizes():
    ds = ed.range(100, override_num_blocks=4)
    refs = ds.to_arrow_refs()
    assert sum(t.num_rows for t in ember.get(refs)) == 100
    frames = ember.get(ds.to_pandas_refs())
    assert sum(len(f) for f in frames) == 100
    arrays = ember.get(ds.to_numpy_refs(column="id"))
    assert sorted(np.concatenate(arrays).tolist()) == list(range(100))
    assert ds.size_bytes() == 800


def test_materialize_runs_once_and_keeps_blocks(tmp_path):
    marker = tmp_path / "calls"

    def count_calls(batch):
        with open(marker, "a") as f:
            f.write("x")
        return batch

    ds = ed.range(20, override_num_blocks=2).map_batches(count_calls, batch_size=10).materialize()
    assert marker.read_text() == "xx"
    assert isinstance(ds, ed.MaterializedDataset)
    assert ds.count() == 20 and ds.sum("id") == 190
    assert marker.read_text() == "xx"
    assert "MapBatches(count_calls)" in ds.stats()


def test_iter_rows_and_input_files_of_in_memory_data():
    assert sorted(r["id"] for r in ed.range(7).iter_rows()) == list(range(7))
    assert ed.range(3).input_files() == []


def test_preserve_order():
    ctx = ed.DataContext.get_current()
    old = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        import random
        import time

        def jitter(b):
            time.sleep(random.random() * 0.02)
            return b

        ds = ed.range(300, override_num_blocks=12).map_batches(jitter, batch_size=None)
        assert [r["id"] for r in ds.take_all()] == list(range(300))
    finally:
        ctx.execution_options.preserve_order = old


def test_repr_and_dataset_is_lazy(tmp_path):
    marker = tmp_path / "ran"

    def touch(b):
        marker.write_text("yes")
        return b

    ds = ed.range(3).map_batches(touch)
    assert "MapBatches(touch)" in repr(ds)
    assert not marker.exists()
    ds.count()
    assert marker.exists()

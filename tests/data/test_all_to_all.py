"""Sort, shuffle, repartition, group-by, aggregates and joins, checked against pandas."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import ember
import ember.data as ed
from ember.data.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


def frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "k": rng.integers(0, 6, n),
                         "g": rng.choice(["a", "b", "c"], n),
                         "v": rng.normal(size=n).round(6), "w": rng.integers(0, 100, n)})


@pytest.fixture(scope="module")
def df():
    return frame()


@pytest.fixture(scope="module")
def ds(df):
    return ed.from_pandas([df[i:i + 50] for i in range(0, len(df), 50)])


def test_sort_matches_pandas(df, ds):
    got = ds.sort("v").to_pandas()
    assert got["v"].tolist() == sorted(df["v"])
    got = ds.sort("w", descending=True).to_pandas()
    assert got["w"].tolist() == sorted(df["w"], reverse=True)
    got = ds.sort(["k", "w"], descending=[False, True]).to_pandas()
    expected = df.sort_values(["k", "w"], ascending=[True, False])
    assert list(zip(got.k, got.w)) == list(zip(expected.k, expected.w))
    strings = ds.sort("g").to_pandas()["g"].tolist()
    assert strings == sorted(df["g"])


def test_sort_keeps_blocks_and_errors_on_missing_key(ds):
    assert ds.sort("v").num_blocks() == 6
    with pytest.raises(Exception, match="no column"):
        ds.sort("nope").take_all()


def test_random_shuffle_is_a_seeded_permutation(df, ds):
    a = ds.random_shuffle(seed=3).to_pandas()
    b = ds.random_shuffle(seed=3).to_pandas()
    c = ds.random_shuffle(seed=4).to_pandas()
    assert sorted(a["id"]) == list(range(len(df)))
    assert a["id"].tolist() == b["id"].tolist()
    assert a["id"].tolist() != c["id"].tolist()
    assert a["id"].tolist() != list(range(len(df)))


def test_repartition_sizes_and_order(ds, df):
    parts = ds.repartition(7)
    assert parts.num_blocks() == 7
    sizes = [t.num_rows for t in ember.get(parts.to_arrow_refs())]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(df)
    ctx = ed.DataContext.get_current()
    old = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        assert [r["id"] for r in ds.repartition(4).take_all()] == list(range(len(df)))
    finally:
        ctx.execution_options.preserve_order = old
    shuffled = ds.repartition(3, shuffle=True)
    assert shuffled.num_blocks() == 3 and sorted(shuffled.to_pandas()["id"]) == \
        list(range(len(df)))


def test_randomize_block_order(ds, df):
    out = ds.randomize_block_order(seed=1).to_pandas()
    assert sorted(out["id"]) == list(range(len(df)))


def test_groupby_builtins_match_pandas(df, ds):
    expected = df.groupby("k").agg(count=("id", "size"), s=("w", "sum"), mn=("v", "min"),
                                   mx=("v", "max"), mean=("v", "mean"),
                                   std=("v", "std")).reset_index()
    got = ds.groupby("k").aggregate(Count(), Sum("w"), Min("v"), Max("v"), Mean("v"),
                                    Std("v")).to_pandas()
    assert got.columns.tolist() == ["k", "count()", "sum(w)", "min(v)", "max(v)", "mean(v)",
                                    "std(v)"]
    assert got["k"].tolist() == expected["k"].tolist()     # sorted by key
    np.testing.assert_array_equal(got["count()"], expected["count"])
    np.testing.assert_array_equal(got["sum(w)"], expected["s"])
    np.testing.assert_allclose(got["min(v)"], expected["mn"])
    np.testing.assert_allclose(got["max(v)"], expected["mx"])
    np.testing.assert_allclose(got["mean(v)"], expected["mean"])
    np.testing.assert_allclose(got["std(v)"], expected["std"])


def test_groupby_shortcuts_and_multi_key(df, ds):
    counts = ds.groupby("g").count().take_all()
    assert {r["g"]: r["count()"] for r in counts} == df.groupby("g").size().to_dict()
    means = ds.groupby(["g", "k"]).mean("v").to_pandas()
    expected = df.groupby(["g", "k"])["v"].mean().reset_index()
    assert list(zip(means.g, means.k)) == list(zip(expected.g, expected.k))
    np.testing.assert_allclose(means["mean(v)"], expected["v"])
    sums = ds.groupby("k").sum(["w", "v"]).to_pandas()
    np.testing.assert_allclose(sums["sum(w)"], df.groupby("k")["w"].sum().values)
    std0 = ds.groupby("k").std("v", ddof=0).to_pandas()
    np.testing.assert_allclose(std0["std(v)"], df.groupby("k")["v"].std(ddof=0).values)


def test_custom_aggregate_fn_uses_the_generic_path(df, ds):
    total = AggregateFn(init=lambda k: 0, accumulate_row=lambda a, r: a + r["w"],
                        merge=lambda a, b: a + b, name="total")
    got = ds.groupby("k").aggregate(total, Count()).to_pandas()
    np.testing.assert_array_equal(got["total"], df.groupby("k")["w"].sum().values)
    np.testing.assert_array_equal(got["count()"], df.groupby("k").size().values)
    assert ds.aggregate(total) == {"total": df["w"].sum()}
    with pytest.raises(ValueError, match="exactly one of"):
        AggregateFn(init=lambda k: 0, merge=lambda a, b: a)


def test_global_aggregates(df, ds):
    assert ds.sum("w") == df["w"].sum()
    assert ds.min("v") == pytest.approx(df["v"].min())
    assert ds.max("w") == df["w"].max()
    assert ds.mean("v") == pytest.approx(df["v"].mean())
    assert ds.std("v") == pytest.approx(df["v"].std())
    assert ds.std("v", ddof=0) == pytest.approx(df["v"].std(ddof=0))
    assert ds.sum(["w", "k"]) == {"sum(w)": df["w"].sum(), "sum(k)": df["k"].sum()}
    assert sorted(ds.unique("g")) == sorted(df["g"].unique())
    assert ds.aggregate(Count(), Mean("w")) == {"count()": len(df),
                                                "mean(w)": pytest.approx(df["w"].mean())}


def test_aggregates_of_empty_data_and_nulls():
    empty = ed.range(10).filter(lambda r: False)
    assert empty.sum("id") is None and empty.mean("id") is None
    assert empty.aggregate(Count()) == {"count()": 0}
    nulls = ed.from_items([{"x": 1.0}, {"x": None}, {"x": 3.0}])
    assert nulls.sum("x") == 4.0 and nulls.mean("x") == 2.0
    assert nulls.sum("x", ignore_nulls=False) is None
    one = ed.from_items([{"x": 2.0}])
    std = one.std("x")
    assert std is None or math.isnan(std)


def test_map_groups(df, ds):
    def summarize(group):
        return {"k": group["k"][:1], "n": np.array([len(group["k"])]),
                "top": np.array([group["w"].max()])}

    got = ds.groupby("k").map_groups(summarize).to_pandas().sort_values("k")
    expected = df.groupby("k").agg(n=("w", "size"), top=("w", "max")).reset_index()
    np.testing.assert_array_equal(got["n"], expected["n"])
    np.testing.assert_array_equal(got["top"], expected["top"])

    def center(group):
        return group.assign(v=group["v"] - group["v"].mean())

    centered = ds.groupby("g").map_groups(center, batch_format="pandas").to_pandas()
    assert len(centered) == len(df)
    np.testing.assert_allclose(centered.groupby("g")["v"].mean().values, 0, atol=1e-9)


@pytest.mark.parametrize("how, pandas_how", [("inner", "inner"), ("left_outer", "left"),
                                             ("right_outer", "right"),
                                             ("full_outer", "outer")])
def test_join_matches_pandas(how, pandas_how):
    left = pd.DataFrame({"key": np.arange(0, 40), "lv": np.arange(0, 40) * 10})
    right = pd.DataFrame({"key": np.arange(20, 60, 2), "rv": np.arange(20, 60, 2) * -1})
    dl = ed.from_pandas([left[:25], left[25:]])
    dr = ed.from_pandas([right[:7], right[7:14], right[14:]])
    got = dl.join(dr, join_type=how, on=("key",), num_partitions=3).to_pandas()
    expected = left.merge(right, on="key", how=pandas_how)
    got = got.sort_values("key").reset_index(drop=True)[["key", "lv", "rv"]]
    expected = expected.sort_values("key").reset_index(drop=True)[["key", "lv", "rv"]]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
@pytest.mark.parametrize("empty_side", ["left", "right"])
def test_join_with_a_side_without_blocks_matches_pandas(how, empty_side):
    full = pd.DataFrame({"key": np.arange(0, 12), "v": np.arange(0, 12) * 10})
    empty = pd.DataFrame({"key": pd.Series([], dtype="int64")})
    dfull = ed.from_pandas([full[:5], full[5:]])
    dempty = dfull.limit(0)   # no blocks at all, so no schema
    assert dempty.materialize().num_blocks() == 0
    if empty_side == "left":
        got = dempty.join(dfull, join_type=how, on=("key",), num_partitions=2).to_pandas()
        expected = empty.merge(full, on="key", how=how)
    else:
        got = dfull.join(dempty, join_type=how, on=("key",), num_partitions=2).to_pandas()
        expected = full.merge(empty, on="key", how=how)
    assert len(got) == len(expected)
    if len(expected):
        got = got.sort_values("key").reset_index(drop=True)[["key", "v"]]
        expected = expected.sort_values("key").reset_index(drop=True)[["key", "v"]]
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_join_with_different_key_names_and_suffixes():
    a = ed.from_items([{"id": i, "x": i} for i in range(10)])
    b = ed.from_items([{"uid": i, "x": -i} for i in range(5, 15)])
    rows = a.join(b, on=("id",), right_on=("uid",), left_suffix="_l",
                  right_suffix="_r").take_all()
    assert sorted((r["id"], r["x_l"], r["x_r"]) for r in rows) == \
        [(i, i, -i) for i in range(5, 10)]
    with pytest.raises(Exception, match="left_suffix"):
        a.join(b, on=("id",), right_on=("uid",)).take_all()
    with pytest.raises(ValueError, match="join_type"):
        a.join(b, join_type="sideways")


def test_exchange_parts_carry_only_their_rows():
    # A part that is a slice would pickle the whole block: n parts -> n copies.
    import numpy as np
    import pyarrow as pa

    from ember.data._internal.exchange import _shuffle_map, _sort_partition, _unpack

    block = pa.table({"a": np.random.default_rng(0).random(100_000)})
    boundaries = pa.table({"a": [0.25, 0.5, 0.75]})
    for parts in (_shuffle_map(1, 0, 4, block), _sort_partition(block, ["a"], [False],
                                                                boundaries, 4)):
        parts = _unpack(parts)
        assert sum(p.num_rows for p in parts) == 100_000
        assert sum(p.get_total_buffer_size() for p in parts) < 1.1 * block.nbytes


def test_small_exchange_parts_travel_as_ipc_bytes_of_their_own_rows():
    import numpy as np
    import pyarrow as pa

    from ember.data._internal import exchange

    block = pa.table({"a": np.arange(100_000, dtype=np.float64),
                      "s": pa.array([str(i) for i in range(100_000)])})
    parts = exchange._sort_partition(block, ["a"], [False], pa.table({"a": [10.0, 20.0]}), 3)
    small, _, big = parts
    # A small part is bytes holding its own 10 rows, not the block's buffers.
    assert isinstance(small, bytes) and len(small) < 4096
    assert isinstance(big, pa.Table)        # ~1.5 MB: stays a table (out-of-band pickle)
    rows = exchange._unpack(parts)
    assert [p.num_rows for p in rows] == [10, 10, 99_980]
    assert pa.concat_tables(rows).equals(block)


@pytest.mark.parametrize("kind", ["int64", "int8", "float64", "float32"])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_cuts_by_binary_search_match_the_general_cuts(kind, descending):
    # One numeric key takes the binary search; it must cut exactly where sorting the
    # boundaries in with the rows does, ties with a boundary included.
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ember.data._internal.exchange import _order, _searched_cuts, _sorted_cuts

    rng = np.random.default_rng(7)
    values = rng.integers(0, 40, 5000).astype(kind)      # many ties
    order = _order(["k"], [descending])
    block = pa.table({"k": values, "v": np.arange(5000)})
    block = block.take(pc.sort_indices(block, sort_keys=order))
    edges = np.sort(np.concatenate([rng.integers(-5, 45, 9), [0, 17, 39]]).astype(kind))
    bounds = pa.table({"k": edges[::-1] if descending else edges})
    searched = _searched_cuts(block, bounds, ["k"], [descending])
    assert searched is not None
    assert searched == _sorted_cuts(block, bounds, ["k"], order)


def test_sort_cuts_fall_back_for_nulls_nans_strings_and_several_keys():
    import pyarrow as pa

    from ember.data._internal.exchange import _searched_cuts

    bounds = pa.table({"k": [1.5]})
    assert _searched_cuts(pa.table({"k": [1.0, None]}), bounds, ["k"], [False]) is None
    assert _searched_cuts(pa.table({"k": [1.0, float("nan")]}), bounds, ["k"], [False]) is None
    assert _searched_cuts(pa.table({"k": ["a", "b"]}), pa.table({"k": ["a"]}), ["k"],
                          [False]) is None
    assert _searched_cuts(pa.table({"k": [1.0], "j": [2.0]}), pa.table({"k": [1.0], "j": [1.0]}),
                          ["k", "j"], [False, False]) is None


def test_shuffle_map_groups_small_blocks_but_keeps_parallelism():
    from ember.data._internal.exchange import plan_map_groups

    mib = 1 << 20
    # 32 blocks of 3 MiB into 32 outputs: one block per map task would write 1024 parts
    # of ~100 KiB; 4 tasks (the parallelism floor) write 128 of ~800 KiB.
    groups = plan_map_groups([3 * mib] * 32, 32, min_tasks=4)
    assert [len(g) for g in groups] == [8] * 4
    assert sum(groups, []) == list(range(32))
    # Big blocks: one map task each (parts are >= 1 MiB already).
    assert len(plan_map_groups([64 * mib] * 32, 32, min_tasks=4)) == 32
    # Never more tasks than blocks, never a task over the input cap.
    assert plan_map_groups([10] * 3, 3, min_tasks=8) == [[0], [1], [2]]
    assert len(plan_map_groups([mib] * 100, 1, min_tasks=1, min_part_bytes=64 * mib,
                               max_input_bytes=10 * mib)) == 10
    assert plan_map_groups([], 4, min_tasks=2) == []


def test_shuffle_map_of_several_blocks_sends_each_row_to_one_part():
    import pyarrow as pa

    from ember.data._internal.exchange import _shuffle_map, _unpack

    blocks = [pa.table({"id": np.arange(i * 1000, (i + 1) * 1000),
                        "s": [str(v) for v in range(1000)]}) for i in range(3)]
    parts = _unpack(_shuffle_map(7, 0, 5, *blocks))
    assert len(parts) == 5
    ids = np.concatenate([p.column("id").to_numpy() for p in parts])
    assert sorted(ids.tolist()) == list(range(3000))
    assert all(p.column("s").to_pylist() == [str(v % 1000) for v in
                                             p.column("id").to_pylist()] for p in parts)
    again = _unpack(_shuffle_map(7, 0, 5, *blocks))
    assert [p.column("id").to_pylist() for p in parts] == \
        [p.column("id").to_pylist() for p in again]
    assert _unpack((_shuffle_map(7, 0, 1, *blocks),))[0].num_rows == 3000
    assert [p.num_rows for p in _shuffle_map(7, 0, 3, blocks[0].slice(0, 0))] == [0, 0, 0]


def test_shuffle_parts_by_scatter_equal_the_parts_by_take():
    # Numeric columns without nulls are grouped by one scatter per column; each part
    # must be exactly what a take of its indices gives, schema included.
    import pyarrow as pa

    from ember.data._internal.exchange import _scattered_parts

    rng = np.random.default_rng(3)
    block = pa.table({"i8": rng.integers(-100, 100, 5000).astype(np.int8),
                      "u32": rng.integers(0, 1 << 31, 5000).astype(np.uint32),
                      "f32": rng.random(5000).astype(np.float32),
                      "f64": rng.random(5000)},
                     metadata={b"origin": b"test"})
    part_of = rng.integers(0, 7, 5000)
    order = np.argsort(part_of, kind="stable")
    ends = np.cumsum(np.bincount(part_of, minlength=7))
    starts = ends - np.bincount(part_of, minlength=7)
    parts = _scattered_parts(block, order, starts, ends)
    assert parts is not None and len(parts) == 7
    for part, a, b in zip(parts, starts, ends):
        assert part.equals(block.take(pa.array(order[a:b])), check_metadata=True)
        assert part.get_total_buffer_size() == part.nbytes   # only its own rows
    # Anything the scatter cannot carry falls back to takes.
    for other in (pa.table({"x": [1.0, None, 3.0]}), pa.table({"s": ["a", "b", "c"]}),
                  pa.table({"b": [True, False, True]}),
                  pa.concat_tables([pa.table({"x": [1, 2]}), pa.table({"x": [3]})])):
        assert _scattered_parts(other, np.array([2, 0, 1]), np.array([0, 1]),
                                np.array([1, 3])) is None


def test_random_shuffle_of_many_small_blocks_is_a_permutation():
    many = ed.range(2000, override_num_blocks=40)
    out = many.random_shuffle(seed=5)
    ids = [r["id"] for r in out.take_all()]
    assert sorted(ids) == list(range(2000)) and ids != list(range(2000))
    assert out.num_blocks() == 40
    assert [r["id"] for r in many.random_shuffle(seed=5).take_all()] == ids

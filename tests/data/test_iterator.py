"""DataIterator: iter_batches (sizes, formats, drop_last, local shuffle, prefetch),
iter_rows and iter_torch_batches."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import ember.data as ed


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


@pytest.fixture(scope="module")
def ds():
    return ed.range(1000, override_num_blocks=7).map_batches(
        lambda b: {"id": b["id"], "x": b["id"] * 0.5}, batch_size=None).materialize()


@pytest.mark.parametrize("prefetch", [0, 1, 4])
def test_batches_have_exact_sizes_across_blocks(ds, prefetch):
    sizes = [len(b["id"]) for b in ds.iter_batches(batch_size=64, prefetch_batches=prefetch)]
    assert sizes == [64] * 15 + [40]
    assert [len(b["id"]) for b in ds.iter_batches(batch_size=64, drop_last=True)] == [64] * 15
    whole = [len(b["id"]) for b in ds.iter_batches(batch_size=None)]
    assert sum(whole) == 1000 and len(whole) == 7


def test_batch_formats(ds):
    assert isinstance(next(iter(ds.iter_batches(batch_format="pandas"))), pd.DataFrame)
    assert isinstance(next(iter(ds.iter_batches(batch_format="pyarrow"))), pa.Table)
    batch = next(iter(ds.iter_batches(batch_format="numpy", batch_size=8)))
    assert set(batch) == {"id", "x"} and batch["x"].dtype == np.float64
    with pytest.raises(ValueError, match="batch_size"):
        next(iter(ds.iter_batches(batch_size=0)))


def test_all_rows_once_in_dataset_order_for_materialized_data(ds):
    got = np.concatenate([b["id"] for b in ds.iter_batches(batch_size=100)])
    assert got.tolist() == list(range(1000))
    assert [r["id"] for r in ds.iter_rows()] == list(range(1000))


def test_local_shuffle(ds):
    batches = list(ds.iter_batches(batch_size=50, local_shuffle_buffer_size=200,
                                   local_shuffle_seed=0))
    got = np.concatenate([b["id"] for b in batches])
    assert sorted(got.tolist()) == list(range(1000))
    assert got.tolist() != list(range(1000))
    assert all(len(b["id"]) == 50 for b in batches)
    again = np.concatenate([b["id"] for b in ds.iter_batches(
        batch_size=50, local_shuffle_buffer_size=200, local_shuffle_seed=0)])
    assert again.tolist() == got.tolist()
    dropped = list(ds.iter_batches(batch_size=300, local_shuffle_buffer_size=100,
                                   drop_last=True))
    assert [len(b["id"]) for b in dropped] == [300] * 3


def test_iterator_object_and_early_stop(ds):
    it = ds.iterator()
    assert "Materialized" in repr(it)
    first = next(iter(it.iter_batches(batch_size=10)))
    assert len(first["id"]) == 10
    lazy = ed.range(100_000, override_num_blocks=50).map_batches(lambda b: b)
    for i, _ in enumerate(lazy.iter_batches(batch_size=10)):
        if i == 3:
            break                  # stops the execution; nothing hangs
    assert lazy.iterator().materialize().count() == 100_000


def test_iter_torch_batches(ds):
    torch = pytest.importorskip("torch")
    batches = list(ds.iter_torch_batches(batch_size=250, dtypes=torch.float32))
    assert len(batches) == 4
    assert batches[0]["x"].dtype == torch.float32 and batches[0]["id"].dtype == torch.float32
    total = sum(float(b["x"].sum()) for b in batches)
    assert total == pytest.approx(0.5 * 999 * 1000 / 2)
    per_col = next(iter(ds.iter_torch_batches(batch_size=4, dtypes={"id": torch.int32})))
    assert per_col["id"].dtype == torch.int32 and per_col["x"].dtype == torch.float64

    def collate(batch):
        return torch.as_tensor(np.stack([batch["id"], batch["x"]], axis=1))

    stacked = next(iter(ds.iter_torch_batches(batch_size=8, collate_fn=collate)))
    assert tuple(stacked.shape) == (8, 2)
    strings = ed.from_items([{"s": "a"}])
    with pytest.raises(TypeError, match="Python objects"):
        next(iter(strings.iter_torch_batches()))

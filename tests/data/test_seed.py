"""The seed's pipeline end to end: read a NYC-taxi-like Parquet file,
train_test_split(test_size=0.3), repartition(num_blocks=5), streaming_split(2)
consumed by two training actors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ember
import ember.data as ed


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


@pytest.fixture(scope="module")
def taxi(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 5000
    pickup = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 31 * 86400, n), "s")
    df = pd.DataFrame({
        "trip_id": np.arange(n),
        "tpep_pickup_datetime": pickup,
        "passenger_count": rng.integers(1, 6, n),
        "trip_distance": rng.gamma(2.0, 1.5, n).round(2),
        "payment_type": rng.choice(["card", "cash", "other"], n, p=[0.7, 0.25, 0.05]),
        "fare_amount": rng.gamma(3.0, 5.0, n).round(2),
        "tip_amount": rng.gamma(1.0, 2.0, n).round(2),
    })
    path = tmp_path_factory.mktemp("taxi") / "yellow_tripdata_2024-01.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=500)
    return path, df


@ember.remote
class TrainWorker:
    def train(self, shard, epochs):
        seen, fare_sum = [], 0.0
        for _ in range(epochs):
            for batch in shard.iter_batches(batch_size=128, batch_format="numpy"):
                seen.extend(int(t) for t in batch["trip_id"])
                fare_sum += float(batch["fare_amount"].sum())
        return seen, fare_sum


@pytest.mark.timeout(90)
def test_seed_pipeline(taxi):
    path, df = taxi
    ds = ed.read_parquet(str(path))
    assert ds.count() == len(df)
    assert ds.schema().names == list(df.columns)
    train, test = ds.train_test_split(test_size=0.3)
    assert (train.count(), test.count()) == (3500, 1500)
    train = train.repartition(num_blocks=5)
    assert train.num_blocks() == 5
    shards = train.streaming_split(2, equal=True)
    workers = [TrainWorker.remote(), TrainWorker.remote()]
    results = ember.get([w.train.remote(s, 1) for w, s in zip(workers, shards)], timeout=60)
    (ids_a, fare_a), (ids_b, fare_b) = results
    assert len(ids_a) == len(ids_b) == 1750
    assert not set(ids_a) & set(ids_b)
    train_ids = set(ids_a) | set(ids_b)
    test_ids = {r["trip_id"] for r in test.take_all()}
    assert not train_ids & test_ids and len(train_ids | test_ids) == len(df)
    expected = df.set_index("trip_id").loc[sorted(train_ids), "fare_amount"].sum()
    assert fare_a + fare_b == pytest.approx(expected)
    for w in workers:
        ember.kill(w)


def test_taxi_features_match_pandas(taxi):
    path, df = taxi
    ds = ed.read_parquet(str(path))
    tips = ds.filter(lambda r: r["payment_type"] == "card").map_batches(
        lambda b: b.assign(tip_pct=b["tip_amount"] / b["fare_amount"]),
        batch_format="pandas")
    got = tips.groupby("passenger_count").mean("tip_pct").to_pandas()
    card = df[df.payment_type == "card"]
    expected = (card.tip_amount / card.fare_amount).groupby(card.passenger_count).mean()
    np.testing.assert_allclose(got["mean(tip_pct)"], expected.values)
    assert ds.select_columns(["fare_amount"]).sum("fare_amount") == \
        pytest.approx(df.fare_amount.sum())
    assert ds.input_files() == [str(path)]

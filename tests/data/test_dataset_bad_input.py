"""Bad input: UDF errors, skipped blocks, wrong return types, bad arguments."""
from __future__ import annotations

import pytest

import ember
import ember.data as ed
from ember.data.exceptions import UserCodeException


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


def parse_price(row):
    if row["id"] == 13:
        raise ValueError(f"cannot parse price of row {row['id']}")
    return {"id": row["id"], "price": row["id"] * 1.5}


def test_udf_error_names_the_operator_and_shows_the_user_traceback():
    with pytest.raises(UserCodeException) as info:
        ed.range(50, override_num_blocks=5).map(parse_price).take_all()
    message = str(info.value)
    assert "Map(parse_price)" in message and info.value.operator.endswith("Map(parse_price)")
    assert "ValueError" in message and "cannot parse price of row 13" in message
    assert "in parse_price" in message                 # the user's frame
    assert "transforms.py\", line" not in message.split("in parse_price")[1]
    # The cause is the task error, which is also a ValueError.
    assert isinstance(info.value.__cause__, ValueError)


def test_udf_error_in_map_batches_on_an_actor_pool():
    class Model:
        def __call__(self, batch):
            if 7 in batch["id"]:
                raise KeyError("feature missing for id 7")
            return batch

    with pytest.raises(UserCodeException, match="MapBatches\\(Model\\)") as info:
        ed.range(20).map_batches(Model, concurrency=1, batch_size=5).take_all()
    assert "feature missing for id 7" in str(info.value)


def test_constructor_error_of_an_actor_pool_udf():
    class Broken:
        def __init__(self):
            raise RuntimeError("model file not found")

        def __call__(self, batch):
            return batch

    with pytest.raises(Exception, match="model file not found"):
        ed.range(4).map_batches(Broken, concurrency=1).take_all()


def test_max_errored_blocks_skips_failing_blocks(ctx):
    ctx.max_errored_blocks = 1
    rows = ed.range(50, override_num_blocks=5).map(parse_price).take_all()
    assert len(rows) == 40                            # the block with row 13 is skipped
    assert 13 not in {r["id"] for r in rows}
    ctx.max_errored_blocks = 0
    with pytest.raises(UserCodeException):
        ed.range(50, override_num_blocks=5).map(parse_price).take_all()


def test_max_errored_blocks_limit_is_enforced(ctx):
    ctx.max_errored_blocks = 1

    def fail_even_blocks(batch):
        if batch["id"][0] % 20 == 0:
            raise ValueError("even block")
        return batch

    with pytest.raises(UserCodeException, match="even block"):
        ed.range(100, override_num_blocks=10).map_batches(fail_even_blocks,
                                                           batch_size=None).take_all()
    ctx.max_errored_blocks = -1
    rows = ed.range(100, override_num_blocks=10).map_batches(fail_even_blocks,
                                                              batch_size=None).take_all()
    assert len(rows) == 50


def test_wrong_return_types_say_what_was_expected():
    with pytest.raises(UserCodeException, match="must return a dict"):
        ed.range(3).map(lambda r: r["id"]).take_all()
    with pytest.raises(UserCodeException, match="must return a pyarrow.Table, a pandas"):
        ed.range(3).map_batches(lambda b: [1, 2, 3]).take_all()
    with pytest.raises(UserCodeException, match="returned None"):
        ed.range(3).map_batches(lambda b: None).take_all()
    with pytest.raises(UserCodeException, match="list .* of dicts"):
        ed.range(3).flat_map(lambda r: r).take_all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="limit"):
        ed.range(3).limit(-1)
    with pytest.raises(ValueError, match="num_blocks"):
        ed.range(3).repartition(0)
    with pytest.raises(ValueError, match="n must be"):
        ed.range(3).split(0)
    with pytest.raises(ValueError, match="sorted"):
        ed.range(3).split_at_indices([2, 1])
    with pytest.raises(ValueError, match="test_size"):
        ed.range(3).train_test_split(test_size=1.5)
    with pytest.raises(ValueError, match="more than"):
        ed.range(3).train_test_split(test_size=10)
    with pytest.raises(TypeError, match="Datasource"):
        ed.read_datasource("not a datasource")
    with pytest.raises(ValueError, match="range"):
        ed.range(-1)
    with pytest.raises(Exception, match="no column"):
        ed.range(3).select_columns(["nope"]).take_all()


def test_missing_columns_in_aggregations():
    with pytest.raises(Exception, match="no column 'nope'"):
        ed.range(10).sum("nope")
    with pytest.raises(Exception, match="no column"):
        ed.range(10).groupby("nope").count().take_all()


def test_dataset_used_after_shutdown_gives_a_clear_error():
    from ember.data.exceptions import DatasetSessionError
    lazy = ed.range(10)
    materialized = ed.range(10).materialize()
    ember.shutdown()
    try:
        for ds in (lazy, materialized):
            with pytest.raises(DatasetSessionError, match="ember.shutdown"):
                ds.take_all()
    finally:
        ember.init(num_cpus=2, log_to_driver=True)    # the module's cluster, back again
    with pytest.raises(DatasetSessionError, match="another Ember session"):
        materialized.take_all()
    assert ed.range(3).count() == 3                   # new datasets work

"""split/streaming_split(locality_hints=...) on a real two-node Cluster: blocks go to the
part (consumer) on their own node."""
from __future__ import annotations

import time

import pyarrow as pa
import pytest

import ember
import ember.data as ed
from ember.testing import connected_cluster

ROWS = 20_000  # 160 KB of int64 per block: above the inline limit, so in shared memory


@pytest.fixture(scope="module")
def two_nodes():
    with connected_cluster({"num_cpus": 1, "resources": {"at_a": 10}},
                           [{"num_cpus": 1, "resources": {"at_b": 10}}]) as (cluster, [b]):
        yield {"a": cluster.head_node.node_id, "b": b.node_id}


@ember.remote
def make_block(tag: str, start: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + ROWS), pa.int64()),
                     "node": [tag] * ROWS})


def _dataset(order: str) -> ed.Dataset:
    refs = [make_block.options(resources={f"at_{tag}": 1}).remote(tag, i * ROWS)
            for i, tag in enumerate(order)]
    ember.wait(refs, num_returns=len(refs), timeout=60)
    return ed.from_arrow_refs(refs)


def _tags(ds: ed.Dataset) -> list[str]:
    return [r["node"] for r in ds.select_columns(["node"]).take_all()]


def test_split_gives_each_part_the_blocks_on_its_node(two_nodes):
    ds = _dataset("abababab")
    for equal in (False, True):
        first, second = ds.split(2, equal=equal,
                                 locality_hints=[two_nodes["a"], two_nodes["b"]])
        assert set(_tags(first)) == {"a"} and set(_tags(second)) == {"b"}
        assert first.count() == second.count() == 4 * ROWS


def test_split_takes_actor_handles_as_hints(two_nodes):
    @ember.remote(num_cpus=0)
    class Holder:
        pass

    on_b = Holder.options(resources={"at_b": 1}).remote()
    on_a = Holder.options(resources={"at_a": 1}).remote()
    first, second = _dataset("abab").split(2, locality_hints=[on_b, on_a])
    assert set(_tags(first)) == {"b"} and set(_tags(second)) == {"a"}
    for h in (on_a, on_b):
        ember.kill(h)


@ember.remote(num_cpus=0)
class Consumer:
    def ready(self) -> bool:
        return True

    def tags(self, it, pace_s: float = 0.0) -> list[str]:
        out = []
        for batch in it.iter_batches(batch_size=None, batch_format="pandas"):
            out += batch["node"].tolist()
            time.sleep(pace_s)
        return out


def test_streaming_split_feeds_each_consumer_from_its_node(two_nodes):
    # Blocks ordered so that first-come-first-served would hand b's consumer a's blocks.
    ds = _dataset("aaabbb")
    consumers = [Consumer.options(resources={f"at_{t}": 1}).remote() for t in "ab"]
    # Both consumers up, and reading at the same pace: with equal=False a consumer that
    # started late (a busy machine) would rightly leave its blocks to the other one.
    ember.get([c.ready.remote() for c in consumers], timeout=60)
    its = ds.streaming_split(2, locality_hints=[two_nodes["a"], two_nodes["b"]])
    got = ember.get([c.tags.remote(it, 0.3) for c, it in zip(consumers, its)], timeout=60)
    assert len(got[0]) + len(got[1]) == 6 * ROWS
    for want, tags in zip("ab", got):
        local = sum(t == want for t in tags) / max(1, len(tags))
        assert local >= 2 / 3, f"consumer on {want} got {local:.0%} local rows"
    for c in consumers:
        ember.kill(c)

"""split, split_at_indices, split_proportionately, train_test_split, streaming_split."""
from __future__ import annotations

import pytest

import ember
import ember.data as ed


@pytest.fixture(scope="module", autouse=True)
def _cluster(cluster):
    yield cluster


def ids(ds):
    return sorted(r["id"] for r in ds.take_all())


def test_split_at_indices_gives_contiguous_parts():
    ds = ed.range(100, override_num_blocks=7)
    parts = ds.split_at_indices([10, 55, 55, 200])
    assert [p.count() for p in parts] == [10, 45, 0, 45, 0]
    assert ids(parts[0]) == list(range(10)) and ids(parts[1]) == list(range(10, 55))
    assert ids(parts[3]) == list(range(55, 100))
    assert all(isinstance(p, ed.MaterializedDataset) for p in parts)


def test_split_equal_and_unequal():
    ds = ed.range(103, override_num_blocks=4)
    parts = ds.split(4)
    assert sum(p.count() for p in parts) == 103
    assert max(p.count() for p in parts) - min(p.count() for p in parts) <= 1
    assert sorted(i for p in parts for i in ids(p)) == list(range(103))
    equal = ds.split(4, equal=True)
    assert [p.count() for p in equal] == [25] * 4
    assert len({i for p in equal for i in ids(p)}) == 100


def test_split_proportionately():
    parts = ed.range(50).split_proportionately([0.2, 0.5])
    assert [p.count() for p in parts] == [10, 25, 15]
    with pytest.raises(ValueError, match="proportions"):
        ed.range(50).split_proportionately([0.5, 0.6])


def test_train_test_split():
    ds = ed.range(1000, override_num_blocks=8)
    train, test = ds.train_test_split(test_size=0.3)
    assert (train.count(), test.count()) == (700, 300)
    assert ids(test) == list(range(700, 1000))       # no shuffle: the last rows
    train, test = ds.train_test_split(test_size=0.25, shuffle=True, seed=1)
    assert (train.count(), test.count()) == (750, 250)
    assert sorted(ids(train) + ids(test)) == list(range(1000))
    assert ids(test) != list(range(750, 1000))
    train2, test2 = ds.train_test_split(test_size=0.25, shuffle=True, seed=1)
    assert ids(test2) == ids(test)
    train, test = ds.train_test_split(test_size=100)
    assert (train.count(), test.count()) == (900, 100)


@ember.remote
class Trainer:
    """A training worker: consumes its DataIterator for a few epochs."""

    def fit(self, it, epochs, batch_size):
        seen = []
        for _ in range(epochs):
            epoch = []
            for batch in it.iter_batches(batch_size=batch_size):
                epoch.extend(int(i) for i in batch["id"])
            seen.append(epoch)
        return seen


@pytest.mark.timeout(60)
@pytest.mark.parametrize("equal", [True, False])
def test_streaming_split_consumed_by_two_actors(equal):
    ds = ed.range(1003, override_num_blocks=10).map_batches(lambda b: b)
    its = ds.streaming_split(2, equal=equal)
    trainers = [Trainer.remote(), Trainer.remote()]
    results = ember.get([t.fit.remote(it, 2, 50) for t, it in zip(trainers, its)], timeout=50)
    for epoch in range(2):
        a, b = results[0][epoch], results[1][epoch]
        assert not set(a) & set(b)                   # disjoint parts
        if equal:
            assert len(a) == len(b) == 501
            assert len(set(a) | set(b)) == 1002
        else:
            assert sorted(a + b) == list(range(1003))
    for t in trainers:
        ember.kill(t)


@pytest.mark.timeout(60)
def test_streaming_split_from_driver_threads_and_error_propagation():
    import threading

    def fail(batch):
        if 500 in batch["id"]:
            raise ValueError("corrupt record 500")
        return batch

    its = ed.range(1000, override_num_blocks=10).map_batches(fail).streaming_split(2)
    errors = []

    def consume(it):
        try:
            for _ in it.iter_batches():
                pass
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=consume, args=(it,)) for it in its]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=50)
    assert errors and all("corrupt record 500" in str(e) for e in errors)


def test_locality_hints_keep_sizes_and_rows_on_one_node():
    # One node: every block is local to both parts, so sizes decide; nothing is lost.
    here = ember.get_runtime_context().get_node_id()
    ds = ed.range(103, override_num_blocks=6)
    parts = ds.split(2, locality_hints=[here, here])
    assert [p.count() for p in parts] == [p.count() for p in ds.split(2)]
    assert sorted(i for p in parts for i in ids(p)) == list(range(103))
    equal = ds.split(2, equal=True, locality_hints=[here, "unknown-node"])
    assert [p.count() for p in equal] == [51, 51]
    its = ds.streaming_split(2, equal=True, locality_hints=[here, here])
    trainers = [Trainer.remote(), Trainer.remote()]
    got = [r[0] for r in ember.get([t.fit.remote(it, 1, 10) for t, it in zip(trainers, its)],
                                   timeout=50)]
    assert [len(g) for g in got] == [51, 51] and len(set(got[0]) | set(got[1])) == 102
    for t in trainers:
        ember.kill(t)


def test_locality_hints_accept_actor_handles():
    @ember.remote(num_cpus=0)
    class Holder:
        pass

    holders = [Holder.remote(), Holder.remote()]
    parts = ed.range(20, override_num_blocks=4).split(2, locality_hints=holders)
    assert sorted(i for p in parts for i in ids(p)) == list(range(20))
    for h in holders:
        ember.kill(h)


@pytest.mark.parametrize("hints", [["a"], "ab", [1, 2], ["", "b"]])
def test_bad_locality_hints(hints):
    ds = ed.range(10)
    with pytest.raises(ValueError, match="locality_hints|locality hint"):
        ds.split(2, locality_hints=hints)
    with pytest.raises(ValueError, match="locality_hints|locality hint"):
        ds.streaming_split(2, locality_hints=hints)

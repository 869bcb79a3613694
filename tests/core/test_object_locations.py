"""``ember.experimental.get_object_locations`` on one node: owned, borrowed, inline objects."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.exceptions import GetTimeoutError
from ember.experimental import get_object_locations


@pytest.fixture(scope="module")
def cluster():
    if ember.is_initialized():
        ember.shutdown()
    ember.init(num_cpus=2)
    yield ember.get_runtime_context().get_node_id()
    ember.shutdown()


@ember.remote
def big():
    return np.arange(1_000_000)


@ember.remote
def locate(refs):
    return get_object_locations(refs)


@ember.remote
def slow():
    import time
    time.sleep(30)


def test_owned_objects_in_shared_memory_are_on_this_node(cluster):
    put_ref, task_ref = ember.put(np.zeros(1_000_000)), big.remote()
    got = get_object_locations([put_ref, task_ref])
    assert got[put_ref]["node_ids"] == [cluster]
    assert got[task_ref]["node_ids"] == [cluster]
    assert got[put_ref]["object_size"] >= 8_000_000
    assert got[task_ref]["did_spill"] is False


def test_inline_objects_have_no_node_copies(cluster):
    ref = ember.put(1)
    assert get_object_locations([ref])[ref]["node_ids"] == []


def test_a_borrower_asks_the_owner(cluster):
    put_ref, small = ember.put(np.zeros(1_000_000)), ember.put("x")
    mine = get_object_locations([put_ref, small])
    theirs = ember.get(locate.remote([put_ref, small]), timeout=60)
    assert {r.hex(): v for r, v in theirs.items()} == {r.hex(): v for r, v in mine.items()}


def test_times_out_on_an_object_not_ready(cluster):
    ref = slow.remote()
    with pytest.raises(GetTimeoutError, match="timeout_ms"):
        get_object_locations([ref], timeout_ms=100)
    ember.cancel(ref, force=True)


@pytest.mark.parametrize("bad", [None, "ref", [1, 2]])
def test_bad_input(cluster, bad):
    with pytest.raises(TypeError, match="list of ObjectRefs"):
        get_object_locations(bad)

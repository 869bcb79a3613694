"""Object store capacity and spilling to disk, on real clusters (issue #5, "Fault tolerance and memory").

Each test fills a small store (64 MiB) for real: objects past the capacity are
written to `session_*/spill/<node_id>/` and come back intact on `get`, as task
arguments, and when another node pulls them.
"""
from __future__ import annotations

import glob
import hashlib
import os
import time

import ember
import numpy as np
import pytest
from ember._private import worker_state
from ember._private.object_spiller import spill_dir
from ember._private.protos import ember_pb2 as pb
from ember._private.resources import total_memory_bytes
from ember.exceptions import ObjectStoreFullError
from ember.testing import session_dir, wait_for_condition

MiB = 1 << 20
STORE = 64 * MiB


def _payload(seed: int, nbytes: int) -> np.ndarray:
    # Random, so a restore that mixed up objects or bytes cannot go unnoticed.
    return np.random.default_rng(seed).integers(0, 1 << 62, nbytes // 8, dtype=np.int64)


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha1(memoryview(arr).cast("B")).hexdigest()


@ember.remote
def make(seed: int, nbytes: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << 62, nbytes // 8, dtype=np.int64)


@ember.remote
def digest(arr: np.ndarray) -> str:
    return hashlib.sha1(memoryview(arr).cast("B")).hexdigest()


def _status(address: str | None = None) -> pb.NodeStatus:
    core = worker_state.core
    stub = core.node_manager if address is None else core.node_manager_stub(address)
    return stub.GetStatus(pb.Empty(), timeout=30)


def _spill_files(session: str, node_id: str) -> list[str]:
    return glob.glob(os.path.join(spill_dir(session, node_id), "*"))


def _in_shm(node, ref) -> bool:
    return os.path.exists(os.path.join(node.shm_dir, node.shm_prefix + ref.hex()))


@pytest.fixture
def small_store(monkeypatch):
    if ember.is_initialized():
        ember.shutdown()
    # A full store of pinned objects refuses a put after this long (default 5 s).
    monkeypatch.setenv("EMBER_OBJECT_STORE_FULL_WAIT_S", "1")
    info = ember.init(num_cpus=2, object_store_memory=STORE, log_to_driver=False)
    yield info
    ember.shutdown()


@pytest.mark.timeout(600)
def test_spilling_ten_times_the_store_returns_every_object_intact(small_store):
    sizes = [(2 + i % 5) * MiB for i in range(160)]       # 2-6 MiB, 640 MiB in all
    assert sum(sizes) == 10 * STORE
    refs, digests = [], []
    for i, size in enumerate(sizes):
        # Half put by the driver, half returned by tasks (written by the workers).
        refs.append(make.remote(i, size) if i % 2 else ember.put(_payload(i, size)))
        digests.append(_digest(_payload(i, size)))
    ready, _ = ember.wait(refs, num_returns=len(refs), timeout=300, fetch_local=False)
    assert len(ready) == len(refs)
    st = _status()
    assert st.store_capacity_bytes == STORE
    assert st.store_used_bytes <= STORE
    assert st.store_total_spilled_bytes >= sum(sizes) - STORE
    assert _spill_files(session_dir(), ember.get_runtime_context().get_node_id())

    for i, (ref, want) in enumerate(zip(refs, digests)):
        value = ember.get(ref, timeout=120)
        assert value.nbytes == sizes[i] and _digest(value) == want, f"object {i} differs"
        del value
    st = _status()
    assert st.store_total_restored_bytes >= sum(sizes) - STORE
    assert st.store_used_bytes <= STORE


def test_restore_in_a_task_argument(small_store):
    refs = [ember.put(_payload(i, 16 * MiB)) for i in range(6)]   # 96 MiB: the first spill
    wait_for_condition(lambda: _status().store_num_spilled >= 2, timeout=30)
    before = _status().store_total_restored_bytes
    assert ember.get(digest.remote(refs[0]), timeout=120) == _digest(_payload(0, 16 * MiB))
    assert ember.get([digest.remote(r) for r in refs], timeout=120) == [
        _digest(_payload(i, 16 * MiB)) for i in range(6)]
    assert _status().store_total_restored_bytes > before


def test_spill_files_go_when_refs_are_dropped_and_at_shutdown(small_store):
    session = session_dir()
    node_id = ember.get_runtime_context().get_node_id()
    refs = [ember.put(_payload(i, 8 * MiB)) for i in range(16)]     # 128 MiB
    wait_for_condition(lambda: len(_spill_files(session, node_id)) >= 8, timeout=30)
    # Restored objects keep their disk copy: freeing must remove those too.
    assert _digest(ember.get(refs[0])) == _digest(_payload(0, 8 * MiB))
    del refs
    wait_for_condition(lambda: _spill_files(session, node_id) == [], timeout=30,
                       message="spill files outlived their objects")
    st = _status()
    assert st.store_num_spilled == 0 and st.store_spilled_bytes == 0

    refs = [ember.put(_payload(i, 8 * MiB)) for i in range(16)]
    wait_for_condition(lambda: len(_spill_files(session, node_id)) >= 8, timeout=30)
    ember.shutdown()
    assert not os.path.exists(os.path.join(session, "spill", node_id))
    del refs


def test_object_larger_than_the_store_raises_object_store_full(small_store):
    t0 = time.monotonic()
    with pytest.raises(ObjectStoreFullError, match="cannot fit in the object store") as info:
        ember.put(np.zeros(STORE // 8 + 1024))
    assert time.monotonic() - t0 < 30       # refused at once, not after waiting
    assert "object_store_memory" in str(info.value)
    # A task returning one fails with the same error.
    with pytest.raises(ObjectStoreFullError, match="cannot fit"):
        ember.get(make.remote(0, STORE + MiB), timeout=120)
    # The store still works.
    assert ember.get(ember.put(_payload(1, 8 * MiB))).nbytes == 8 * MiB


def test_store_full_of_objects_in_use_raises_until_they_are_released(small_store):
    refs = [ember.put(_payload(i, 16 * MiB)) for i in range(3)]      # 48 MiB
    held = ember.get(refs)            # zero-copy arrays: these objects are pinned
    with pytest.raises(ObjectStoreFullError, match="in use"):
        ember.put(_payload(9, 20 * MiB))
    assert [_digest(a) for a in held] == [_digest(_payload(i, 16 * MiB)) for i in range(3)]
    del held
    ref = ember.put(_payload(9, 20 * MiB))       # now one of them can go to disk
    assert _digest(ember.get(ref)) == _digest(_payload(9, 20 * MiB))


@pytest.mark.timeout(300)
def test_restore_when_another_node_pulls_the_object():
    from ember.cluster_utils import Cluster

    if ember.is_initialized():
        ember.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": STORE, "resources": {"A": 1}})
    try:
        other = cluster.add_node(num_cpus=1, object_store_memory=STORE, resources={"B": 1})
        cluster.wait_for_nodes()
        cluster.connect()
        head = cluster.head_node
        refs = [make.options(resources={"A": 1}).remote(i, 16 * MiB) for i in range(6)]
        ready, _ = ember.wait(refs, num_returns=6, timeout=120, fetch_local=False)
        assert len(ready) == 6
        first = refs[0]
        wait_for_condition(lambda: not _in_shm(head, first), timeout=30,
                           message="the oldest object was not spilled on the head")
        assert _spill_files(cluster.session_dir, head.node_id)
        # B pulls it: the head serves it from its spill file.
        on_b = digest.options(resources={"B": 1})
        assert ember.get(on_b.remote(refs[0]), timeout=120) == _digest(_payload(0, 16 * MiB))
        assert ember.get([on_b.remote(r) for r in refs], timeout=240) == [
            _digest(_payload(i, 16 * MiB)) for i in range(6)]
        # B's store had to spill its copies as well.
        st = _status(other.address)
        assert st.store_capacity_bytes == STORE and st.store_total_spilled_bytes > 0
        assert _spill_files(cluster.session_dir, other.node_id)
        # A node that dies leaves no spill files behind.
        cluster.remove_node(other, allow_graceful=False)
        assert not os.path.exists(spill_dir(cluster.session_dir, other.node_id))
        # The driver (on the head) restores locally.
        assert _digest(ember.get(refs[0], timeout=120)) == _digest(_payload(0, 16 * MiB))
        del refs
    finally:
        ember.shutdown()
        session = cluster.session_dir
        cluster.shutdown()
    assert not glob.glob(os.path.join(session, "spill", "*", "*"))


def test_default_capacity_is_30_percent_of_memory(fresh):
    fresh.init(num_cpus=1, log_to_driver=False)
    expected = min(int(total_memory_bytes() * 0.3), 200 * 10**9)
    assert _status().store_capacity_bytes == expected
    assert fresh.cluster_resources()["object_store_memory"] == expected


@pytest.mark.parametrize("value", [0, -1, 1.5, 64e6, "1GB", True, float("nan")])
def test_bad_object_store_memory_values_are_refused(fresh, value):
    from ember.cluster_utils import Cluster

    with pytest.raises(ValueError, match=r"object_store_memory=.*whole number of bytes > 0"):
        fresh.init(num_cpus=1, object_store_memory=value)
    assert not fresh.is_initialized()
    with pytest.raises(ValueError, match="object_store_memory"):
        Cluster(initialize_head=True, head_node_args={"object_store_memory": value},
                shutdown_at_exit=False)
    cluster = Cluster(shutdown_at_exit=False)
    with pytest.raises(ValueError, match="object_store_memory"):
        cluster.add_node(object_store_memory=value)
    assert cluster.head_node is None

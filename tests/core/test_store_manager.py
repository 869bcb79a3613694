"""store_manager.StoreManager: room, spilling and restoring on real files, without processes."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from ember._private.object_spiller import ObjectSpiller
from ember._private.shm_store import ShmStore
from ember._private.store_manager import StoreFull, StoreManager

KiB = 1 << 10


@pytest.fixture
def store(tmp_path):
    s = ShmStore(str(tmp_path / "shm"), "ember_test_")
    os.makedirs(s.directory)
    yield s
    s.cleanup_all()


def _manager(store, tmp_path, capacity=100 * KiB, pins=None, **kw) -> StoreManager:
    pinned = pins if pins is not None else set()
    return StoreManager(store, str(tmp_path / "spill"), capacity, pinned=lambda: set(pinned),
                        full_wait_s=kw.pop("full_wait_s", 0.2), **kw)


def _write(manager: StoreManager, oid: bytes, size: int, writer: str = "w") -> bytes:
    """What a worker does: ask for room, write the file, report it sealed."""
    data = np.random.default_rng(oid[0]).integers(0, 255, size, dtype=np.uint8).tobytes()
    manager.create(oid, size, writer)
    manager.store.put_bytes(oid.hex(), data)
    manager.sealed([(oid, size)], writer)
    return data


def test_full_store_spills_least_recently_used_to_disk(store, tmp_path):
    m = _manager(store, tmp_path)
    a = _write(m, b"\x01", 40 * KiB)
    _write(m, b"\x02", 40 * KiB)
    m.touch(b"\x01")                                     # 2 is now the oldest
    _write(m, b"\x03", 40 * KiB)
    assert not store.contains("02") and store.contains("01") and store.contains("03")
    assert os.path.exists(m.spiller.path("02"))
    st = m.stats()
    assert st.used == 80 * KiB and st.num_spilled == 1 and st.total_spilled_bytes == 40 * KiB
    assert bytes(store.get("01")) == a
    m.stop()


def test_restore_brings_back_identical_bytes(store, tmp_path):
    m = _manager(store, tmp_path)
    data = _write(m, b"\x01", 60 * KiB)
    _write(m, b"\x02", 60 * KiB)                          # pushes 1 to disk
    assert not store.contains("01")
    assert m.restore(b"\x01") == 60 * KiB                 # and 2 goes to make room
    assert bytes(store.get("01")) == data
    assert not store.contains("02") and m.stats().total_restored_bytes == 60 * KiB
    assert m.restore(b"\x01") is None                     # already in memory
    m.stop()


def test_pinned_objects_stay_and_a_full_store_refuses_after_waiting(store, tmp_path):
    pins = {b"\x01", b"\x02"}
    m = _manager(store, tmp_path, pins=pins, full_wait_s=0.3)
    _write(m, b"\x01", 45 * KiB)
    _write(m, b"\x02", 45 * KiB)
    t0 = time.monotonic()
    with pytest.raises(StoreFull, match="in use") as info:
        m.create(b"\x03", 20 * KiB, "w")
    assert time.monotonic() - t0 >= 0.3
    assert "03" in str(info.value)
    assert store.contains("01") and store.contains("02")
    # Once a pin goes, the write gets its room.
    pins.discard(b"\x01")
    m._pins_at = float("-inf")                            # no stale scan
    _write(m, b"\x03", 20 * KiB)
    assert not store.contains("01") and store.contains("02")
    m.stop()


def test_a_write_waits_for_a_pin_to_go(store, tmp_path):
    pins = {b"\x01"}
    m = _manager(store, tmp_path, pins=pins, full_wait_s=10)
    _write(m, b"\x01", 90 * KiB)
    threading.Timer(0.3, pins.clear).start()
    _write(m, b"\x02", 50 * KiB)                          # waits, then spills 1
    assert not store.contains("01") and store.contains("02")
    m.stop()


def test_object_larger_than_the_store_is_refused_at_once(store, tmp_path):
    m = _manager(store, tmp_path, full_wait_s=30)
    t0 = time.monotonic()
    with pytest.raises(StoreFull, match="cannot fit in the object store"):
        m.create(b"\x01", 101 * KiB, "w")
    assert time.monotonic() - t0 < 5
    m.stop()


def test_disk_failure_is_reported_in_the_refusal(store, tmp_path):
    class BrokenDisk(ObjectSpiller):
        def write(self, object_id_hex, data):
            raise OSError(28, "No space left on device")

    m = _manager(store, tmp_path, spiller=BrokenDisk(str(tmp_path / "spill")))
    _write(m, b"\x01", 90 * KiB)
    with pytest.raises(StoreFull, match="spilling to disk failed.*No space left"):
        m.create(b"\x02", 50 * KiB, "w")
    assert store.contains("01") and m.stats().used == 90 * KiB
    m.stop()


def test_free_removes_shared_memory_and_spill_files(store, tmp_path):
    m = _manager(store, tmp_path)
    _write(m, b"\x01", 60 * KiB)
    _write(m, b"\x02", 60 * KiB)
    spilled = m.spiller.path("01")
    assert os.path.exists(spilled)
    m.free([b"\x01", b"\x02"])
    assert not os.path.exists(spilled) and not store.contains("02")
    st = m.stats()
    assert st.used == 0 and st.committed == 0 and st.num_spilled == 0
    m.stop()


def test_spilled_object_is_served_from_disk_without_restoring(store, tmp_path):
    m = _manager(store, tmp_path)
    data = _write(m, b"\x01", 60 * KiB)
    _write(m, b"\x02", 60 * KiB)
    view = m.spilled_view(b"\x01")
    assert view is not None and bytes(view) == data
    assert not store.contains("01")
    assert m.spilled_view(b"\x02") is None                # in memory, no disk copy
    m.stop()


def test_sealed_after_free_is_not_counted(store, tmp_path):
    m = _manager(store, tmp_path)
    m.create(b"\x01", 10 * KiB, "w")
    m.free([b"\x01"])                                     # the owner freed it first
    m.sealed([(b"\x01", 10 * KiB)], "w")                  # then the writer's message came
    assert m.stats().used == 0
    m.stop()


def test_dead_writer_gives_back_its_room(store, tmp_path):
    m = _manager(store, tmp_path)
    m.create(b"\x01", 90 * KiB, "dead")
    m.writer_gone("dead")
    _write(m, b"\x02", 90 * KiB)
    m.stop()


def test_background_spilling_keeps_the_store_under_the_threshold(store, tmp_path):
    m = _manager(store, tmp_path, capacity=1000 * KiB)
    m.start()
    for i in range(9):
        _write(m, bytes([i + 1]), 100 * KiB)
    deadline = time.monotonic() + 30
    while m.stats().committed > 800 * KiB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert m.stats().committed <= 800 * KiB and m.stats().num_spilled >= 1
    m.stop()


def test_stop_deletes_every_spill_file(store, tmp_path):
    m = _manager(store, tmp_path)
    _write(m, b"\x01", 60 * KiB)
    _write(m, b"\x02", 60 * KiB)
    assert os.listdir(m.spiller.directory)
    m.stop()
    assert not os.path.exists(m.spiller.directory)


def test_unlimited_store_never_spills(store, tmp_path):
    m = _manager(store, tmp_path, capacity=0)
    for i in range(5):
        _write(m, bytes([i + 1]), 100 * KiB)
    assert m.stats().num_spilled == 0 and not os.path.exists(m.spiller.directory)
    m.stop()


def test_recycled_files_live_only_in_the_free_room(store, tmp_path, monkeypatch):
    from ember._private.serialization import serialize
    from ember._private.shm_store import POOL_MIN_BYTES
    big = POOL_MIN_BYTES * 2
    monkeypatch.setenv("EMBER_OBJECT_POOL_BYTES", str(big * 3))
    m = _manager(store, tmp_path, capacity=big * 3)
    value = np.ones(big // 8, dtype=np.int64)
    for oid in (b"\x01", b"\x02"):
        size = serialize(value).total_size
        m.create(oid, size, "w")
        store.create_and_write(oid.hex(), serialize(value))
        m.sealed([(oid, size)], "w")
    m.free([b"\x01"])
    assert len(store.pool_files()) == 1      # kept for the next write
    m.writer_gone("w")                       # the writer's unused credit is free again
    m.create(b"\x03", big * 2, "w2")         # needs the pool's room back
    pooled = sum(size for size, _ in store.pool_files())
    assert m.ledger.committed + pooled <= m.ledger.capacity
    m.stop()


def test_a_freed_file_takes_the_place_of_the_longest_pooled_ones(store, tmp_path, monkeypatch):
    # Many small files pooled earlier must not keep a loop of large writes from
    # getting its files back.
    from ember._private.serialization import serialize
    from ember._private.shm_store import POOL_MIN_BYTES
    small, large = POOL_MIN_BYTES, POOL_MIN_BYTES * 4
    monkeypatch.setenv("EMBER_OBJECT_POOL_BYTES", str(POOL_MIN_BYTES * 6))
    m = _manager(store, tmp_path, capacity=POOL_MIN_BYTES * 64)

    def write(oid, nbytes):
        value = np.ones(nbytes // 8, dtype=np.int64)
        size = serialize(value).total_size
        m.create(oid, size, "w")
        store.create_and_write(oid.hex(), serialize(value))
        m.sealed([(oid, size)], "w")
        return size

    smalls = [bytes([i + 1]) for i in range(5)]
    small_sizes = {write(oid, small) for oid in smalls}      # all alive at once
    m.free(smalls)
    pooled = sorted(size for size, _ in store.pool_files())
    assert len(pooled) == 5 and set(pooled) == small_sizes
    large_size = write(b"\x10", large)               # takes one small file over, grows it
    m.free([b"\x10"])
    sizes = sorted(size for size, _ in store.pool_files())
    assert large_size in sizes and sum(sizes) <= POOL_MIN_BYTES * 6
    assert len(sizes) < 5                          # the oldest small ones made room
    m.stop()


def test_recycling_can_be_turned_off(store, tmp_path, monkeypatch):
    from ember._private.serialization import serialize
    from ember._private.shm_store import POOL_MIN_BYTES
    monkeypatch.setenv("EMBER_OBJECT_POOL_BYTES", "0")
    m = _manager(store, tmp_path, capacity=POOL_MIN_BYTES * 8)
    value = np.ones(POOL_MIN_BYTES // 4, dtype=np.int64)
    size = serialize(value).total_size
    m.create(b"\x01", size, "w")
    store.create_and_write("01", serialize(value))
    m.sealed([(b"\x01", size)], "w")
    m.free([b"\x01"])
    assert store.pool_files() == []
    m.stop()

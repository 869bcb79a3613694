"""shm_write_maps: kept writable mappings of recycled object files."""
from __future__ import annotations

import os

import numpy as np
import pytest

from ember._private import serialization
from ember._private import shm_store as shm_mod
from ember._private.serialization import deserialize, serialize
from ember._private.shm_store import ShmStore
from ember._private.shm_write_maps import WriteMaps
from ember.testing import wait_for_condition


@pytest.fixture
def store(tmp_path):
    s = ShmStore(str(tmp_path), "ember_t_")
    yield s
    s.cleanup_all()


def _file(path, size=1 << 16):
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.ftruncate(fd, size)
    return fd


def test_a_kept_mapping_is_handed_back_for_the_same_file_only(tmp_path):
    maps = WriteMaps()
    a, b = _file(tmp_path / "a"), _file(tmp_path / "b")
    try:
        mm = maps.take(a, 1 << 16)
        maps.keep(a, mm)
        other = maps.take(b, 1 << 16)
        assert other is not mm
        other.close()
        assert maps.take(a, 1 << 16) is mm          # taken: no longer kept
        assert maps.inodes() == set()
        maps.keep(a, mm)
        os.ftruncate(a, 1 << 17)
        bigger = maps.take(a, 1 << 17)
        assert bigger is not mm and len(bigger) == 1 << 17   # too short: a new one
        bigger.close()
    finally:
        maps.close()
        os.close(a)
        os.close(b)


def test_at_most_keep_mappings_are_kept_least_recent_first_out(tmp_path):
    maps = WriteMaps(keep=2)
    fds = [_file(tmp_path / f"f{i}") for i in range(3)]
    try:
        for fd in fds:
            maps.keep(fd, maps.take(fd, 1 << 16))
        keys = {(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in fds[1:]}
        assert maps.inodes() == keys
    finally:
        maps.close()
        for fd in fds:
            os.close(fd)


def test_the_mapping_of_an_unlinked_file_is_dropped(tmp_path):
    # Kept, it would hold the memory of an object that is gone.
    maps = WriteMaps()
    fd = _file(tmp_path / "gone")
    try:
        maps.keep(fd, maps.take(fd, 1 << 16))
        os.unlink(tmp_path / "gone")
        maps.drop_gone()
        assert maps.inodes() == set()
    finally:
        maps.close()
        os.close(fd)


def test_idle_mappings_are_dropped_by_the_timer(tmp_path):
    maps = WriteMaps(idle_s=0.1)
    fd = _file(tmp_path / "idle")
    try:
        maps.keep(fd, maps.take(fd, 1 << 16))
        assert maps.inodes()
        wait_for_condition(lambda: maps.inodes() == set(), timeout=10)
    finally:
        maps.close()
        os.close(fd)


BIG = shm_mod.POOL_MIN_BYTES * 3


def test_a_store_writes_into_its_own_recycled_file_through_the_kept_mapping(store):
    first = np.arange(BIG // 8, dtype=np.int64)
    store.create_and_write("a1", serialize(first))
    assert store.recycle("a1", room=1 << 30)
    store.create_and_write("a2", serialize(first + 1))          # takes the file, maps it
    kept = store._write_maps.inodes()
    assert len(kept) == 1
    assert store.recycle("a2", room=1 << 30)
    for oid, n in (("a3", BIG // 8 - 1000), ("a4", BIG // 8)):    # smaller, then larger
        value = np.arange(n, dtype=np.int64) * 3
        store.create_and_write(oid, serialize(value))
        assert store._write_maps.inodes() == kept               # the same file again
        np.testing.assert_array_equal(deserialize(store.get(oid)), value)
        assert store.recycle(oid, room=1 << 30)


def test_large_buffers_are_copied_in_two_halves_exactly(monkeypatch):
    monkeypatch.setattr(serialization, "PARALLEL_COPY_BYTES", 1 << 16)
    value = np.random.default_rng(0).integers(0, 1 << 60, (1 << 20) + 7, dtype=np.int64)
    obj = serialize(value)
    dest = bytearray(obj.total_size)
    serialization.write_to(obj, memoryview(dest))
    np.testing.assert_array_equal(deserialize(dest), value)
    assert bytes(dest) == serialization.to_bytes(obj)

"""Tests for ember._private.shm_store."""

from __future__ import annotations

import gc
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

from ember._private import shm_store as shm_mod
from ember._private.serialization import deserialize, serialize, to_bytes
from ember._private.shm_store import ShmStore, default_shm_dir
from ember.testing import wait_for_condition

SRC_ROOT = pathlib.Path(shm_mod.__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    s = ShmStore(str(tmp_path), f"ember_test_{uuid.uuid4().hex[:8]}_")
    yield s
    s.cleanup_all()
    assert _files(s) == []


def _files(s: ShmStore) -> list[str]:
    return sorted(n for n in os.listdir(s.directory) if n.startswith(s.prefix))


def test_default_shm_dir_is_writable_directory():
    d = default_shm_dir()
    assert os.path.isdir(d) and os.access(d, os.W_OK)
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert d == "/dev/shm"


def test_create_get_contains_size_delete(store):
    obj = serialize({"a": np.arange(1000), "b": "text"})
    assert not store.contains("aa01") and store.get("aa01") is None and store.size("aa01") is None
    size = store.create_and_write("aa01", obj)
    assert size == obj.total_size == store.size("aa01")
    assert store.contains("aa01")
    assert _files(store) == [store.prefix + "aa01"]
    view = store.get("aa01")
    assert isinstance(view, memoryview) and view.readonly and len(view) == size
    out = deserialize(view)
    np.testing.assert_array_equal(out["a"], np.arange(1000))
    assert out["b"] == "text"
    del out, view
    store.delete("aa01")
    assert not store.contains("aa01") and store.get("aa01") is None
    assert _files(store) == []
    store.delete("aa01")  # deleting a missing object is fine


def test_put_bytes_roundtrip(store):
    data = to_bytes(serialize([1, "two", np.ones(5)]))
    assert store.put_bytes("bb02", data) == len(data)
    assert bytes(store.get("bb02")) == data
    out = deserialize(store.get("bb02"))
    assert out[:2] == [1, "two"]
    np.testing.assert_array_equal(out[2], np.ones(5))
    assert store.put_bytes("bb03", memoryview(bytearray(data))) == len(data)
    assert bytes(store.get("bb03")) == data


def test_existing_object_is_kept(store):
    first = serialize("first value")
    size = store.create_and_write("cc03", first)
    assert store.create_and_write("cc03", serialize("a different, longer second value")) == size
    assert store.put_bytes("cc03", b"junk") == size
    assert deserialize(store.get("cc03")) == "first value"
    assert _files(store) == [store.prefix + "cc03"]


def test_files_have_mode_0600(store):
    store.create_and_write("dd04", serialize(np.arange(10)))
    store.put_bytes("dd05", to_bytes(serialize(1)))
    for name in _files(store):
        mode = stat.S_IMODE(os.stat(os.path.join(store.directory, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_get_view_is_readonly(store):
    store.create_and_write("ee05", serialize(np.zeros(100)))
    view = store.get("ee05")
    with pytest.raises(TypeError):
        view[0] = 1
    arr = deserialize(view)
    assert arr.flags.writeable is False
    with pytest.raises(ValueError):
        arr[0] = 1.0


def test_repeated_get_reuses_mapping(store):
    store.create_and_write("ff06", serialize(np.arange(1000)))
    a = np.frombuffer(store.get("ff06"), dtype=np.uint8)
    b = np.frombuffer(store.get("ff06"), dtype=np.uint8)
    assert np.shares_memory(a, b)
    del a, b
    store.release("ff06")
    assert deserialize(store.get("ff06"))[999] == 999


def test_invalid_ids_rejected(store):
    for bad in ("", "../etc", "a/b", "x.tmp.1"):
        with pytest.raises(ValueError):
            store.create_and_write(bad, serialize(1))
        with pytest.raises(ValueError):
            store.get(bad)


def test_used_bytes_and_cleanup_all(store):
    sizes = [store.create_and_write(f"{i:04x}", serialize(np.arange(i * 100))) for i in range(1, 6)]
    assert store.used_bytes() == sum(sizes)
    # Files of another session in the same directory are neither counted nor removed.
    other = ShmStore(store.directory, f"ember_other_{uuid.uuid4().hex[:8]}_")
    other_size = other.create_and_write("0001", serialize("x"))
    unrelated = os.path.join(store.directory, "unrelated_file")
    pathlib.Path(unrelated).write_bytes(b"12345")
    views = [store.get(f"{i:04x}") for i in range(1, 6)]
    store.cleanup_all()
    assert _files(store) == [] and store.used_bytes() == 0
    assert other.contains("0001") and other.used_bytes() == other_size
    assert os.path.exists(unrelated)
    # Views taken before cleanup stay readable.
    assert deserialize(views[4])[-1] == 499
    other.cleanup_all()
    assert other.used_bytes() == 0 and os.listdir(store.directory) == ["unrelated_file"]


def test_crashed_writer_leaves_only_temp_file_which_cleanup_removes(store):
    # A writer killed between writing and sealing must leave nothing a
    # reader can see, and cleanup_all must reclaim its partial file.
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(SRC_ROOT)!r})
        from ember._private import serialization, shm_store
        def die(*a, **k):
            os._exit(7)
        shm_store.os.link = die
        shm_store.os.rename = die
        s = shm_store.ShmStore({store.directory!r}, {store.prefix!r})
        s.create_and_write("abcd", serialization.serialize(list(range(10000))))
        os._exit(0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 7, proc.stderr.decode()
    leftovers = _files(store)
    assert len(leftovers) == 1 and leftovers[0].startswith(store.prefix + "abcd")
    assert not store.contains("abcd") and store.get("abcd") is None
    assert store.used_bytes() == 0
    store.cleanup_all()
    assert _files(store) == []


def test_failed_write_removes_temp_file(store, monkeypatch):
    def boom(obj, fd):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(shm_mod.serialization, "write_to_file", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.create_and_write("ab99", serialize(np.arange(10)))
    assert _files(store) == []


def test_concurrent_get_from_threads(store):
    ids = [f"{i:02x}" for i in range(8)]
    for i, oid in enumerate(ids):
        store.create_and_write(oid, serialize(np.full(10_000, i, dtype=np.int64)))
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def reader(seed: int) -> None:
        try:
            barrier.wait(timeout=10)
            for n in range(200):
                i = (seed + n) % len(ids)
                arr = deserialize(store.get(ids[i]))
                assert arr.shape == (10_000,) and int(arr[0]) == i and int(arr[-1]) == i
                if n % 50 == 0:
                    store.release(ids[i])
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_concurrent_writers_same_id(store):
    results: list[int] = []
    obj = serialize(np.arange(50_000))

    def writer() -> None:
        results.append(store.create_and_write("0bad", obj))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [obj.total_size] * 8
    assert _files(store) == [store.prefix + "0bad"]
    np.testing.assert_array_equal(deserialize(store.get("0bad")), np.arange(50_000))


def test_delete_while_array_alive_keeps_it_readable(store):
    store.create_and_write("1234", serialize(np.arange(1_000_000, dtype=np.int64)))
    arr = deserialize(store.get("1234"))
    store.delete("1234")
    gc.collect()
    assert not store.contains("1234") and _files(store) == []
    assert int(arr.sum()) == 999_999 * 1_000_000 // 2
    # The id can be reused for a new object without disturbing the old array.
    store.create_and_write("1234", serialize(np.zeros(10)))
    assert deserialize(store.get("1234")).sum() == 0
    assert int(arr[-1]) == 999_999


# ------------------------------------------------------------------ zero copy


def _mapping_range(view: memoryview) -> tuple[int, int]:
    base = np.frombuffer(view, dtype=np.uint8).ctypes.data
    return base, base + len(view)


def test_zero_copy_numpy_64mb(store):
    arr = np.arange(8 * 1024 * 1024, dtype=np.float64)  # 64 MiB
    size = store.create_and_write("64", serialize(arr))
    assert size >= arr.nbytes
    view = store.get("64")
    out = deserialize(view)
    assert isinstance(out, np.ndarray)
    assert out.flags.writeable is False
    assert np.shares_memory(out, np.frombuffer(view, dtype=np.uint8))
    lo, hi = _mapping_range(view)
    assert lo <= out.ctypes.data and out.ctypes.data + out.nbytes <= hi
    assert out.ctypes.data % 64 == 0
    np.testing.assert_array_equal(out[:: 1024 * 1024], arr[:: 1024 * 1024])
    assert out[-1] == arr[-1]


def test_zero_copy_pyarrow_table(store):
    pa = pytest.importorskip("pyarrow")
    n = 100_000
    table = pa.table(
        {
            "i": pa.array(np.arange(n, dtype=np.int64)),
            "f": pa.array(np.linspace(0, 1, n)),
            "s": pa.array([f"s{i}" if i % 5 else None for i in range(n)]),
        }
    )
    store.create_and_write("a770", serialize(table))
    view = store.get("a770")
    out = deserialize(view)
    assert out.equals(table)
    lo, hi = _mapping_range(view)
    checked = 0
    for column in out.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is None or buf.size == 0:
                    continue
                assert lo <= buf.address and buf.address + buf.size <= hi, column
                checked += 1
    assert checked >= 5  # i, f data; s validity, offsets and data


def test_default_dir_store_roundtrip_and_cleanup():
    s = ShmStore(default_shm_dir(), f"ember_test_{uuid.uuid4().hex}_")
    try:
        s.create_and_write("abcdef", serialize(np.arange(100_000)))
        assert s.used_bytes() == s.size("abcdef") > 800_000
        np.testing.assert_array_equal(deserialize(s.get("abcdef")), np.arange(100_000))
    finally:
        s.cleanup_all()
    assert _files(s) == [] and s.used_bytes() == 0


def test_mapping_lives_exactly_as_long_as_values_read_from_it(store):
    # The node manager spills only objects nobody maps: a value read with get()
    # must keep its object mapped, and dropping it must unmap it.
    store.create_and_write("aa01", serialize(np.arange(50_000)))
    store.create_and_write("aa02", serialize({"plain": list(range(30_000))}))
    arr = deserialize(store.get("aa01"))
    plain = deserialize(store.get("aa02"))    # copied out by unpickling: nothing left mapped
    gc.collect()
    assert shm_mod.mapped_ids(store.directory, store.prefix) == {"aa01"}
    del arr
    gc.collect()
    assert shm_mod.mapped_ids(store.directory, store.prefix) == set()
    assert plain["plain"][-1] == 29_999


def test_mapped_ids_sees_other_processes_and_skips_deleted_files(store):
    store.create_and_write("bb01", serialize(np.arange(50_000)))
    store.create_and_write("bb02", serialize(np.arange(50_000)))
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(SRC_ROOT)!r})
        from ember._private import serialization, shm_store
        s = shm_store.ShmStore({store.directory!r}, {store.prefix!r})
        held = [serialization.deserialize(s.get(i)) for i in ("bb01", "bb02")]
        print("mapped", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mapped"
        assert shm_mod.mapped_ids(store.directory, store.prefix) == {"bb01", "bb02"}
        store.delete("bb02")    # still mapped there, but no longer an object here
        assert shm_mod.mapped_ids(store.directory, store.prefix) == {"bb01"}
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert shm_mod.mapped_ids(store.directory, store.prefix) == set()


def test_keep_recent_holds_the_last_object_read_for_a_while(tmp_path):
    s = ShmStore(str(tmp_path), f"ember_test_{uuid.uuid4().hex[:8]}_", keep_recent_s=60)
    try:
        s.create_and_write("cc01", serialize(np.arange(50_000)))
        s.create_and_write("cc02", serialize(np.arange(50_000)))
        a = deserialize(s.get("cc01"))
        del a
        gc.collect()
        # Read again soon: still mapped, so its pages need not be faulted in again.
        assert shm_mod.mapped_ids(s.directory, s.prefix) == {"cc01"}
        deserialize(s.get("cc02"))           # only the most recent one is held
        gc.collect()
        assert shm_mod.mapped_ids(s.directory, s.prefix) == {"cc02"}
        s.release("cc02")                    # freed: dropped at once
        gc.collect()
        assert shm_mod.mapped_ids(s.directory, s.prefix) == set()
    finally:
        s.cleanup_all()
    # The timer lets it go once the time is up.
    s = ShmStore(str(tmp_path), f"ember_test_{uuid.uuid4().hex[:8]}_", keep_recent_s=0.05)
    try:
        s.create_and_write("cc03", serialize(np.arange(50_000)))
        deserialize(s.get("cc03"))
        wait_for_condition(lambda: shm_mod.mapped_ids(s.directory, s.prefix) == set(),
                           timeout=30)
    finally:
        s.cleanup_all()


# ---------------------------------------------------------------- recycled files

BIG = shm_mod.POOL_MIN_BYTES + 4096


def _big(seed: int, n: int = BIG // 8):
    return np.random.default_rng(seed).integers(0, 1 << 60, n, dtype=np.int64)


def test_a_freed_unmapped_file_is_taken_over_by_the_next_large_write(store):
    store.create_and_write("aa", serialize(_big(1)))
    assert store.recycle("aa", room=1 << 30)
    assert not store.contains("aa")
    [(size, path)] = store.pool_files()
    with open(path, "r+b") as f:          # stale bytes a reuse must not leak
        f.write(b"\xff" * size)
    value = _big(2, n=BIG // 8 - 100)     # a little smaller: the file shrinks to fit
    written = store.create_and_write("bb", serialize(value))
    assert store.pool_files() == []
    assert bytes(store.get("bb")) == to_bytes(serialize(value))
    assert written == os.path.getsize(store._path("bb"))
    np.testing.assert_array_equal(deserialize(store.get("bb")), value)


def test_the_pool_keeps_at_most_pool_max_files_dropping_the_longest_pooled(store, monkeypatch):
    # Every large write lists the pool and every free trims it: the file count is bounded.
    monkeypatch.setattr(shm_mod, "POOL_MIN_BYTES", 4096)
    monkeypatch.setattr(shm_mod, "POOL_MAX_FILES", 3)
    for i in range(5):
        store.create_and_write(f"e{i}", serialize(b"x" * (8192 + i)))
    for i in range(5):
        assert store.recycle(f"e{i}", room=1 << 30)
        time.sleep(0.01)                  # distinct times in the pool (ctime order)
    sizes = sorted(size for size, _ in store.pool_files())
    assert len(sizes) == 5                # recycle alone does not trim
    left = store.trim_pool(1 << 30, oldest_first=True)
    kept = sorted(size for size, _ in store.pool_files())
    # The newest three stay (each object is a byte longer than the one before).
    assert kept == sizes[-3:] and left == sum(kept)


def test_a_mapped_file_is_not_recycled_and_its_view_stays_intact(store):
    value = _big(3)
    store.create_and_write("cc", serialize(value))
    view = store.get("cc")          # this process maps it (as a reader would)
    node_side = ShmStore(store.directory, store.prefix)   # the node manager's store
    assert not node_side.recycle("cc", room=1 << 30)
    assert store.pool_files() == [] and not store.contains("cc")
    store.create_and_write("dd", serialize(_big(4)))   # cannot land in cc's pages
    np.testing.assert_array_equal(deserialize(view), value)
    del view
    store.release("cc")


def test_a_file_mapped_by_another_process_is_not_recycled(store):
    store.create_and_write("ee", serialize(_big(5)))
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(SRC_ROOT)!r})
        from ember._private.shm_store import ShmStore
        view = ShmStore({store.directory!r}, {store.prefix!r}).get("ee")
        print("mapped", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mapped"
        assert not store.recycle("ee", room=1 << 30)
    finally:
        proc.communicate("\n", timeout=30)


def test_recycling_keeps_to_its_room_and_skips_small_files(store):
    store.create_and_write("ff", serialize(_big(6)))
    assert not store.recycle("ff", room=BIG // 2)        # no room: unlinked
    store.create_and_write("gg", serialize(b"x" * 1000))
    assert not store.recycle("gg", room=1 << 30)         # small: not worth keeping
    assert store.pool_files() == []
    assert not store.contains("ff") and not store.contains("gg")


def test_trim_and_cleanup_give_the_pool_back(store):
    for i, oid in enumerate(["h1", "h2", "h3"]):
        store.create_and_write(oid, serialize(_big(10 + i)))
        assert store.recycle(oid, room=1 << 30)
    one = store.pool_files()[0][0]
    assert store.trim_pool(one + 1) <= one + 1
    assert len(store.pool_files()) == 1
    assert store.used_bytes() == 0          # pooled bytes are no objects
    store.cleanup_all()
    assert store.pool_files() == []
    assert not any(n.startswith(store.prefix) for n in os.listdir(store.directory))


def test_nothing_is_recycled_after_cleanup(store):
    store.create_and_write("k1", serialize(_big(20)))
    store.cleanup_all()
    store.create_and_write("k2", serialize(_big(21)))    # a late write, then its free
    assert not store.recycle("k2", room=1 << 30)
    assert not any(n.startswith(store.prefix) for n in os.listdir(store.directory))

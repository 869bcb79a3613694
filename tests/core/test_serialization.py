"""Tests for ember._private.serialization."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest

from ember._private import serialization as ser
from ember._private.serialization import (
    SerializedObject,
    deserialize,
    note_contained_ref,
    serialize,
    to_bytes,
    write_to,
)
from ember.exceptions import SerializationError


def roundtrip(value):
    return deserialize(to_bytes(serialize(value)))


# ---------------------------------------------------------------- plain values


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**100,
        1.5,
        float("inf"),
        True,
        None,
        "",
        "héllo ✓",
        b"\x00\xff" * 10,
        (1, "a", None),
        [1, [2, [3, [4]]]],
        {"a": {"b": {"c": [1, 2, {"d": (3, 4)}]}}, 5: "five"},
        {1, 2, 3},
        frozenset({"x"}),
        list(range(1000)),
        {str(i): i for i in range(100)},
        bytearray(b"abc"),
        complex(1, 2),
    ],
)
def test_roundtrip_plain(value):
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_small_values_skip_cloudpickle(monkeypatch):
    calls = []
    real = ser.cloudpickle.CloudPickler

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ser.cloudpickle, "CloudPickler", spy)
    for value in (0, None, "s", b"b", 1.5, True, (1, "a"), {"k": [1, 2.0, "s"]}, list(range(32))):
        obj = serialize(value)
        assert obj.meta == pickle.dumps(value, protocol=5)
        assert obj.buffers == [] and obj.contained_refs == []
        assert obj.total_size == len(to_bytes(obj))
    assert calls == []
    # Anything deeper, longer or of another type goes through cloudpickle.
    for value in ([[[1]]], list(range(33)), {1, 2}, [1, object], (1, 2**70 + 0j)):
        before = len(calls)
        serialize(value)
        assert len(calls) == before + 1, value


def test_small_path_timing_is_reported():
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        deserialize(to_bytes(serialize(0)))
    per_call_us = (time.perf_counter() - start) / n * 1e6
    print(f"serialize+to_bytes+deserialize(0): {per_call_us:.2f} us")
    assert deserialize(to_bytes(serialize(0))) == 0


# ------------------------------------------------------- functions, exceptions


def test_closure_roundtrip():
    base = 10

    def add(x, y=1):
        return x + y + base

    assert roundtrip(add)(1, y=2) == 13
    assert roundtrip(lambda s: s * 2)("ab") == "abab"


def test_function_defined_in_main_is_pickled_by_value():
    # Plain pickle would store a by-reference "__main__.triple" that fails
    # to load in any other process; cloudpickle must inline the code.
    ns = {"__name__": "__main__"}
    exec("def triple(x):\n    return 3 * x\n", ns)
    fn = ns["triple"]
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(fn)
    assert roundtrip(fn)(4) == 12
    assert roundtrip([fn, {"f": fn}])[1]["f"](2) == 6


class CustomError(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def test_exception_roundtrip():
    out = roundtrip(ValueError("bad thing"))
    assert type(out) is ValueError and out.args == ("bad thing",)

    out = roundtrip(CustomError(42, "nope"))
    assert type(out) is CustomError
    assert (out.code, out.detail, out.args) == (42, "nope", (42, "nope"))

    try:
        raise KeyError("k")
    except KeyError as exc:
        raised = exc
    out = roundtrip({"err": raised})
    assert type(out["err"]) is KeyError and out["err"].args == ("k",)


# ---------------------------------------------------------------- numpy & co.


@pytest.mark.parametrize(
    "dtype", ["float64", "float32", "int8", "int64", "uint16", "bool", "complex128", "M8[ns]"]
)
def test_numpy_dtypes(dtype):
    arr = (np.arange(1000) % 7).astype(dtype)
    out = roundtrip(arr)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    "arr",
    [
        np.array(3.25),
        np.zeros((0,), dtype=np.int32),
        np.zeros((3, 0, 2)),
        np.asfortranarray(np.arange(24.0).reshape(4, 6)),
        np.arange(100.0).reshape(10, 10)[::2, 1::3],
        np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")]),
        np.array(["x", "yz"]),
    ],
    ids=["0d", "empty", "empty3d", "fortran", "strided", "structured", "unicode"],
)
def test_numpy_shapes_and_layouts(arr):
    out = roundtrip(arr)
    assert out.shape == arr.shape and out.dtype == arr.dtype
    np.testing.assert_array_equal(out, arr)
    if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
        assert out.flags.f_contiguous


def test_numpy_object_array():
    arr = np.array([{"a": 1}, None, "s"], dtype=object)
    out = roundtrip(arr)
    assert out.dtype == object and list(out) == list(arr)


def test_large_array_goes_out_of_band_and_aligned():
    arr = np.arange(100_000, dtype=np.float64)
    obj = serialize({"a": arr, "b": arr[::-1].copy()})
    assert len(obj.buffers) == 2
    assert len(obj.meta) < 1000  # data is not duplicated in the pickle stream
    data = to_bytes(obj)
    assert len(data) == obj.total_size
    for off, _ in obj._compute_layout()[0]:
        assert off % ser.ALIGNMENT == 0
    out = deserialize(data)
    np.testing.assert_array_equal(out["a"], arr)
    np.testing.assert_array_equal(out["b"], arr[::-1])


def test_deserialize_readonly_bytes_is_zero_copy():
    arr = np.arange(4096, dtype=np.int32)
    data = to_bytes(serialize(arr))
    out = deserialize(data)
    assert out.flags.writeable is False
    assert np.shares_memory(out, np.frombuffer(data, dtype=np.uint8))


def test_deserialize_writable_buffer_shares_memory():
    arr = np.arange(4096, dtype=np.int32)
    obj = serialize(arr)
    buf = bytearray(obj.total_size)
    write_to(obj, memoryview(buf))
    out = deserialize(memoryview(buf))
    assert np.shares_memory(out, np.frombuffer(buf, dtype=np.uint8))
    np.testing.assert_array_equal(out, arr)


def test_write_to_matches_to_bytes_even_in_dirty_buffer():
    obj = serialize([np.arange(10, dtype=np.int8), np.ones(3)])
    dirty = bytearray(b"\xab" * (obj.total_size + 17))
    write_to(obj, memoryview(dirty))
    assert bytes(dirty[: obj.total_size]) == to_bytes(obj)


def test_write_to_rejects_small_destination():
    obj = serialize(np.arange(10))
    with pytest.raises(ValueError, match="too small"):
        write_to(obj, memoryview(bytearray(obj.total_size - 1)))


def test_pandas_dataframe_roundtrip():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "i": np.arange(1000),
            "f": np.linspace(0, 1, 1000),
            "s": [f"row{i}" for i in range(1000)],
            "c": pd.Categorical(["a", "b"] * 500),
        },
        index=pd.RangeIndex(5, 1005),
    )
    pd.testing.assert_frame_equal(roundtrip(df), df)


def test_pyarrow_table_roundtrip():
    pa = pytest.importorskip("pyarrow")
    table = pa.table(
        {
            "x": pa.array(np.arange(10_000)),
            "s": pa.array([f"v{i}" if i % 3 else None for i in range(10_000)]),
            "l": pa.array([[i, i + 1] for i in range(10_000)]),
        }
    )
    obj = serialize(table)
    assert obj.buffers  # Arrow buffers travel out of band
    out = deserialize(to_bytes(obj))
    assert out.equals(table)


# ------------------------------------------------------------------- errors


def test_unpicklable_lock_raises_serialization_error():
    lock = threading.Lock()
    with pytest.raises(SerializationError) as info:
        serialize(lock)
    err = info.value
    assert isinstance(err, TypeError)
    assert "_thread.lock" in str(err)
    assert "create it inside the task" in str(err)
    assert err.__cause__ is not None


class Holder:
    def __init__(self):
        self.lock = threading.Lock()


def test_object_holding_lock_names_outer_and_inner_types():
    with pytest.raises(TypeError) as info:
        serialize({"h": Holder()})
    msg = str(info.value)
    assert isinstance(info.value, SerializationError)
    assert "'dict'" in msg and "_thread.lock" in msg

    with pytest.raises(SerializationError, match=r"Holder.*inner object of type '_thread.lock'"):
        serialize(Holder())


def test_deserialize_rejects_garbage():
    good = to_bytes(serialize(np.arange(100)))
    with pytest.raises(ValueError, match="magic"):
        deserialize(b"XXXX" + good[4:])
    with pytest.raises(ValueError, match="truncated"):
        deserialize(good[:-1])
    with pytest.raises(ValueError, match="truncated"):
        deserialize(good[:10])
    with pytest.raises(ValueError, match="truncated"):
        deserialize(b"")
    small = to_bytes(serialize("hello"))
    with pytest.raises(ValueError, match="truncated"):
        deserialize(small[:-2])


# ------------------------------------------------------------- contained refs


class FakeRef:
    """Stands in for ObjectRef, whose __reduce__ reports itself."""

    def __init__(self, key, nested=None):
        self.key = key
        self.nested = nested
        self.inner_result: SerializedObject | None = None

    def __reduce__(self):
        note_contained_ref(self)
        if self.nested is not None:
            self.inner_result = serialize(self.nested)
        return (FakeRef, (self.key,))

    def __eq__(self, other):
        return isinstance(other, FakeRef) and other.key == self.key

    def __hash__(self):
        return hash(self.key)


def test_contained_refs_collected_when_nested():
    r1, r2, r3 = FakeRef("a"), FakeRef("b"), FakeRef("c")
    obj = serialize({"x": [r1, {"y": (r2,)}], "z": r3})
    assert obj.contained_refs == [r1, r2, r3]
    assert all(a is b for a, b in zip(obj.contained_refs, [r1, r2, r3]))
    assert deserialize(to_bytes(obj)) == {"x": [r1, {"y": (r2,)}], "z": r3}


def test_top_level_ref_collected():
    r = FakeRef("top")
    assert serialize(r).contained_refs == [r]


def test_nested_serialize_keeps_separate_lists():
    inner_ref = FakeRef("inner")
    outer_ref = FakeRef("outer", nested=[inner_ref])
    obj = serialize([outer_ref, FakeRef("sibling")])
    assert [r.key for r in obj.contained_refs] == ["outer", "sibling"]
    assert [r.key for r in outer_ref.inner_result.contained_refs] == ["inner"]


def test_note_outside_serialize_is_noop_and_does_not_leak():
    stray = FakeRef("stray")
    assert note_contained_ref(stray) is None
    obj = serialize([FakeRef("real")])
    assert [r.key for r in obj.contained_refs] == ["real"]


def test_ref_stack_unwinds_after_failure():
    with pytest.raises(SerializationError):
        serialize([FakeRef("before"), threading.Lock()])
    note_contained_ref(FakeRef("after-failure"))  # must not land anywhere
    assert [r.key for r in serialize([FakeRef("next")]).contained_refs] == ["next"]


def test_contained_refs_are_per_thread():
    barrier = threading.Barrier(2)
    results = {}

    class SlowRef(FakeRef):
        def __reduce__(self):
            note_contained_ref(self)
            barrier.wait(timeout=10)  # both threads are mid-serialize here
            return (FakeRef, (self.key,))

    def work(name):
        results[name] = [r.key for r in serialize([SlowRef(name)]).contained_refs]

    threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {"t1": ["t1"], "t2": ["t2"]}

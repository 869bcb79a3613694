"""read_numpy, read_text and read_binary_files datasources: contents checked against
numpy/Python reading the same files; bad input; fsspec and pyarrow filesystems."""
from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from ember.data._internal.block import column_to_numpy
from ember.data._internal.datasource.binary_datasource import BinaryDatasource
from ember.data._internal.datasource.numpy_datasource import NumpyDatasource
from ember.data._internal.datasource.text_datasource import TextDatasource


def read(src, parallelism: int = 4) -> pa.Table:
    return pa.concat_tables([t for task in src.get_read_tasks(parallelism) for t in task()])


# ---- numpy ---------------------------------------------------------------------------


def test_numpy_1d_and_nd(tmp_path):
    a = np.arange(10, dtype=np.float32)
    b = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    flat = read(NumpyDatasource(str(tmp_path / "a.npy")))
    assert flat.column_names == ["data"]
    np.testing.assert_array_equal(flat["data"].to_numpy(), a)
    assert flat.schema.field("data").type == pa.float32()
    tensors = read(NumpyDatasource(str(tmp_path / "b.npy")))
    assert isinstance(tensors.schema.field("data").type, pa.FixedShapeTensorType)
    np.testing.assert_array_equal(column_to_numpy(tensors["data"]), b)


def test_numpy_directory_skips_other_files_and_includes_paths(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", np.full((2, 2), i))
    (tmp_path / "meta.json").write_text("{}")
    src = NumpyDatasource(str(tmp_path), include_paths=True)
    out = read(src, 2)
    assert out.num_rows == 6
    np.testing.assert_array_equal(column_to_numpy(out["data"])[:, 0], [0, 0, 1, 1, 2, 2])
    assert out["path"].to_pylist()[::2] == [str(tmp_path / f"{i}.npy") for i in range(3)]
    assert src.estimate_inmemory_data_size() == sum(
        (tmp_path / f"{i}.npy").stat().st_size for i in range(3))


def test_numpy_bad_files(tmp_path):
    (tmp_path / "fake.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=r"fake\.npy.*not a \.npy file"):
        read(NumpyDatasource(str(tmp_path / "fake.npy")))
    np.savez(tmp_path / "z.npz", x=np.arange(3))
    (tmp_path / "z.npz").rename(tmp_path / "z.npy")
    with pytest.raises(ValueError, match=r"z\.npy.*\.npz archive"):
        read(NumpyDatasource(str(tmp_path / "z.npy")))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    # Pickled arrays run code when loaded: refused unless allow_pickle is passed.
    with pytest.raises(ValueError, match=r"obj\.npy"):
        read(NumpyDatasource(str(tmp_path / "obj.npy")))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        NumpyDatasource(str(tmp_path / "missing.npy"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("1")
    with pytest.raises(ValueError, match=r"\['npy'\]"):
        NumpyDatasource(str(tmp_path / "sub"))


# ---- text ----------------------------------------------------------------------------


def test_text_lines_match_python(tmp_path):
    content = "first line\n\n  \nsecond line\r\nthird\n"
    (tmp_path / "a.txt").write_text(content, newline="")
    out = read(TextDatasource(str(tmp_path / "a.txt")))
    assert out.column_names == ["text"]
    expected = [line for line in content.splitlines() if line.strip()]
    assert out["text"].to_pylist() == expected == ["first line", "second line", "third"]
    kept = read(TextDatasource(str(tmp_path / "a.txt"), drop_empty_lines=False))
    assert kept["text"].to_pylist() == content.splitlines()


def test_text_encoding_and_many_files(tmp_path):
    (tmp_path / "latin.txt").write_bytes("café\nnaïve\n".encode("latin-1"))
    out = read(TextDatasource(str(tmp_path / "latin.txt"), encoding="latin-1"))
    assert out["text"].to_pylist() == ["café", "naïve"]
    with pytest.raises(ValueError, match=r"latin\.txt.*as text.*UnicodeDecodeError"):
        read(TextDatasource(str(tmp_path / "latin.txt")))
    with pytest.raises(LookupError):
        TextDatasource(str(tmp_path / "latin.txt"), encoding="no-such-codec")
    d = tmp_path / "logs"
    d.mkdir()
    for i in range(4):
        (d / f"{i}.log").write_text("".join(f"f{i} l{j}\n" for j in range(3)))
    out = read(TextDatasource(str(d / "*.log"), include_paths=True), 3)
    assert out["text"].to_pylist() == [f"f{i} l{j}" for i in range(4) for j in range(3)]
    assert out["path"].to_pylist()[0] == str(d / "0.log")


def test_text_limit_pushdown(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text("x\n" * 10)
    out = read(TextDatasource(str(tmp_path)).apply_limit(15), 1)
    assert out.num_rows == 15


# ---- binary --------------------------------------------------------------------------


def test_binary_files(tmp_path):
    blobs = {f"{i}.bin": bytes(range(i * 10, i * 10 + 50)) for i in range(4)}
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
    out = read(BinaryDatasource(str(tmp_path)), 2)
    assert out.column_names == ["bytes"]
    assert out["bytes"].to_pylist() == list(blobs.values())
    with_paths = read(BinaryDatasource(str(tmp_path), include_paths=True))
    assert with_paths.to_pylist() == [{"bytes": d, "path": str(tmp_path / n)}
                                      for n, d in blobs.items()]


def test_binary_pickled_read_tasks_and_filesystems(tmp_path):
    (tmp_path / "x.dat").write_bytes(b"\x00\x01payload")
    src = BinaryDatasource("x.dat", filesystem=pafs.SubTreeFileSystem(str(tmp_path),
                                                                     pafs.LocalFileSystem()))
    tasks = [pickle.loads(pickle.dumps(t.read_fn)) for t in src.get_read_tasks(1)]
    assert [b["bytes"].to_pylist() for fn in tasks for b in fn()] == [[b"\x00\x01payload"]]
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    mem.pipe("/ember-bin/a.dat", b"abc")
    try:
        assert read(BinaryDatasource("memory://ember-bin", filesystem=mem))["bytes"] \
            .to_pylist() == [b"abc"]
    finally:
        mem.rm("/ember-bin", recursive=True)


def test_empty_directory_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No input files found.*empty"):
        BinaryDatasource(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="ghost"):
        BinaryDatasource([str(tmp_path / "empty"), str(tmp_path / "ghost")])

"""object_spiller.ObjectSpiller: spill files on disk."""
from __future__ import annotations

import os

import numpy as np
import pytest
from ember._private.object_spiller import ObjectSpiller, spill_dir


def test_spill_dir_is_per_node_under_the_session():
    assert spill_dir("/tmp/ember/session_1", "abc") == "/tmp/ember/session_1/spill/abc"


def test_write_read_view_delete_roundtrip(tmp_path):
    spiller = ObjectSpiller(str(tmp_path / "spill" / "node"))
    data = np.random.default_rng(0).integers(0, 255, 300_000, dtype=np.uint8)
    assert spiller.write("ab01", memoryview(data)) == data.nbytes
    assert spiller.size("ab01") == data.nbytes
    assert oct(os.stat(spiller.path("ab01")).st_mode & 0o777) == "0o600"
    out = bytearray(data.nbytes)
    spiller.read_into("ab01", memoryview(out))
    assert bytes(out) == data.tobytes()
    assert bytes(spiller.view("ab01")) == data.tobytes()
    spiller.delete("ab01")
    assert spiller.size("ab01") is None and spiller.view("ab01") is None
    spiller.delete("ab01")                      # missing is fine


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    spiller = ObjectSpiller(str(tmp_path / "spill"))

    def disk_full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        spiller.write("ab02", memoryview(b"x" * 1000))
    monkeypatch.undo()
    assert os.listdir(spiller.directory) == []


def test_truncated_spill_file_is_an_error(tmp_path):
    spiller = ObjectSpiller(str(tmp_path))
    spiller.write("ab03", memoryview(b"short"))
    with pytest.raises(OSError, match="truncated"):
        spiller.read_into("ab03", memoryview(bytearray(10)))


def test_ids_cannot_escape_the_directory(tmp_path):
    spiller = ObjectSpiller(str(tmp_path))
    for bad in ("../x", "a/b", ""):
        with pytest.raises(ValueError):
            spiller.path(bad)


def test_delete_all_removes_the_directory(tmp_path):
    spiller = ObjectSpiller(str(tmp_path / "spill" / "n"))
    spiller.write("ab04", memoryview(b"x"))
    spiller.delete_all()
    assert not os.path.exists(spiller.directory)
    spiller.delete_all()

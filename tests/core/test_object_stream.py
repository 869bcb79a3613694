"""object_stream.py: object ranges over a plain authenticated socket, without a cluster."""
from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from ember._private import object_stream
from ember._private.object_stream import RangeServer, read_range

TOKEN = "cluster-token"
OID = b"\x07" * 20


@pytest.fixture
def source(tmp_path):
    """A listener serving one object (OID) from a file; yields (server, data)."""
    data = os.urandom((3 << 20) + 11)
    path = tmp_path / "object"
    path.write_bytes(data)

    def open_copy(object_id: bytes):
        if object_id != OID:
            return None
        fd = os.open(path, os.O_RDONLY)
        return fd, os.fstat(fd).st_size

    server = RangeServer(TOKEN, "127.0.0.1", open_copy)
    yield server, data
    server.stop()


def _dest(tmp_path, size: int) -> int:
    fd = os.open(tmp_path / "dest", os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, size)
    return fd


def test_a_range_lands_at_its_offset_and_the_size_comes_back(source, tmp_path):
    server, data = source
    fd = _dest(tmp_path, len(data))
    try:
        start, length = 12_345, (2 << 20) + 3
        assert read_range(("127.0.0.1", server.port), TOKEN, OID, start, length, fd) == len(data)
        got = os.pread(fd, len(data), 0)
        assert got[start:start + length] == data[start:start + length]
        assert got[:start] == b"\0" * start          # nothing written outside the range
    finally:
        os.close(fd)


def test_without_splice_the_copy_goes_through_a_buffer(source, tmp_path, monkeypatch):
    server, data = source
    monkeypatch.delattr(os, "splice", raising=False)
    fd = _dest(tmp_path, len(data))
    try:
        assert read_range(("127.0.0.1", server.port), TOKEN, OID, 0, len(data), fd) == len(data)
        assert os.pread(fd, len(data), 0) == data
    finally:
        os.close(fd)


def test_no_copy_here_reads_as_minus_one(source, tmp_path):
    server, _ = source
    fd = _dest(tmp_path, 10)
    try:
        assert read_range(("127.0.0.1", server.port), TOKEN, b"\x08" * 20, 0, 10, fd) == -1
    finally:
        os.close(fd)


def test_a_range_past_the_end_is_refused_by_the_reader(source, tmp_path):
    server, data = source
    fd = _dest(tmp_path, 10)
    try:
        with pytest.raises(OSError, match="asked for 100 bytes at offset"):
            read_range(("127.0.0.1", server.port), TOKEN, OID, len(data) - 10, 100, fd)
    finally:
        os.close(fd)


def test_a_wrong_token_gets_nothing_and_the_listener_keeps_serving(source, tmp_path):
    server, data = source
    fd = _dest(tmp_path, len(data))
    try:
        with pytest.raises(OSError, match="closed the connection before answering"):
            read_range(("127.0.0.1", server.port), "not-the-token", OID, 0, 100, fd)
        # An oversized first frame is refused before it is read.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(struct.pack(">I", 1 << 30) + b"x" * 100)
            assert s.recv(16) == b""
        assert read_range(("127.0.0.1", server.port), TOKEN, OID, 0, 100, fd) == len(data)
    finally:
        os.close(fd)


def test_a_source_that_closes_early_is_a_short_read(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"y" * 1000)

    def open_copy(object_id: bytes):
        fd = os.open(path, os.O_RDONLY)
        return fd, 5000       # claims more than the file holds: sendfile stops at 1000

    server = RangeServer(TOKEN, "127.0.0.1", open_copy)
    fd = _dest(tmp_path, 5000)
    try:
        with pytest.raises(OSError, match="short read"):
            read_range(("127.0.0.1", server.port), TOKEN, OID, 0, 5000, fd)
    finally:
        os.close(fd)
        server.stop()


@pytest.mark.parametrize("with_splice", [True, False])
def test_a_stalled_source_fails_the_read_instead_of_hanging(tmp_path, monkeypatch,
                                                            with_splice):
    monkeypatch.setattr(object_stream, "STALL_TIMEOUT", 0.5)
    if not with_splice:
        monkeypatch.delattr(os, "splice", raising=False)
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def stall() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(struct.pack(">q", 1000) + b"z" * 10)   # then nothing more
        release.wait(10)
        conn.close()

    t = threading.Thread(target=stall, daemon=True)
    t.start()
    fd = _dest(tmp_path, 1000)
    try:
        with pytest.raises(OSError, match="stalled: no data for 0.5 s"):
            read_range(listener.getsockname(), TOKEN, OID, 0, 1000, fd)
    finally:
        release.set()
        t.join()
        listener.close()
        os.close(fd)


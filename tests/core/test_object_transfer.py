"""object_transfer.py without a cluster: source choice, dedup, chunked copies."""
from __future__ import annotations

import collections
import os
import threading

import numpy as np
import pytest

from ember._private import object_transfer
from ember._private.object_transfer import ObjectTransfer
from ember._private.protos import ember_pb2 as pb
from ember._private.shm_store import ShmStore


class _FakeNode:
    """Stands in for another node manager: serves ReadObject and the raw range stream."""

    def __init__(self, store: ShmStore, calls: collections.Counter, name: str) -> None:
        self.transfer = ObjectTransfer(store, name, None, lambda oid, size: None)  # type: ignore[arg-type]
        self.calls = calls
        self.name = name
        self._md = ()
        self.channel = self

    # stub.ReadObject.raw(request, metadata=..., timeout=...)
    @property
    def ReadObject(self):
        node = self

        class _M:
            @staticmethod
            def raw(request, metadata=None, timeout=None):
                node.calls[node.name] += 1
                return node.transfer.read(request)
        return _M

    # stub.channel.unary_stream(method, ...)(request, metadata=..., timeout=...)
    def unary_stream(self, method, request_serializer=None, response_deserializer=None):
        assert method == object_transfer.RAW_READ_METHOD
        return lambda request, metadata=None, timeout=None: self.transfer.read_raw(request, None)


def _setup(tmp_path, monkeypatch, size: int):
    monkeypatch.setattr(object_transfer, "CHUNK_BYTES", 1 << 16)
    monkeypatch.setattr(object_transfer, "PARALLEL_MIN_BYTES", 1 << 18)
    data = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8).tobytes()
    calls: collections.Counter = collections.Counter()
    nodes = {}
    for name in ("src1", "src2"):
        store = ShmStore(str(tmp_path), f"ember_{name}_")
        store.put_bytes("ab" * 10, data)
        nodes[f"10.0.0.{len(nodes) + 1}:1"] = _FakeNode(store, calls, name)
    sealed = []
    dest = ShmStore(str(tmp_path), "ember_dest_")
    puller = ObjectTransfer(dest, "dest", lambda address, kind: nodes[address],
                            lambda oid, size: sealed.append(size))
    locations = [pb.Address(node_id=n.name, ip=a.split(":")[0], port=1) for a, n in nodes.items()]
    return data, calls, dest, puller, locations, sealed


def test_pull_copies_every_byte_in_parallel_ranges(tmp_path, monkeypatch):
    data, calls, dest, puller, locations, sealed = _setup(tmp_path, monkeypatch, (1 << 20) + 7)
    reply = puller.pull(pb.PullRequest(object_id=bytes.fromhex("ab" * 10), locations=locations))
    assert reply.ok and reply.size == len(data) and sealed == [len(data)]
    assert bytes(dest.get("ab" * 10)) == data
    # Pulling again finds the local copy: no transfer.
    before = sum(calls.values())
    assert puller.pull(pb.PullRequest(object_id=bytes.fromhex("ab" * 10),
                                      locations=locations)).ok
    assert sum(calls.values()) == before


def test_sources_are_spread_over_copies(tmp_path, monkeypatch):
    _, calls, dest, puller, locations, _ = _setup(tmp_path, monkeypatch, 1000)
    for _ in range(40):
        dest.delete("ab" * 10)
        assert puller.pull(pb.PullRequest(object_id=bytes.fromhex("ab" * 10),
                                          locations=locations)).ok
    # Not every reader goes to the same copy (random choice among the copies).
    assert calls["src1"] > 5 and calls["src2"] > 5, calls


def test_concurrent_pulls_share_one_transfer(tmp_path, monkeypatch):
    _, calls, _, puller, locations, sealed = _setup(tmp_path, monkeypatch, 1 << 19)
    gate = threading.Barrier(4)
    replies = []

    def pull() -> None:
        gate.wait()
        replies.append(puller.pull(pb.PullRequest(object_id=bytes.fromhex("ab" * 10),
                                                  locations=locations)))

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in replies) and len(sealed) <= 2  # one transfer (a late one finds it)


def test_no_source_gives_a_clear_error(tmp_path, monkeypatch):
    _, _, _, puller, _, _ = _setup(tmp_path, monkeypatch, 100)
    reply = puller.pull(pb.PullRequest(object_id=b"\x01" * 20, locations=[]))
    assert not reply.ok and "no other node is known to hold it" in reply.error


def _spilling_node(tmp_path, name: str, capacity: int):
    """A node's store with a capacity (store_manager) behind its ObjectTransfer."""
    from ember._private.store_manager import StoreManager

    store = ShmStore(str(tmp_path), f"ember_{name}_")
    space = StoreManager(store, str(tmp_path / f"spill_{name}"), capacity, pinned=set,
                         full_wait_s=0.2)
    return store, space, ObjectTransfer(store, name, None, space.copy_sealed, space=space)


def _put(store, space, oid: bytes, data: bytes) -> None:
    space.create(oid, len(data), "w")
    store.put_bytes(oid.hex(), data)
    space.sealed([(oid, len(data))], "w")


def _with_one_spilled(tmp_path, monkeypatch, name: str):
    """A 1 MiB node given two 600 kB objects: the first is spilled to make room."""
    monkeypatch.setattr(object_transfer, "CHUNK_BYTES", 1 << 16)
    store, space, transfer = _spilling_node(tmp_path, name, 1 << 20)
    data = [np.random.default_rng(i).integers(0, 255, 600_000, dtype=np.uint8).tobytes()
            for i in range(2)]
    oids = [bytes([i + 1]) * 20 for i in range(2)]
    for oid, d in zip(oids, data):
        _put(store, space, oid, d)
    assert not store.contains(oids[0].hex())              # spilled to make room
    return store, space, transfer, data, oids


def test_a_spilled_object_is_served_from_disk_and_restored_by_pull(tmp_path, monkeypatch):
    store, space, transfer, data, oids = _with_one_spilled(tmp_path, monkeypatch, "spiller")
    # Another node reads it (ReadObject and the raw stream) straight from the spill file.
    chunks = list(transfer.read(pb.ReadRequest(object_id=oids[0])))
    assert b"".join(c.data for c in chunks) == data[0] and chunks[0].total_size == len(data[0])
    raw = b"".join(transfer.read_raw(pb.ReadRequest(object_id=oids[0], offset=5, length=70_000),
                                     None))
    assert raw == data[0][5:70_005]
    assert not store.contains(oids[0].hex())
    # A local reader's pull restores it (and pushes the other one out).
    reply = transfer.pull(pb.PullRequest(object_id=oids[0]))
    assert reply.ok and not reply.copied and reply.size == len(data[0])
    assert bytes(store.get(oids[0].hex())) == data[0]
    assert not store.contains(oids[1].hex())
    space.stop()
    store.cleanup_all()


def test_a_pulled_copy_gets_room_first_or_a_store_full_reply(tmp_path, monkeypatch):
    data, _, _, plain, locations, _ = _setup(tmp_path, monkeypatch, 300_000)
    store, space, puller = _spilling_node(tmp_path, "small", 250_000)
    puller._stub_for = plain._stub_for           # the same fake source nodes
    reply = puller.pull(pb.PullRequest(object_id=bytes.fromhex("ab" * 10), locations=locations))
    assert not reply.ok and reply.store_full and "cannot fit" in reply.error
    assert space.stats().committed == 0 and not store.contains("ab" * 10)
    store2, space2, puller2 = _spilling_node(tmp_path, "big", 1 << 20)
    puller2._stub_for = plain._stub_for
    reply = puller2.pull(pb.PullRequest(object_id=bytes.fromhex("ab" * 10), locations=locations))
    assert reply.ok and reply.copied and space2.stats().used == len(data)
    for s, sp in ((store, space), (store2, space2)):
        sp.stop()
        s.cleanup_all()


def _socket_setup(tmp_path, monkeypatch, size: int):
    """Two source nodes on 127.0.0.1 whose ReadObject names their range listener."""
    monkeypatch.setattr(object_transfer, "CHUNK_BYTES", 1 << 16)
    data = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8).tobytes()
    calls: collections.Counter = collections.Counter()
    raw_grpc: list = []
    nodes = {}
    for i, name in enumerate(("src1", "src2")):
        store = ShmStore(str(tmp_path), f"ember_{name}_")
        store.put_bytes("cd" * 10, data)
        node = _FakeNode(store, calls, name)
        node.unary_stream = lambda *a, **k: raw_grpc.append(a) or (lambda *a, **k: iter(()))
        assert node.transfer.serve_ranges("tok", "127.0.0.1") > 0
        nodes[f"127.0.0.1:{i + 1}"] = node
    sealed: list = []
    dest = ShmStore(str(tmp_path), "ember_dest_")
    puller = ObjectTransfer(dest, "dest", lambda address, kind: nodes[address],
                            lambda oid, size: sealed.append(size))
    puller.serve_ranges("tok", "127.0.0.1")
    locations = [pb.Address(node_id=n.name, ip="127.0.0.1", port=int(a.split(":")[1]))
                 for a, n in nodes.items()]
    return data, nodes, dest, puller, locations, raw_grpc


def test_past_the_first_chunk_bytes_come_over_the_range_socket(tmp_path, monkeypatch):
    data, nodes, dest, puller, locations, raw_grpc = _socket_setup(tmp_path, monkeypatch,
                                                                   (1 << 20) + 5)
    try:
        reply = puller.pull(pb.PullRequest(object_id=bytes.fromhex("cd" * 10),
                                           locations=locations))
        assert reply.ok and reply.copied and reply.size == len(data), reply
        assert bytes(dest.get("cd" * 10)) == data
        assert raw_grpc == []           # nothing over the gRPC range stream
    finally:
        for node in nodes.values():
            node.transfer.stop()
        puller.stop()


def test_a_source_whose_range_socket_fails_is_skipped_for_another(tmp_path, monkeypatch):
    data, nodes, dest, puller, locations, _ = _socket_setup(tmp_path, monkeypatch, 1 << 20)
    refused: list = []
    # ReadObject answers, the range listener has no copy (it went meanwhile).
    monkeypatch.setattr(nodes["127.0.0.1:1"].transfer._ranges, "_open_copy",
                        lambda oid: refused.append(oid))
    monkeypatch.setattr(object_transfer.random, "shuffle", lambda seq: None)  # it goes first
    try:
        reply = puller.pull(pb.PullRequest(object_id=bytes.fromhex("cd" * 10),
                                           locations=locations))
        assert reply.ok, reply.error
        assert bytes(dest.get("cd" * 10)) == data
        assert len(refused) == 1    # the broken one was tried, then skipped
        monkeypatch.setattr(nodes["127.0.0.1:2"].transfer._ranges, "_open_copy",
                            lambda oid: None)
        dest.delete("cd" * 10)
        reply = puller.pull(pb.PullRequest(object_id=bytes.fromhex("cd" * 10),
                                           locations=locations))
        assert not reply.ok and "went away during the transfer" in reply.error, reply
        assert not dest.contains("cd" * 10)
    finally:
        for node in nodes.values():
            node.transfer.stop()
        puller.stop()


def test_ranges_stay_on_grpc_when_asked_or_with_tls(tmp_path, monkeypatch):
    from ember._private import tls

    store = ShmStore(str(tmp_path), "ember_x_")
    transfer = ObjectTransfer(store, "x", None, lambda oid, size: None)
    monkeypatch.setenv(object_transfer.RANGES_ENV, "grpc")
    assert transfer.serve_ranges("tok", "127.0.0.1") == 0
    monkeypatch.setenv(object_transfer.RANGES_ENV, "carrier-pigeon")
    with pytest.raises(ValueError, match="use socket or grpc"):
        transfer.serve_ranges("tok", "127.0.0.1")
    monkeypatch.delenv(object_transfer.RANGES_ENV)
    monkeypatch.setattr(tls, "load", lambda: object())
    assert transfer.serve_ranges("tok", "127.0.0.1") == 0
    store.put_bytes("ef" * 10, b"q" * 100)
    head = next(iter(transfer.read(pb.ReadRequest(object_id=bytes.fromhex("ef" * 10)))))
    assert head.range_port == 0 and head.total_size == 100


def test_a_spilled_copy_is_served_over_the_range_socket(tmp_path, monkeypatch):
    store, space, transfer, data, oids = _with_one_spilled(tmp_path, monkeypatch, "spiller2")
    port = transfer.serve_ranges("tok", "127.0.0.1")
    fd = os.open(tmp_path / "got", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        from ember._private.object_stream import read_range
        assert read_range(("127.0.0.1", port), "tok", oids[0], 100, 500_000, fd) == len(data[0])
        assert os.pread(fd, 500_000, 100) == data[0][100:500_100]
    finally:
        os.close(fd)
        transfer.stop()
        space.stop()
        store.cleanup_all()

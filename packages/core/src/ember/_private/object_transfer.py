"""Moving shared-memory objects between nodes, run by each node manager.

A process that needs an object whose copies are on other nodes asks its own
node manager (PullObject). The node manager pulls it from a node that has a
copy (ReadObject: a server stream of chunks), writing straight into a new file
in its shared-memory store, and tells the object's owner about the new copy so
that later readers can pull from here and the owner frees it with the rest.

* Bounded memory: chunks are CHUNK_BYTES; gRPC flow control keeps only a few
  in flight per stream, and they are written into the new file as they come
  (os.pwrite: no GIL held while copying, no page faults in a fresh mapping).
* Kernel-side: past the first chunk (a ReadObject message, which carries the
  size and the source's range port), the rest comes over object_stream.py's
  plain socket (sendfile on the source, splice into the new file here), the
  bytes never passing through Python. Without that listener (TLS configured,
  or EMBER_OBJECT_RANGES=grpc) ranges come over RAW_READ_METHOD as bare bytes,
  without protobuf framing.
* Parallel: over gRPC, objects over PARALLEL_MIN_BYTES are read as
  PARALLEL_STREAMS ranges at once (one socket range is faster than two here:
  2.7 against 2.1 GB/s on 2 vCPUs).
* Spread load: the source is picked at random among the known copies, so many
  nodes fetching one object do not all read from its origin.
* Deduplicated: concurrent pulls of one object on one node share one transfer.
* Within capacity: a copy gets room in the store before it is written (the
  node's store manager may spill others to disk for it). A pull of an object
  this node spilled restores it from disk instead, and another node reading a
  spilled object is served straight from its spill file.
"""
from __future__ import annotations

import concurrent.futures
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any, Callable, Generator

import grpc

from . import object_stream, tls
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg
from .shm_store import ShmStore
from .store_manager import StoreFull

CHUNK_BYTES = 8 << 20
# Ranges travel on a raw-bytes stream method (no protobuf around the payload):
# a protobuf bytes field costs an extra copy on each side of every chunk.
RAW_READ_METHOD = "/ember.ObjectStream/Read"
PARALLEL_STREAMS = 4
PARALLEL_MIN_BYTES = 32 << 20
RANGES_ENV = "EMBER_OBJECT_RANGES"      # "socket" (default) or "grpc"


class _Pull:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: pb.PullReply | None = None


class ObjectTransfer:
    def __init__(self, store: ShmStore, node_id: str, stub_for: Callable[[str, Any], Any],
                 on_sealed: Callable[[bytes, int], None], space: Any = None) -> None:
        self.store = store
        self.node_id = node_id
        self._stub_for = stub_for          # (address, stub class) -> token-carrying stub
        self._on_sealed = on_sealed        # bookkeeping in the node manager
        # The node's store_manager.StoreManager (room, spilled copies); None: unlimited.
        self._space = space
        self._lock = threading.Lock()
        self._pulls: dict[bytes, _Pull] = {}
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL_STREAMS * 2,
                                        thread_name_prefix="ember-pull")
        self._ranges: object_stream.RangeServer | None = None
        self._token = ""

    def serve_ranges(self, token: str, host: str) -> int:
        """Start this node's object_stream.py listener; its port, or 0 where ranges stay
        on gRPC (TLS configured: the socket path is not encrypted; or RANGES_ENV=grpc)."""
        self._token = token
        mode = os.environ.get(RANGES_ENV, "socket").strip().lower() or "socket"
        if mode not in ("socket", "grpc"):
            raise ValueError(f"{RANGES_ENV}={mode!r} is not a transfer mode: use socket or grpc")
        if mode == "grpc" or tls.load() is not None:
            return 0
        self._ranges = object_stream.RangeServer(token, host, self._open_copy)
        return self._ranges.port

    def _open_copy(self, object_id: bytes) -> tuple[int, int] | None:
        opened = self.store.open_sealed(object_id.hex())
        if opened is None and self._space is not None:
            opened = self._space.open_spilled(object_id)
        return opened

    # ------------------------------------------------------------ serving copies
    def read(self, request: pb.ReadRequest) -> Any:
        """ReadObject: stream a local copy (or a range of it) in chunks."""
        port = self._ranges.port if self._ranges is not None else 0
        with closing(self._chunks(request)) as chunks:
            for off, data, total in chunks:
                yield pb.Chunk(offset=off, data=data, total_size=total, range_port=port)
                port = 0

    def read_raw(self, request: pb.ReadRequest, context: Any) -> Any:
        """The raw stream: a range of a local copy as bare byte chunks, in order."""
        with closing(self._chunks(request)) as chunks:
            for _, data, _ in chunks:
                if data:        # b"" only marks an empty range: the raw stream sends nothing
                    yield data

    def _chunks(self, request: pb.ReadRequest) -> Generator[tuple[int, bytes, int], None, None]:
        """(offset, bytes, object size) for each chunk of the requested range of a local copy.

        Nothing if there is no local copy; a single ``(start, b"", size)`` if the
        range is empty (ReadObject still tells the reader the size). The copy is
        held while the chunks are read and released when the generator finishes
        or is closed.
        """
        hex_id = request.object_id.hex()
        view = self.store.get(hex_id)
        if view is None and self._space is not None:
            view = self._space.spilled_view(request.object_id)
        if view is None:
            return
        try:
            total = len(view)
            start = max(0, request.offset)
            end = total if request.length <= 0 else min(total, start + request.length)
            if start >= end:
                yield start, b"", total
                return
            for off in range(start, end, CHUNK_BYTES):
                yield off, bytes(view[off:min(end, off + CHUNK_BYTES)]), total
        finally:
            del view
            self.store.release(hex_id)

    def generic_handler(self) -> Any:
        """Register with the node manager's server: serves RAW_READ_METHOD."""
        handler = grpc.unary_stream_rpc_method_handler(
            self.read_raw, request_deserializer=pb.ReadRequest.FromString,
            response_serializer=None)
        service, method = RAW_READ_METHOD.strip("/").split("/")
        return grpc.method_handlers_generic_handler(service, {method: handler})

    # ------------------------------------------------------------ fetching copies
    def pull(self, request: pb.PullRequest) -> pb.PullReply:
        """PullObject: make a local copy; concurrent callers share one transfer."""
        oid = request.object_id
        size = self.store.size(oid.hex())
        if size is not None:
            if self._space is not None:
                self._space.touch(oid)
            return pb.PullReply(ok=True, size=size)
        with self._lock:
            pull = self._pulls.get(oid)
            leader = pull is None
            if leader:
                pull = self._pulls[oid] = _Pull()
        assert pull is not None
        if not leader:
            pull.done.wait()
            return pull.reply or pb.PullReply(ok=False, error="pull failed")
        try:
            restored = self._restore(oid)
            pull.reply = restored if restored is not None else self._transfer(request)
        except StoreFull as e:
            pull.reply = pb.PullReply(ok=False, error=str(e), store_full=True)
        except Exception as e:  # noqa: BLE001 - reported to every waiter
            pull.reply = pb.PullReply(ok=False, error=f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._pulls.pop(oid, None)
            pull.done.set()
        return pull.reply

    def _restore(self, oid: bytes) -> pb.PullReply | None:
        """Bring back a copy this node spilled to disk; None if it has none."""
        if self._space is None:
            return None
        size = self._space.restore(oid)
        if size is None:
            # Not spilled; it may have been restored (or sealed) since we looked.
            size = self.store.size(oid.hex())
            return None if size is None else pb.PullReply(ok=True, size=size)
        return pb.PullReply(ok=True, size=size)

    def _transfer(self, request: pb.PullRequest) -> pb.PullReply:
        sources = [loc for loc in request.locations if loc.node_id != self.node_id and loc.port]
        random.shuffle(sources)
        errors = []
        for source in sources:
            address = f"{source.ip}:{source.port}"
            try:
                size = self._copy_from(request.object_id, address, source.ip)
            except grpc.RpcError as e:
                errors.append(f"{address}: {e.code().name}")
                continue
            except OSError as e:    # the socket path: refused, broken, stalled, short
                errors.append(f"{address}: {e}")
                continue
            if size is None:
                errors.append(f"{address}: no copy there")
                continue
            self._on_sealed(request.object_id, size)
            return pb.PullReply(ok=True, size=size, copied=True)
        detail = "; ".join(errors) or "no other node is known to hold it"
        return pb.PullReply(ok=False, error=f"could not fetch the object ({detail})")

    def _copy_from(self, object_id: bytes, address: str, ip: str) -> int | None:
        stub = self._stub_for(address, pbg.NodeManagerStub)
        first = stub.ReadObject.raw(pb.ReadRequest(object_id=object_id, offset=0,
                                                   length=CHUNK_BYTES), metadata=stub._md,
                                    timeout=300)
        head: pb.Chunk | None = next(iter(first), None)
        if head is None:
            return None
        total = head.total_size
        ranges = []
        by_socket = bool(head.range_port and self._token)
        if total > len(head.data):
            rest = total - len(head.data)
            n = PARALLEL_STREAMS if total >= PARALLEL_MIN_BYTES and not by_socket else 1
            step = -(-rest // n)
            step = -(-step // CHUNK_BYTES) * CHUNK_BYTES
            for start in range(len(head.data), total, step):
                ranges.append((start, min(step, total - start)))

        def write(fd: int) -> None:
            _pwrite_all(fd, head.data, 0)
            if by_socket:
                futures = [self._pool.submit(self._copy_range_socket, (ip, head.range_port),
                                             object_id, start, length, fd)
                           for start, length in ranges]
            else:
                futures = [self._pool.submit(self._copy_range, stub, object_id, start, length,
                                             fd) for start, length in ranges]
            # Every range must be finished before fd is closed, even when one failed.
            concurrent.futures.wait(futures)
            for fut in futures:
                fut.result()

        if self._space is not None:
            self._space.create(object_id, total, "")
        try:
            self.store.create_with_file(object_id.hex(), total, write)
        except BaseException:
            if self._space is not None:
                self._space.abort(object_id)
            raise
        return total

    @staticmethod
    def _copy_range(stub: Any, object_id: bytes, start: int, length: int, fd: int) -> None:
        read = stub.channel.unary_stream(
            RAW_READ_METHOD, request_serializer=pb.ReadRequest.SerializeToString,
            response_deserializer=None)
        call = read(pb.ReadRequest(object_id=object_id, offset=start, length=length),
                    metadata=stub._md, timeout=600)
        got = 0
        for chunk in call:
            # pwrite copies without the GIL (ranges land in parallel) and into
            # the file's pages directly (no faulting in of a fresh mapping).
            _pwrite_all(fd, chunk, start + got)
            got += len(chunk)
        if got != length:
            raise RuntimeError(f"short read: {got} of {length} bytes at offset {start}")

    def _copy_range_socket(self, address: tuple[str, int], object_id: bytes, start: int,
                           length: int, fd: int) -> None:
        if object_stream.read_range(address, self._token, object_id, start, length, fd) < 0:
            raise OSError(f"the copy at {address[0]} went away during the transfer")

    def stop(self) -> None:
        if self._ranges is not None:
            self._ranges.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        wrote = os.pwrite(fd, view[done:], offset + done)
        if wrote <= 0:
            raise OSError(f"could not write the object copy (wrote {wrote} bytes)")
        done += wrote

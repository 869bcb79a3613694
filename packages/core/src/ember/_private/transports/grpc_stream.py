"""PushTasks over a gRPC bidirectional stream (``EMBER_PUSH_TRANSPORT=grpc``).

The server side is ``CoreWorker.PushTasks -> TaskExecutor.serve_stream``.
"""
from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc

from ..protos import ember_pb2 as pb
from .base import PushCall, PushTransport


def merged_batches(q: queue.SimpleQueue) -> Iterator[pb.TaskBatch]:
    """The request side of a PushTasks stream: the TaskBatches put on ``q``, in
    order, each merged with those already waiting behind it (None ends it).

    gRPC takes the next message only once the last one is written, so a burst
    of submissions queued meanwhile leaves as one message instead of one each.
    Merging keeps the order of tasks, and a batch's pin releases and cancels
    only ever concern tasks sent before them.

    >>> q = queue.SimpleQueue()
    >>> for b in (pb.TaskBatch(release_pins=[b"a"]), pb.TaskBatch(release_pins=[b"b"]), None):
    ...     q.put(b)
    >>> [list(b.release_pins) for b in merged_batches(q)]
    [[b'a', b'b']]
    """
    while True:
        batch = q.get()
        if batch is None:
            return
        end = False
        while True:
            try:
                nxt = q.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                end = True
                break
            batch.MergeFrom(nxt)
        yield batch
        if end:
            return


class GrpcPushCall(PushCall):
    def __init__(self, core: Any, address: pb.Address) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        stub = core.core_stub(f"{address.ip}:{address.port}")
        self._call = stub.PushTasks.raw(merged_batches(self._q), metadata=stub._md)

    def __iter__(self) -> Iterator[pb.ResultBatch]:
        try:
            yield from self._call
        except grpc.RpcError:
            return

    def send(self, batch: pb.TaskBatch) -> None:
        self._q.put(batch)

    def close(self) -> None:
        self._q.put(None)

    def cancel(self) -> None:
        self._call.cancel()


class GrpcTransport(PushTransport):
    name = "grpc"

    def open(self, core: Any, address: pb.Address) -> PushCall:
        return GrpcPushCall(core, address)


__all__ = ["GrpcPushCall", "GrpcTransport", "merged_batches"]

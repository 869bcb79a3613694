"""Turning a stream of blocks into batches: prefetching, re-batching, local shuffling."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

import ember

from . import block as B
from .bundle import RefBundle

__all__ = ["batch_blocks", "prefetch_blocks"]

_END = object()


def _fetch(bundles: Iterator[RefBundle]) -> Iterator[B.Block]:
    for bundle in bundles:
        for ref, _ in bundle.blocks:
            yield ember.get(ref)


def prefetch_blocks(bundles: Iterator[RefBundle], prefetch: int) -> Iterator[B.Block]:
    """Blocks of the bundles; with ``prefetch > 0`` a thread reads up to that many ahead."""
    if prefetch <= 0:
        yield from _fetch(bundles)
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for block in _fetch(bundles):
                while not stop.is_set():
                    try:
                        q.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            item: Any = _END
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            item = e
        finally:
            close = getattr(bundles, "close", None)
            if close is not None and stop.is_set():
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="ember-data-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # Stop the execution feeding the thread too, so it is not left blocked on an
        # output nobody will read.
        halt = getattr(bundles, "stop", None)
        if halt is not None:
            halt()
        thread.join(timeout=10)


def batch_blocks(blocks: Iterator[B.Block], *, batch_size: int | None, drop_last: bool,
                 shuffle_buffer: int | None, shuffle_seed: int | None) -> Iterator[B.Block]:
    """Blocks of exactly ``batch_size`` rows (``None``: one per input block).

    With a shuffle buffer, rows are drawn at random from at least ``shuffle_buffer``
    buffered rows (a local shuffle: cheap, but only as random as the buffer is large).
    """
    if shuffle_buffer:
        yield from _shuffled(blocks, batch_size or 256, shuffle_buffer, shuffle_seed, drop_last)
        return
    yield from B.rebatch_blocks(blocks, batch_size, drop_last=drop_last)


def _shuffled(blocks: Iterator[B.Block], batch_size: int, buffer_size: int,
              seed: int | None, drop_last: bool) -> Iterator[B.Block]:
    rng = np.random.default_rng(seed)
    buffer: B.Block | None = None

    def permuted(table: B.Block) -> B.Block:
        return table.take(pa.array(rng.permutation(table.num_rows), type=pa.int64()))

    for block in blocks:
        if not block.num_rows:
            continue
        buffer = block if buffer is None else B.concat([buffer, block])
        if buffer.num_rows >= buffer_size + batch_size:
            buffer = permuted(buffer)
            while buffer.num_rows >= buffer_size + batch_size:
                yield buffer.slice(0, batch_size)
                buffer = buffer.slice(batch_size)
    if buffer is not None and buffer.num_rows:
        buffer = permuted(buffer)
        while buffer.num_rows >= batch_size:
            yield buffer.slice(0, batch_size)
            buffer = buffer.slice(batch_size)
        if buffer.num_rows and not drop_last:
            yield buffer


def format_batches(batches: Iterator[B.Block], fmt: str,
                   collate_fn: Callable[[Any], Any] | None) -> Iterator[Any]:
    from .batch import block_to_batch
    for block in batches:
        batch = block_to_batch(block, fmt)
        yield collate_fn(batch) if collate_fn is not None else batch

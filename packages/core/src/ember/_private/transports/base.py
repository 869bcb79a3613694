"""The PushTasks transport interface and the registry that picks one.

An owner opens one ``PushCall`` per leased worker or actor connection: it
``send``s TaskBatches (queued batches leave merged, in order), iterates the
ResultBatches that come back on its reader thread, and ``close``s its side
when done (the worker then ends the stream). A broken connection simply ends
the iteration, as a broken gRPC stream does: the caller treats that as the
worker's death. ``EMBER_PUSH_TRANSPORT`` (``framed`` by default, or ``grpc``)
selects the implementation; a worker that advertises no framed port
(``Address.push_port == 0``) is reached over gRPC.

>>> call = get().open(core, lease_reply.worker)
>>> call.send(pb.TaskBatch(tasks=[spec]))
>>> for batch in call: ...          # on a reader thread; ends when the stream does
"""
from __future__ import annotations

import abc
import os
from collections.abc import Iterator
from typing import Any, Callable

from ..protos import ember_pb2 as pb

TRANSPORT_ENV = "EMBER_PUSH_TRANSPORT"
DEFAULT = "framed"


class PushCall(abc.ABC):
    """One PushTasks stream from an owner to a worker."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[pb.ResultBatch]:
        """The worker's ResultBatches, in order; ends (never raises) when the stream does."""

    @abc.abstractmethod
    def send(self, batch: pb.TaskBatch) -> None:
        """Queue ``batch`` for the worker (never blocks on a busy stream; no-op once broken)."""

    @abc.abstractmethod
    def close(self) -> None:
        """No more batches: the worker finishes the stream (its iteration then ends)."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Drop the stream now, as a broken connection would."""


class PushTransport(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def open(self, core: Any, address: pb.Address) -> PushCall:
        """A stream to the worker at ``address`` (ip, port, push_port); never blocks on the
        network: a worker that cannot be reached shows as a stream that ends at once."""


_REGISTRY: dict[str, Callable[[], PushTransport]] = {}
_INSTANCES: dict[str, PushTransport] = {}


def register(name: str, factory: Callable[[], PushTransport]) -> None:
    """Make a transport selectable as ``EMBER_PUSH_TRANSPORT=<name>``."""
    _REGISTRY[name] = factory


def selected() -> str:
    """The transport this process's environment asks for.

    >>> os.environ[TRANSPORT_ENV] = "grpc"; selected()
    'grpc'
    """
    name = os.environ.get(TRANSPORT_ENV, "").strip().lower() or DEFAULT
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"{TRANSPORT_ENV}={name!r} is not a PushTasks transport: use one of "
                         f"{', '.join(sorted(_REGISTRY))}")
    return name


def get(name: str | None = None) -> PushTransport:
    """The transport named ``name`` (default: the selected one), created once."""
    name = name or selected()
    transport = _INSTANCES.get(name)
    if transport is None:
        _load_builtins()
        transport = _INSTANCES[name] = _REGISTRY[name]()
    return transport


def open_push(core: Any, address: pb.Address) -> PushCall:
    """Open a PushTasks stream to ``address`` with the selected transport; gRPC for a
    worker that advertises no framed port."""
    name = selected()
    if name == "framed" and not address.push_port:
        name = "grpc"
    return get(name).open(core, address)


def _load_builtins() -> None:
    if "grpc" not in _REGISTRY:
        from . import framed, grpc_stream
        register("grpc", grpc_stream.GrpcTransport)
        register("framed", framed.FramedTransport)


__all__ = ["DEFAULT", "PushCall", "PushTransport", "TRANSPORT_ENV", "get", "open_push",
           "register", "selected"]

"""Identifiers for tasks, objects, workers and nodes.

A task id is 16 bytes: an 8-byte random prefix drawn once per process plus an
8-byte counter, so minting one costs no syscall. An object id is its creating
task's id plus a 4-byte return index; ``put`` objects use indexes from
``PUT_INDEX_BASE`` upward so they never collide with task returns.
"""
from __future__ import annotations

import itertools
import os
import struct
import threading

# Carries the cluster token to the processes a node starts (never on a command
# line: those are world-readable). Here so that no caller needs gRPC for it.
TOKEN_ENV = "EMBER_CLUSTER_TOKEN"
TASK_ID_LEN = 16
OBJECT_ID_LEN = 20
PUT_INDEX_BASE = 1 << 31

_prefix = os.urandom(8)
_counter = itertools.count(1)
_pid = os.getpid()
_lock = threading.Lock()


def _refresh_after_fork() -> None:
    # A forked child must not mint the same ids as its parent.
    global _prefix, _counter, _pid
    _prefix = os.urandom(8)
    _counter = itertools.count(1)
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_after_fork)


def new_task_id() -> bytes:
    return _prefix + struct.pack("<Q", next(_counter))


def object_id_for(task_id: bytes, index: int) -> bytes:
    return task_id + struct.pack("<I", index)


def task_id_of(object_id: bytes) -> bytes:
    return object_id[:TASK_ID_LEN]


def index_of(object_id: bytes) -> int:
    return struct.unpack("<I", object_id[TASK_ID_LEN:])[0]


def new_unique_hex(nbytes: int = 14) -> str:
    return os.urandom(nbytes).hex()


def new_token() -> str:
    """A new cluster token: 24 random bytes as hex (rpc.py checks it on every call)."""
    return os.urandom(24).hex()


class BinaryID:
    """An id held as bytes, shown as hex (the base of ``ActorID``, ``PlacementGroupID``).

    Equality is by kind and bytes: ids of two different kinds (an ``ActorID`` and
    a ``PlacementGroupID``) never compare equal, even over the same bytes.

    >>> class AID(BinaryID): __slots__ = ()
    >>> class BID(BinaryID): __slots__ = ()
    >>> AID(b"ab") == AID(b"ab"), AID(b"ab") == BID(b"ab"), AID(b"ab")
    (True, False, AID(6162))
    """

    __slots__ = ("_b",)

    def __init__(self, b: bytes) -> None:
        self._b = b

    def binary(self) -> bytes:
        return self._b

    def hex(self) -> str:
        return self._b.hex()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BinaryID) and type(other) is type(self)
                and other._b == self._b)

    def __hash__(self) -> int:
        return hash(self._b)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._b.hex()})"

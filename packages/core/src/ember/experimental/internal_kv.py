"""The cluster's key-value store, as in ``ray.experimental.internal_kv``.

Values live in the control service and are written through to SQLite in the
session directory, so they survive a restart of the control service.

>>> from ember.experimental import internal_kv
>>> internal_kv._internal_kv_put("model", b"v3")
False
>>> internal_kv._internal_kv_get("model")
b'v3'
"""
from __future__ import annotations


__all__ = [
    "_internal_kv_del",
    "_internal_kv_exists",
    "_internal_kv_get",
    "_internal_kv_initialized",
    "_internal_kv_list",
    "_internal_kv_put",
]

Key = str | bytes

# Namespaces the control service uses for itself; a user namespace of the same
# name would read and overwrite its entries.
_RESERVED = {"fn", "cluster", "meta"}
_TIMEOUT = 60.0


def _bytes(value: Key, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"the {what} must be str or bytes, got {type(value).__name__}: encode it "
                    "first (e.g. pickle.dumps(obj) for a value)")


def _ns(namespace: Key | None) -> str:
    if namespace is None:
        return ""
    ns = namespace.decode() if isinstance(namespace, (bytes, bytearray)) else namespace
    if not isinstance(ns, str):
        raise TypeError(f"namespace must be str or bytes, got {type(namespace).__name__}")
    if ns in _RESERVED:
        raise ValueError(f"namespace {ns!r} is reserved for Ember itself; pick another name")
    return ns


def _gcs():
    from .._private import worker_state
    return worker_state.require_core().gcs


def _internal_kv_initialized() -> bool:
    """Whether this process is connected to a cluster (so the KV can be used)."""
    from .._private import worker_state
    return worker_state.core is not None


def _internal_kv_get(key: Key, *, namespace: Key | None = None) -> bytes | None:
    """The value stored under ``key``, or None.

    >>> _internal_kv_get("model", namespace="serving")
    """
    from .._private.protos import ember_pb2 as pb
    reply = _gcs().KVGet(pb.KVRequest(ns=_ns(namespace), key=_bytes(key, "key")),
                         timeout=_TIMEOUT)
    return reply.value if reply.found else None


def _internal_kv_exists(key: Key, *, namespace: Key | None = None) -> bool:
    """Whether ``key`` has a value.

    >>> _internal_kv_exists("model")
    True
    """
    return _internal_kv_get(key, namespace=namespace) is not None


def _internal_kv_put(key: Key, value: Key, overwrite: bool = True, *,
                     namespace: Key | None = None) -> bool:
    """Store ``value`` under ``key``; returns True if the key already existed (as Ray).

    With ``overwrite=False`` an existing value is kept.

    >>> _internal_kv_put("model", b"v4", overwrite=False)
    True
    """
    from .._private.protos import ember_pb2 as pb
    reply = _gcs().KVPut(pb.KVRequest(ns=_ns(namespace), key=_bytes(key, "key"),
                                      value=_bytes(value, "value"), overwrite=overwrite),
                         timeout=_TIMEOUT)
    return not reply.added


def _internal_kv_del(key: Key, *, del_by_prefix: bool = False,
                     namespace: Key | None = None) -> int:
    """Delete ``key`` (or every key starting with it); returns how many were deleted.

    >>> _internal_kv_del("model")
    1
    """
    from .._private.protos import ember_pb2 as pb
    ns, k = _ns(namespace), _bytes(key, "key")
    keys = _internal_kv_list(k, namespace=namespace) if del_by_prefix else [k]
    gcs = _gcs()
    return sum(gcs.KVDel(pb.KVRequest(ns=ns, key=one), timeout=_TIMEOUT).found for one in keys)


def _internal_kv_list(prefix: Key, *, namespace: Key | None = None) -> list[bytes]:
    """Keys starting with ``prefix``.

    >>> _internal_kv_list("mod")
    [b'model']
    """
    from .._private.protos import ember_pb2 as pb
    reply = _gcs().KVKeys(pb.KVRequest(ns=_ns(namespace), key=_bytes(prefix, "prefix")),
                          timeout=_TIMEOUT)
    return list(reply.keys)

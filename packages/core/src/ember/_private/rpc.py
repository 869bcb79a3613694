"""gRPC plumbing shared by every Ember process: token auth, servers, channels.

Every call carries the cluster token in the ``ember-token`` metadata entry and
every server rejects calls without the right one before the handler (and so
before any payload is unpickled) runs. Servers bind to 127.0.0.1 unless told
otherwise. With EMBER_TLS_* set (tls.py), servers and channels speak only TLS.

A unary call that fails with UNAVAILABLE may or may not have reached the server
(the request or the reply was lost); ``call_with_retry`` resends such calls for
methods that are safe to repeat. ``EMBER_TESTING_RPC_FAILURE`` makes every
``Stub`` drop calls on purpose, to test those paths (``rpc_chaos.py``).
"""
from __future__ import annotations

import hmac
from concurrent import futures
from typing import Any, Callable

import grpc

from .ids import TOKEN_ENV, new_token  # noqa: F401 - re-exported: the token every RPC carries

TOKEN_METADATA_KEY = "ember-token"

# Large values go through shared memory; messages stay small, but pickled
# functions with big closures and inline error tracebacks can exceed 4 MB.
_MAX_MESSAGE = 1 << 30
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.enable_retries", 0),
    # Two servers must never share a port (a stale process would steal calls).
    ("grpc.so_reuseport", 0),
]


class _TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token.encode()

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing or wrong cluster token (AuthenticationError): "
                          "connect with the token of this cluster")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(
            lambda it, ctx: deny(None, ctx))
        self._deny_unary_stream = grpc.unary_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails):
        supplied = b""
        for key, value in details.invocation_metadata or ():
            if key == TOKEN_METADATA_KEY:
                supplied = value.encode() if isinstance(value, str) else value
                break
        if hmac.compare_digest(supplied, self._token):
            return continuation(details)
        handler = continuation(details)
        if handler is None:
            return None
        if handler.request_streaming:
            return self._deny_stream
        if handler.response_streaming:
            return self._deny_unary_stream
        return self._deny_unary


def make_server(token: str, max_workers: int = 16) -> grpc.Server:
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ember-rpc"),
        interceptors=[_TokenInterceptor(token)],
        options=CHANNEL_OPTIONS,
    )


def bind(server: grpc.Server, host: str = "127.0.0.1", port: int = 0) -> int:
    from . import tls  # EMBER_TLS_*: every server of a TLS cluster speaks only TLS

    cfg = tls.load()
    try:
        if cfg is not None:
            bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials(cfg))
        else:
            bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        # Newer grpcio raises ("Failed to bind") instead of returning 0.
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}: the port is taken or the address is not local")
    return bound


class _AuthPlugin(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self._md = ((TOKEN_METADATA_KEY, token),)

    def __call__(self, context: Any, callback: Any) -> None:
        callback(self._md, None)


def channel(address: str, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
    """A channel to ``address``; ``options``: extra gRPC channel arguments.

    TLS (tls.py) when this process has EMBER_TLS_* set.
    """
    from . import tls

    opts = CHANNEL_OPTIONS + list(options or ())
    cfg = tls.load()
    if cfg is None:
        return grpc.insecure_channel(address, options=opts)
    return grpc.secure_channel(address, tls.channel_credentials(cfg),
                               options=opts + tls.channel_options(cfg))


# Codes that say "the call may not have reached the server, or its reply was lost":
# an idempotent call is worth sending again.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


def is_retryable(error: BaseException) -> bool:
    code = getattr(error, "code", None)
    try:
        return callable(code) and code() in RETRYABLE_CODES
    except Exception:  # noqa: BLE001 - a half-initialised error object
        return False


def backoff(attempt: int, base: float = 0.1, cap: float = 2.0) -> float:
    """Exponential delay before retry number ``attempt`` (0-based), jittered.

    >>> 0.05 <= backoff(0) <= 0.1
    True
    """
    import random

    delay = min(cap, base * (2 ** attempt))
    return delay * (0.5 + random.random() / 2)


def call_with_retry(method: Callable, request: Any, timeout: float | None = None,
                    attempts: int = 6, base: float = 0.1, **kw: Any) -> Any:
    """Call an idempotent unary method, retrying UNAVAILABLE (dropped request or reply).

    After ``attempts`` tries the last error is raised: a server that stays
    unreachable for that long (about 3 s with the defaults) is taken to be gone.

    >>> call_with_retry(stub.ReturnWorkerLease, pb.ReturnLease(lease_id=b"1"), timeout=10)
    """
    import time

    for attempt in range(attempts):
        try:
            return method(request, timeout=timeout, **kw)
        except grpc.RpcError as e:
            if attempt == attempts - 1 or not is_retryable(e):
                raise
        time.sleep(backoff(attempt, base))
    raise AssertionError("unreachable")


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((TOKEN_METADATA_KEY, token),)


class Stub:
    """A service stub whose every call carries the cluster token.

    >>> s = Stub(channel("127.0.0.1:1234"), ember_pb2_grpc.NodeManagerStub, token)
    >>> s.GetStatus(ember_pb2.Empty(), timeout=5)
    """

    def __init__(self, chan: grpc.Channel, stub_cls: type, token: str) -> None:
        from . import rpc_chaos  # injected failures (tests only); a no-op unless set

        self._stub = stub_cls(rpc_chaos.wrap(chan))
        self._md = metadata(token)
        self.channel = chan

    def __getattr__(self, name: str) -> Callable:
        method = getattr(self._stub, name)
        md = self._md

        def call(request: Any, timeout: float | None = None, **kw: Any) -> Any:
            return method(request, timeout=timeout, metadata=md, **kw)

        def future(request: Any, timeout: float | None = None) -> Any:
            return method.future(request, timeout=timeout, metadata=md)

        call.future = future  # type: ignore[attr-defined]
        call.raw = method  # type: ignore[attr-defined]
        setattr(self, name, call)
        return call


def wait_ready(chan: grpc.Channel, timeout: float, what: str) -> None:
    try:
        grpc.channel_ready_future(chan).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ConnectionError(
            f"could not reach {what} within {timeout:.0f}s: check the address and that the "
            "cluster is running (ember status)") from None

"""What the head's HTTP servers (dashboard, job server) share: how the head starts
them (their command line), their listening socket, and publishing their URL in the
control service's KV so that clients and `ember status` can find them."""
from __future__ import annotations

import argparse
import errno
import logging
import socket
import threading
import time

logger = logging.getLogger("ember")


def server_argv(module: str, gcs_address: str, host: str, port: int,
                explicit_port: bool) -> list[str]:
    """The arguments (after the interpreter) that start ``module``'s server; a port
    the user did not name falls back to any free one.

    >>> server_argv("ember._private.job_server", "127.0.0.1:6379", "127.0.0.1", 8266, False)[-1]
    '--port-fallback'
    """
    argv = ["-m", module, "--gcs-address", gcs_address, "--host", host, "--port", str(port)]
    if not explicit_port:
        argv.append("--port-fallback")
    return argv


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags server_argv and node._spawn pass to a head HTTP server."""
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-fallback", action="store_true")
    parser.add_argument("--session-dir", default="")
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-fd", type=int, default=-1)


def bind(host: str, port: int, fallback: bool) -> socket.socket:
    """A listening socket on ``host:port``; with ``fallback``, on any free port when
    ``port`` is taken.

    >>> s = bind("127.0.0.1", 0, fallback=False); s.getsockname()[1] > 0
    True
    >>> s.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in ([port, 0] if fallback and port else [port]):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE and candidate:
                logger.info("port %d on %s is in use", candidate, host)
                continue
            raise
        sock.listen(128)
        sock.set_inheritable(False)
        return sock
    raise OSError(errno.EADDRINUSE, f"port {port} on {host} is already in use")


def publish(gcs_address: str, token: str, key: str, url: str, *,
            stop: threading.Event | None = None, deadline: float | None = None) -> bool:
    """Put ``url`` under ``cluster``/``key`` in the control service's KV, retrying
    while it starts (until ``deadline``, a time.monotonic(), or ``stop``); whether
    it got there."""
    from . import rpc
    from .addresses import wait_listening
    from .node import CLUSTER_KV_NS, split_address
    from .protos import ember_pb2 as pb
    from .protos import ember_pb2_grpc as pbg
    stop = stop or threading.Event()

    def going() -> bool:
        return not stop.is_set() and (deadline is None or time.monotonic() < deadline)

    wait_listening(*split_address(gcs_address), stop, deadline)   # started alongside
    chan = rpc.channel(gcs_address)
    try:
        stub = rpc.Stub(chan, pbg.ControlServiceStub, token)
        while going():
            try:
                stub.KVPut(pb.KVRequest(ns=CLUSTER_KV_NS, key=key.encode(),
                                        value=url.encode(), overwrite=True), timeout=5)
                return True
            except Exception as e:  # noqa: BLE001 - not up yet: try again
                logger.debug("KVPut of %s failed: %s", key, e)
                stop.wait(0.2)
        return False
    finally:
        chan.close()

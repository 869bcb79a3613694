"""Host:port addresses, and waiting for a server to listen at one.

Small and standard-library only: a node manager forked from the control
service's supervisor needs these before anything else it has not imported.
"""
from __future__ import annotations

import socket
import threading
import time


def split_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[v6]:PORT"`` too) as (host, port); ValueError naming the form.

    >>> split_address("[::1]:6379")
    ('::1', 6379)
    """
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} must look like HOST:PORT, e.g. 127.0.0.1:6379")
    return host.strip("[]"), int(port)


def is_listening(ip: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a server accepts connections at ``ip:port`` now.

    Asked instead of "can I bind it": a port whose server just died is still
    held for a while by its closing connections, yet is free to listen on again.
    """
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(ip: str, port: int, stop: threading.Event,
                   deadline: float | None = None) -> bool:
    """Until a server accepts connections at ``ip:port`` (True), ``stop`` is set or the
    ``deadline`` (time.monotonic()) passes. Callers of a control service starting
    alongside wait here first: a gRPC call to a port not open yet puts the channel
    into a reconnect backoff that can hold the call up to ~1 s after the port opens.
    """
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        if is_listening(ip, port, timeout=1.0):
            return True
        stop.wait(0.01)
    return False

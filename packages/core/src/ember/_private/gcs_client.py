"""Talking to the control service in a way that rides out its restart.

The control service may be down for a while: killed, then restarted on the
same address by its supervisor (gcs_supervisor.py) or by ``ember start --head``.
Drivers, workers and node managers reach it through a :class:`GcsClient`: a
call that finds it unreachable (UNAVAILABLE) is sent again with backoff until
it answers or ``EMBER_GCS_RECONNECT_TIMEOUT_S`` (60 s) has passed, and only then
fails. Nothing else changes for callers: the client has the methods of the
generated stub, each taking the request and ``timeout`` (per attempt), plus
``reconnect_s`` to shorten the wait (0: fail at once, for loops that retry
anyway, like heartbeats). Long-polls (GetActor, GetPlacementGroup) go through
the same path, so they pick up where they were after a restart.

A retried call may have reached the old control service before it died; the
calls clients make are safe to repeat (lookups, puts that overwrite, CreateActor
keyed by the actor id, a new job id).

:class:`DriverWatch` holds the driver's WatchDriver stream open and re-opens it
on the restarted control service, which waits for it (see gcs.py) before
treating the driver as gone.

>>> gcs = GcsClient("127.0.0.1:6379", token)
>>> gcs.KVGet(pb.KVRequest(ns="fn", key=b"..."), timeout=10)
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from . import rpc
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg

logger = logging.getLogger("ember")

RECONNECT_ENV = "EMBER_GCS_RECONNECT_TIMEOUT_S"
DEFAULT_RECONNECT_S = 60.0
# gRPC backs off reconnecting to a dead address up to 2 minutes by default; a
# restarted control service must be found within a second of coming back.
_RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100),
                      ("grpc.min_reconnect_backoff_ms", 100),
                      ("grpc.max_reconnect_backoff_ms", 1000)]


def reconnect_timeout() -> float:
    """Seconds callers wait for an unreachable control service (EMBER_GCS_RECONNECT_TIMEOUT_S).

    >>> reconnect_timeout()
    60.0
    """
    raw = os.environ.get(RECONNECT_ENV, "")
    if not raw:
        return DEFAULT_RECONNECT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{RECONNECT_ENV}={raw!r} is not a number of seconds; set it to e.g. "
                         "60, or unset it") from None
    if value < 0:
        raise ValueError(f"{RECONNECT_ENV}={raw!r} must be >= 0 seconds")
    return value


def backoff(attempt: int, base: float = 0.1, cap: float = 1.0) -> float:
    """Jittered exponential delay before retry ``attempt`` (0-based), at most ``cap``.

    >>> 0.05 <= backoff(0) <= 0.1
    True
    """
    delay = min(cap, base * (2 ** attempt))
    return delay * (0.5 + random.random() / 2)


def _unavailable(error: grpc.RpcError) -> bool:
    try:
        return error.code() == grpc.StatusCode.UNAVAILABLE
    except Exception:  # noqa: BLE001 - a half-built error object
        return False


class GcsClient:
    """A control-service stub whose calls wait out a restart (see the module docstring).

    ``warn``: log a warning when the control service becomes unreachable and when
    it is back (drivers); otherwise that is logged at INFO.

    >>> gcs = GcsClient(address, token, warn=True)
    >>> gcs.GetNodes(pb.Empty(), timeout=10)                  # waits up to 60 s for a restart
    >>> gcs.UpdateNode(info, timeout=5, reconnect_s=0)        # fails at once if unreachable
    """

    def __init__(self, address: str, token: str, *, reconnect_s: float | None = None,
                 warn: bool = False) -> None:
        self.address = address
        self.channel = rpc.channel(address, _RECONNECT_OPTIONS)
        self._stub = rpc.Stub(self.channel, pbg.ControlServiceStub, token)
        self._md = self._stub._md
        self.reconnect_s = reconnect_timeout() if reconnect_s is None else reconnect_s
        self._level = logging.WARNING if warn else logging.INFO
        self._closed = False
        self._down_since: float | None = None   # when calls started failing

    def close(self) -> None:
        """Stop retrying (calls in flight fail at their next attempt) and close the channel."""
        self._closed = True
        self.channel.close()

    def __getattr__(self, name: str) -> Callable:
        if name.startswith("_"):
            raise AttributeError(name)
        plain = getattr(self._stub, name)

        def call(request: Any, timeout: float | None = None, *,
                 reconnect_s: float | None = None, **kw: Any) -> Any:
            return self._call(plain, name, request, timeout, reconnect_s, kw)

        call.future = plain.future  # type: ignore[attr-defined]
        call.raw = plain.raw  # type: ignore[attr-defined]
        setattr(self, name, call)
        return call

    def _call(self, plain: Callable, name: str, request: Any, timeout: float | None,
              reconnect_s: float | None, kw: dict) -> Any:
        window = self.reconnect_s if reconnect_s is None else reconnect_s
        deadline: float | None = None
        attempt = 0
        while True:
            try:
                reply = plain(request, timeout=timeout, **kw)
            except grpc.RpcError as e:
                if not _unavailable(e) or self._closed:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + window
                    self._note_down(name, window)
                if now >= deadline:
                    raise
                time.sleep(min(backoff(attempt), max(0.0, deadline - now)))
                attempt += 1
                continue
            if self._down_since is not None:
                self._note_up()
            return reply

    def _note_down(self, name: str, window: float) -> None:
        if self._down_since is None and window > 0:
            self._down_since = time.monotonic()
            logger.log(self._level, "the control service at %s is unreachable (%s); retrying "
                       "for up to %g s (%s)", self.address, name, window, RECONNECT_ENV)

    def _note_up(self) -> None:
        since, self._down_since = self._down_since, None
        if since is not None:
            logger.log(self._level, "reconnected to the control service at %s after %.1f s",
                       self.address, time.monotonic() - since)


class DriverWatch:
    """Hold the driver's WatchDriver stream open, re-opening it whenever it breaks.

    The control service stops a driver's non-detached actors when its stream
    ends and the driver does not come back; re-opening it on a restarted
    control service is how the driver says it is still here. ``cancel()`` (at
    shutdown) ends it for good.

    >>> watch = DriverWatch(core.gcs, pb.DriverInfo(worker_id=core.worker_id, job_id=1))
    >>> watch.cancel()
    """

    def __init__(self, client: GcsClient, info: pb.DriverInfo) -> None:
        self._client = client
        self._info = info
        self._lock = threading.Lock()
        self._stopped = False
        self._call: Any = None
        self.reconnects = 0
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="ember-driver-watch")
        self._thread.start()

    def cancel(self) -> None:
        with self._lock:
            self._stopped = True
            call = self._call
        if call is not None:
            call.cancel()

    def _run(self) -> None:
        attempt = 0
        while True:
            with self._lock:
                if self._stopped:
                    return
                try:
                    watch: Any = self._client.WatchDriver
                    call = self._call = watch.raw(
                        self._info, metadata=self._client._md)
                except ValueError:          # the channel was closed: shutting down
                    return
            opened = time.monotonic()
            try:
                for _ in call:
                    pass
            except Exception:  # noqa: BLE001 - broken (control service gone) or cancelled
                pass
            with self._lock:
                if self._stopped:
                    return
            if time.monotonic() - opened > 5:
                attempt = 0            # it was up for a while: this is a new outage
            self.reconnects += 1
            time.sleep(backoff(attempt))
            attempt += 1

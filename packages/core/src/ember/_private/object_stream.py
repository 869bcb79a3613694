"""Ranges of shared-memory objects between node managers over a plain socket.

Why not gRPC: a 1 GB object moved over gRPC streams at ~1 GB/s on this 2-vCPU
machine however the streams and chunks were tuned (every chunk is copied into
gRPC's buffers on one side and out of them on the other, and Python handles
each message), no faster than Ray. Here the serving node hands the object's
file to the kernel (``sendfile``) and the fetching node moves what arrives
from the socket into its new file without it passing through Python
(``splice`` through a pipe): 2.3-2.7 GB/s for one connection on the same
machine (docs/architecture.md, "Moving objects between nodes"). Only the
bulk of large objects goes this way; the first chunk of every object (and
with it its size) still comes over ReadObject, and with TLS configured this
listener is not started at all, so encrypted clusters stay on gRPC.

Protocol, one range per connection: the client sends the cluster token frame
(transports/frames.py), then one frame holding a ReadRequest. The server
answers with an 8-byte big-endian signed integer, the object's whole size
(-1: no copy here), followed by exactly the requested range's bytes (clipped
to the object), and closes. A connection that does not send the right token
within AUTH_TIMEOUT seconds is closed before anything else is read.

>>> server = RangeServer(token, "127.0.0.1", open_copy)   # doctest: +SKIP
>>> read_range(("127.0.0.1", server.port), token, oid, 0, size, fd)   # doctest: +SKIP
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading
from typing import Callable

from .protos import ember_pb2 as pb
from .transports.frames import (MAX_AUTH_FRAME, FrameDecoder, FrameError, auth_frame,
                                encode_frame, read_one_frame, token_matches)

_SIZE = struct.Struct(">q")
MAX_REQUEST_FRAME = 4096
AUTH_TIMEOUT = 10.0
# A transfer that makes no progress for this long has failed (the puller then
# tries another copy or reports the error; it never waits forever).
STALL_TIMEOUT = 60.0
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031            # Linux fcntl; a larger pipe means fewer splice calls

# (fd, size) of a local copy of an object, opened for reading and protected from
# being recycled while open; None if this node has no copy.
OpenCopy = Callable[[bytes], "tuple[int, int] | None"]


class RangeServer:
    """A node manager's listener for object ranges; one thread per connection.

    >>> server = RangeServer("token", "127.0.0.1", lambda oid: None)
    >>> server.port > 0
    True
    >>> server.stop()
    """

    def __init__(self, token: str, host: str, open_copy: OpenCopy) -> None:
        self._token = token
        self._open_copy = open_copy
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host.strip("[]"), 0), family=family, backlog=64)
        self.port: int = self._sock.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept_loop, daemon=True,
                         name="ember-range-accept").start()

    def stop(self) -> None:
        self._stopped = True
        _close(self._sock)

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stopped:
                    return
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True,
                             name="ember-range-conn").start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(AUTH_TIMEOUT)
            decoder = FrameDecoder(MAX_AUTH_FRAME)
            token = read_one_frame(conn, decoder)
            if not isinstance(token, bytes) or not token_matches(token, self._token):
                return
            decoder.limit = MAX_REQUEST_FRAME
            raw = read_one_frame(conn, decoder)
            if not isinstance(raw, bytes):     # EOF or the end frame: nothing asked
                return
            request = pb.ReadRequest.FromString(raw)
            conn.settimeout(STALL_TIMEOUT)
            self._send(conn, request)
        except (OSError, FrameError, ValueError):
            pass        # the client sees a short read (or no answer) and reports it
        finally:
            _close(conn)

    def _send(self, conn: socket.socket, request: pb.ReadRequest) -> None:
        opened = self._open_copy(request.object_id)
        if opened is None:
            conn.sendall(_SIZE.pack(-1))
            return
        fd, total = opened
        try:
            start = max(0, request.offset)
            end = total if request.length <= 0 else min(total, start + request.length)
            conn.sendall(_SIZE.pack(total))
            if end > start:
                with os.fdopen(fd, "rb", closefd=False) as f:
                    conn.sendfile(f, start, end - start)     # os.sendfile on Linux
        finally:
            os.close(fd)


def read_range(address: tuple[str, int], token: str, object_id: bytes, start: int,
               length: int, fd: int) -> int:
    """Copy ``length`` bytes of the object at ``address``'s node, from ``start``, into
    the file ``fd`` at the same offset; returns the object's size, or -1 if that node
    has no copy. Raises OSError on a broken, stalled or short transfer.

    >>> read_range(("127.0.0.1", port), token, oid, 0, size, fd)  # doctest: +SKIP
    1073741824
    """
    sock = socket.create_connection(address, timeout=AUTH_TIMEOUT)
    try:
        return _read_range(sock, token, object_id, start, length, fd)
    except (BlockingIOError, TimeoutError) as e:    # the kernel's or Python's timeout
        raise OSError(f"the transfer from {address[0]}:{address[1]} stalled: no data for "
                      f"{STALL_TIMEOUT:g} s") from e
    finally:
        _close(sock)


def _read_range(sock: socket.socket, token: str, object_id: bytes, start: int, length: int,
                fd: int) -> int:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(auth_frame(token) + encode_frame(
        [pb.ReadRequest(object_id=object_id, offset=start, length=length)
         .SerializeToString()]))
    sock.settimeout(STALL_TIMEOUT)
    head = _recv_exact(sock, _SIZE.size)
    (total,) = _SIZE.unpack(head)
    if total < 0:
        return -1
    want = max(0, min(length, total - start))
    if want != length:
        raise OSError(f"asked for {length} bytes at offset {start} of an object of "
                      f"{total} bytes")
    if hasattr(os, "splice"):
        # splice() needs a blocking socket; the kernel's receive timeout stands in
        # for the Python one.
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", int(STALL_TIMEOUT), int(STALL_TIMEOUT % 1 * 1e6)))
        _splice_into(sock, fd, start, want)
    else:
        _recv_into_file(sock, fd, start, want)
    return total


def _splice_into(sock: socket.socket, fd: int, offset: int, length: int) -> None:
    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass        # above the system's pipe size limit: the default works too
        left = length
        while left:
            n = os.splice(sock.fileno(), w, min(left, _PIPE_BYTES))
            if n == 0:
                raise OSError(f"short read: the source closed with {left} of {length} "
                              f"bytes at offset {offset} not sent")
            left -= n
            while n:
                moved = os.splice(r, fd, n, offset_dst=offset)
                offset += moved
                n -= moved
    finally:
        os.close(r)
        os.close(w)


def _recv_into_file(sock: socket.socket, fd: int, offset: int, length: int) -> None:
    buf = bytearray(_PIPE_BYTES)
    view = memoryview(buf)
    left = length
    while left:
        n = sock.recv_into(view[:min(left, len(buf))])
        if n == 0:
            raise OSError(f"short read: the source closed with {left} of {length} bytes "
                          f"at offset {offset} not sent")
        done = 0
        while done < n:
            done += os.pwrite(fd, view[done:n], offset + done)
        offset += n
        left -= n


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise OSError("the source closed the connection before answering")
        data += more
    return data


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


__all__ = ["RangeServer", "read_range"]

"""The framed wire format: length-prefixed protobuf frames (PushTasks, object ranges).

A frame is a 4-byte big-endian length and that many bytes of one serialized
protobuf message (TaskBatch from owner to worker, ResultBatch back). A frame
of length 0 ends the sender's side of the stream (what closing the request
side of a gRPC stream does; TLS sockets cannot half-close). The first frame a
client sends is the cluster token; the server compares it in constant time
and closes the connection on a mismatch, on an oversized length or on bytes
that do not parse, before anything in them is unpickled.

Concatenated serialized protobuf messages parse as their merge, so a writer
that finds several messages waiting sends them as one frame (the same
batching ``merged_batches`` does for gRPC) without re-encoding anything.

>>> encode_frame([b"ab", b"c"])
b'\\x00\\x00\\x00\\x03abc'
>>> d = FrameDecoder(limit=16); d.feed(b"\\x00\\x00\\x00\\x02hi\\x00\\x00\\x00\\x00")
>>> d.next(), d.next() is END, d.next()
(b'hi', True, None)
"""
from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable
from typing import Any

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
# The largest frame a peer may send: gRPC's limit in rpc.py (big inline values
# go through shared memory; frames are tasks, results and error tracebacks).
MAX_FRAME = 1 << 30
# The token frame is tiny: a longer first frame is refused before it is read.
MAX_AUTH_FRAME = 1024
END_FRAME = _HEADER.pack(0)


class FrameError(ValueError):
    """The peer sent a frame this protocol refuses (oversized); the connection is closed.

    Example: ``FrameError("frame of 4294967295 bytes exceeds the limit of 1073741824")``"""


class _End:
    def __repr__(self) -> str:
        return "END"


END = _End()   # the peer has no more frames to send


def encode_frame(parts: Iterable[bytes]) -> bytes:
    """One frame holding ``parts`` back to back (serialized messages of one type merge).

    >>> encode_frame([b"x"])
    b'\\x00\\x00\\x00\\x01x'
    """
    body = b"".join(parts)
    if not body:
        raise ValueError("an empty frame would read as the end of the stream: send nothing")
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds the limit of {MAX_FRAME}: "
                         "send large values through the object store")
    return _HEADER.pack(len(body)) + body


def auth_frame(token: str) -> bytes:
    """The first frame of a connection: the cluster token.

    >>> auth_frame("t")
    b'\\x00\\x00\\x00\\x01t'
    """
    return encode_frame([token.encode()])


def token_matches(frame: bytes, token: str) -> bool:
    """Whether the first frame holds this cluster's token (constant-time compare).

    >>> token_matches(b"secret", "secret"), token_matches(b"secreT", "secret")
    (True, False)
    """
    return hmac.compare_digest(frame, token.encode())


# Frames at least this long are gathered in a buffer of their own (FrameDecoder).
BIG_FRAME = 256 * 1024


class FrameDecoder:
    """Splits received bytes into frames; ``limit`` (mutable) caps the next frame's length.

    ``next()`` returns a frame's bytes (a bytearray for a large one), ``END`` for the
    end frame, or None until more bytes are fed; it raises FrameError when a header
    announces more than ``limit`` bytes (nothing of that frame is buffered beyond what
    arrived).

    >>> d = FrameDecoder(limit=4); d.feed(b"\\xff\\xff\\xff\\xff")
    >>> d.next()  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    ember._private.transports.frames.FrameError: frame of 4294967295 bytes exceeds the limit of 4
    """

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._pos = 0
        # A large frame still arriving, in a buffer of its exact size: appending
        # 64 KiB reads to a growing bytearray (reallocated, and freed after each
        # frame) then slicing it out cost ~5 ms per 2.6 MB frame; filling one
        # buffer costs one copy.
        self._big: bytearray | None = None
        self._filled = 0

    def feed(self, data: bytes | memoryview) -> None:
        big = self._big
        if big is not None and self._filled < len(big):
            view = memoryview(data)
            take = min(len(view), len(big) - self._filled)
            big[self._filled:self._filled + take] = view[:take]
            self._filled += take
            if take == len(view):
                return
            data = view[take:]          # the start of the frames after it
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def next(self) -> bytes | bytearray | _End | None:
        big = self._big
        if big is not None:
            if self._filled < len(big):
                return None
            self._big = None
            return big                  # whole: nothing refers to it any more
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_SIZE:
            return None
        (n,) = _HEADER.unpack_from(buf, pos)
        if n > self.limit:
            raise FrameError(f"frame of {n} bytes exceeds the limit of {self.limit}")
        end = pos + HEADER_SIZE + n
        if len(buf) < end:
            if n >= BIG_FRAME:
                # Only this frame's bytes are buffered (feed fills _big before
                # appending anything after it): move them over, take the rest there.
                big = self._big = bytearray(n)
                have = memoryview(buf)[pos + HEADER_SIZE:]
                big[:len(have)] = have
                self._filled = len(have)
                del have                # a bytearray with a view on it cannot shrink
                buf.clear()
                self._pos = 0
            return None
        frame = bytes(memoryview(buf)[pos + HEADER_SIZE:end])
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
            if end > 1 << 20:           # drop consumed bytes now and then
                del buf[:end]
                self._pos = 0
        return END if n == 0 else frame


def read_one_frame(conn: Any, decoder: FrameDecoder, recv_bytes: int = 64 * 1024
                   ) -> bytes | bytearray | _End | None:
    """The next frame alone, reading ``conn`` (a socket) as needed: its bytes, END for the
    end frame, None at EOF. Bytes read past it stay in ``decoder`` for the next call.

    >>> import socket; a, b = socket.socketpair(); a.sendall(auth_frame("t") + END_FRAME)
    >>> d = FrameDecoder(); read_one_frame(b, d), read_one_frame(b, d)
    (b't', END)
    """
    while (frame := decoder.next()) is None:
        data = conn.recv(recv_bytes)
        if not data:
            return None
        decoder.feed(data)
    return frame


__all__ = ["END", "END_FRAME", "FrameDecoder", "FrameError", "MAX_AUTH_FRAME", "MAX_FRAME",
           "auth_frame", "encode_frame", "read_one_frame", "token_matches"]

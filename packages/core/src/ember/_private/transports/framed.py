"""PushTasks over a plain TCP connection of length-prefixed protobuf frames (the default).

Why: one synchronous round trip over a gRPC stream costs ~400 us and ~520 us of
CPU on its own; the same exchange over a framed socket ~100 us (docs/
architecture.md, "The gRPC ceiling"). Only the owner -> worker PushTasks stream
uses it; every other service stays on gRPC.

Each worker listens on a second port (``Address.push_port``) on the IP of its
gRPC server. A connection starts with the cluster token (frames.py); with
EMBER_TLS_* set both ends speak TLS with the cluster's certificates first.

Threads, chosen for the fewest hand-offs: whoever sends writes to the socket
itself (``FrameWriter``: a sender that finds another one writing leaves its
message to it, and the waiting messages leave merged as one frame). On the
worker, a connection is read by its own thread or, while idle, by the main
thread that runs its tasks (``ServerConnection``), and results are written by
the thread that produced them (the main thread, an actor's pool thread or
event loop). On the owner, the caller's
reader thread connects and then reads ResultBatches. A broken connection
ends the owner's iteration and the worker's request stream, exactly as a
broken gRPC stream does.
"""
from __future__ import annotations

import queue
import select
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from .. import tls
from ..protos import ember_pb2 as pb
from .base import PushCall, PushTransport
from .frames import (END, END_FRAME, MAX_AUTH_FRAME, MAX_FRAME, FrameDecoder, FrameError,
                     auth_frame, encode_frame, read_one_frame, token_matches)

# Under glibc malloc's mmap threshold (128 KiB): a larger recv buffer costs an mmap and
# munmap per call (~12 us), more than the rest of a small frame's read.
_RECV = 64 * 1024
CONNECT_TIMEOUT = 10.0     # connect + TLS handshake + token, seconds
AUTH_TIMEOUT = 10.0        # a server waits this long for a new connection's token


class _TlsConn:
    """A TLS connection safe for one reading thread and any number of writing threads.

    OpenSSL objects must not be used by two threads at once, so the TLS state
    lives in an ``ssl.SSLObject`` over memory buffers guarded by a lock, and
    the socket I/O happens outside it.
    """

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=server_side,
                                 server_hostname=server_hostname)
        self._lock = threading.Lock()        # the SSLObject and its buffers
        self._send_lock = threading.Lock()   # keeps encrypted bytes in order on the wire

    def handshake(self) -> None:
        while True:
            with self._lock:
                try:
                    self._obj.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
            self._flush()
            if done:
                return
            data = self.sock.recv(_RECV)
            if not data:
                raise ConnectionError("the peer closed the connection during the TLS handshake")
            with self._lock:
                self._in.write(data)

    def _flush(self) -> None:
        with self._send_lock:
            with self._lock:
                out = self._out.read()
            if out:
                self.sock.sendall(out)

    def sendall(self, data: bytes) -> None:
        with self._send_lock:
            with self._lock:
                self._obj.write(data)
                out = self._out.read()
            self.sock.sendall(out)

    def recv(self, n: int) -> bytes:
        while True:
            with self._lock:
                try:
                    return self._obj.read(n)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return b""
            self._flush()       # reading may have produced a reply (key update)
            data = self.sock.recv(_RECV)
            if not data:
                return b""
            with self._lock:
                self._in.write(data)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def _shut(conn: Any) -> None:
    """End a connection so that a thread blocked reading it wakes up, then close it."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass


_SIGINT = {signal.SIGINT}


class FrameWriter:
    """Writes frames from whichever thread sends, merging what queues meanwhile.

    ``send_bytes(data)`` writes at once from the calling thread (no hand-off:
    the latency path); a message sent while another thread is writing is left
    to that thread, which sends everything waiting as one frame when its write
    returns. ``send_bytes(data, defer=True)`` leaves the write to this
    connection's flusher thread instead, so that a burst (calls made while
    earlier ones are still running) leaves in a few large frames, as gRPC's
    merged messages did, instead of a frame and a wake-up each.
    On the main thread SIGINT (a task's cancellation) is held off during a
    write: an exception halfway through a frame would corrupt the stream.

    ``end_frame``: closing sends the end frame (owner side); ``on_close`` runs
    once everything queued before ``close()`` is written.
    """

    def __init__(self, conn: Any = None, *, end_frame: bool = False,
                 on_close: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._busy = conn is None          # not connected yet: start() writes what waits
        self._closing = False
        self._done = False                 # closed or broken: sends are dropped
        self._end_frame = end_frame
        self._on_close = on_close
        self._wakeups: queue.SimpleQueue | None = None   # the flusher's, once started

    def start(self, conn: Any) -> None:
        """Connected (by the thread that holds the writer since construction)."""
        self._conn = conn
        self._drain()

    def abort(self) -> None:
        """The connection is gone (or never came): drop what waits and what comes."""
        with self._lock:
            self._done = True
            self._pending.clear()
            self._stop_flusher()

    def send_bytes(self, data: bytes, defer: bool = False) -> None:
        if not data:
            return      # an empty message changes nothing (and would read as the end)
        with self._lock:
            if self._done or self._closing:
                return
            self._pending.append(data)
            if self._busy:
                return
            self._busy = True
            if defer:
                self._hand_to_flusher()
                return
        self._drain()

    def close(self) -> None:
        with self._lock:
            if self._done or self._closing:
                return
            self._closing = True
            if self._busy:
                return
            self._busy = True
        self._drain()

    def _hand_to_flusher(self) -> None:
        """Lock held, ``_busy`` taken for the flusher."""
        if self._wakeups is None:
            self._wakeups = queue.SimpleQueue()
            threading.Thread(target=self._flush_loop, args=(self._wakeups,), daemon=True,
                             name="ember-push-writer").start()
        self._wakeups.put(True)

    def _stop_flusher(self) -> None:
        if self._wakeups is not None:
            self._wakeups.put(False)

    def _flush_loop(self, wakeups: queue.SimpleQueue) -> None:
        while wakeups.get():
            self._drain()

    def _drain(self) -> None:
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
        try:
            while True:
                with self._lock:
                    parts, self._pending = self._pending, []
                    finish = False
                    if self._done:
                        self._busy = False
                        return
                    if not parts:
                        if not self._closing:
                            self._busy = False
                            return
                        finish = self._done = True
                        self._stop_flusher()
                try:
                    if finish:
                        if self._end_frame:
                            self._conn.sendall(END_FRAME)
                        if self._on_close is not None:
                            self._on_close()
                        return
                    self._conn.sendall(encode_frame(parts))
                except (OSError, FrameError):
                    # Broken (or a frame over the limit, which gRPC refuses too):
                    # the peer sees the connection end, as a broken stream.
                    self.abort()
                    _shut(self._conn)
                    return
        finally:
            if on_main:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _read_frames(conn: Any, decoder: FrameDecoder) -> Iterator[bytes]:
    """Frames from ``conn`` until the end frame or EOF (raises OSError / FrameError).

    Frames already received together come out as one (concatenated messages
    parse as their merge): a reader that fell behind settles the backlog as
    one batch, as gRPC's merged messages were, while a lone frame goes on at once.
    """
    while True:
        try:
            merged, ended = _take_frames(decoder)
        except _PartialFrames as e:
            yield e.merged
            raise FrameError(str(e)) from None
        if merged is not None:
            yield merged
        if ended:
            return
        if merged is None:
            data = conn.recv(_RECV)
            if not data:
                return
            decoder.feed(data)


class _PartialFrames(FrameError):
    """A bad frame after good ones: the good ones (merged) still count."""

    def __init__(self, message: str, merged: bytes) -> None:
        super().__init__(message)
        self.merged = merged


def _take_frames(decoder: FrameDecoder) -> tuple[bytes | None, bool]:
    """Every whole frame the decoder holds as one (None: none), and whether the end
    frame was among them. A bad frame after good ones raises _PartialFrames."""
    parts: list[bytes] = []

    def merged() -> bytes | None:
        return None if not parts else parts[0] if len(parts) == 1 else b"".join(parts)

    while True:
        try:
            frame = decoder.next()
        except FrameError as e:
            if parts:
                raise _PartialFrames(str(e), b"".join(parts)) from None
            raise
        if frame is None:
            return merged(), False
        if frame is END:
            return merged(), True
        parts.append(frame)  # type: ignore[arg-type]


_client_contexts: dict[int, ssl.SSLContext] = {}
_server_contexts: dict[int, ssl.SSLContext] = {}


def _client_context(cfg: tls.TlsConfig) -> ssl.SSLContext:
    ctx = _client_contexts.get(id(cfg))
    if ctx is None:
        ctx = _client_contexts[id(cfg)] = tls.client_ssl_context(cfg)
    return ctx


def _server_context(cfg: tls.TlsConfig) -> ssl.SSLContext:
    ctx = _server_contexts.get(id(cfg))
    if ctx is None:
        ctx = _server_contexts[id(cfg)] = tls.server_ssl_context(cfg)
    return ctx


# ---------------------------------------------------------------- owner side

class FramedPushCall(PushCall):
    """The owner's end: connects on the reader thread (never under the caller's lock);
    batches sent before that wait in the writer."""

    def __init__(self, token: str, address: pb.Address) -> None:
        self._token = token
        self._address = (address.ip, address.push_port)
        self._writer = FrameWriter(end_frame=True)
        self._conn: Any = None
        self._cancelled = False
        # Tasks sent and not yet answered (a hint, not a count the protocol relies on):
        # with none, a batch leaves at once from the sender's thread (a synchronous
        # call waits on it); with some, the worker is busy and the flusher batches.
        self._sent = 0
        self._answered = 0
        # A plain socket is read under _read_lock, by the reader thread or by a caller
        # waiting for a result (poll); whoever reads also handles what it read, so
        # batches are handled one at a time and in order.
        self._read_lock = threading.Lock()
        self._shared: tuple[socket.socket, FrameDecoder] | None = None
        self._ended = False

    def _connect(self) -> Any:
        sock = None
        try:
            sock = socket.create_connection(self._address, timeout=CONNECT_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn: Any = sock
            cfg = tls.load()
            if cfg is not None:
                conn = _TlsConn(sock, _client_context(cfg), server_side=False,
                                server_hostname=cfg.server_name or self._address[0])
                conn.handshake()
            conn.sendall(auth_frame(self._token))
            sock.settimeout(None)
        except (OSError, ValueError):
            self._writer.abort()
            if sock is not None:
                _shut(sock)
            return None
        self._conn = conn
        if self._cancelled:
            self._writer.abort()
            _shut(conn)
            return None
        self._writer.start(conn)
        return conn

    def __iter__(self) -> Iterator[pb.ResultBatch]:
        conn = self._connect()
        if conn is None:
            return
        try:
            if type(conn) is socket.socket:
                yield from self._read_shared(conn)
                return
            for frame in _read_frames(conn, FrameDecoder(MAX_FRAME)):
                batch = pb.ResultBatch.FromString(frame)
                self._answered += _answers(batch.results)
                yield batch
        except (OSError, FrameError, DecodeError):
            pass
        finally:
            self._writer.abort()
            _shut(conn)

    def _read_shared(self, sock: socket.socket) -> Iterator[pb.ResultBatch]:
        """The reader thread's loop on a plain socket: wait until something arrives,
        then read it under the lock (a polling caller may have taken it already)."""
        decoder = FrameDecoder(MAX_FRAME)
        self._shared = (sock, decoder)
        while True:
            try:
                select.select([sock], [], [])
            except (OSError, ValueError):       # closed meanwhile (cancel)
                return
            with self._read_lock:
                if self._ended:
                    return
                batch = self._read_one(sock, decoder)
                if batch is not None:
                    yield batch         # handled before anyone reads the next one
                if self._ended:
                    return

    def _read_one(self, sock: socket.socket, decoder: FrameDecoder) -> pb.ResultBatch | None:
        """_read_lock held: what has arrived, without blocking, as one batch (None: no
        whole frame yet). Sets _ended (and shuts the socket, so that the other reader
        sees it too) at the end frame, EOF, or a frame that is oversized or unparsable."""
        try:
            data = sock.recv(_RECV, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self._end_shared(sock)
            return None
        decoder.feed(data)
        try:
            merged, ended = _take_frames(decoder)
        except _PartialFrames as e:
            merged, ended = e.merged, True
        except FrameError:
            merged, ended = None, True
        batch = None
        if merged is not None:
            try:
                batch = pb.ResultBatch.FromString(merged)
                self._answered += _answers(batch.results)
            except DecodeError:
                batch, ended = None, True
        if ended:
            self._end_shared(sock)
        return batch

    def _end_shared(self, sock: socket.socket) -> None:
        self._ended = True
        _shut(sock)

    def poll(self, done: Callable[[], bool], seconds: float,
             handle: Callable[[pb.ResultBatch], None]) -> None:
        """Read results on the caller's thread until ``done()`` or ``seconds`` pass,
        handing each batch to ``handle`` (what the reader thread's consumer does
        with it). For a caller about to wait on one result: the reply is seen as
        it lands instead of after waking the reader thread and then the caller
        (~30 us each on this 2-vCPU VM). Returns at once if the reader thread is
        handling a batch, the connection is not a plain socket, or it ended."""
        shared = self._shared
        if shared is None or not self._read_lock.acquire(blocking=False):
            return
        # Ctrl-C must not stop a batch half handled (results taken off the call
        # but not stored would leave other waiters hanging): it is held back on
        # the main thread until the batch is done, as FrameWriter does for writes.
        on_main = threading.current_thread() is threading.main_thread()
        try:
            sock, decoder = shared
            deadline = time.perf_counter() + seconds
            while not self._ended and not done():
                batch = self._read_one(sock, decoder)
                if batch is not None:
                    if on_main:
                        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
                        try:
                            handle(batch)
                        finally:
                            signal.pthread_sigmask(signal.SIG_SETMASK, old)
                    else:
                        handle(batch)
                elif time.perf_counter() >= deadline:
                    return
        finally:
            self._read_lock.release()

    def send(self, batch: pb.TaskBatch) -> None:
        busy = self._sent > self._answered
        self._sent += len(batch.tasks)
        self._writer.send_bytes(batch.SerializeToString(), defer=busy)

    def close(self) -> None:
        self._writer.close()

    def cancel(self) -> None:
        self._cancelled = True
        self._writer.abort()
        if self._conn is not None:
            _shut(self._conn)


class FramedTransport(PushTransport):
    name = "framed"

    def open(self, core: Any, address: pb.Address) -> PushCall:
        return FramedPushCall(core.token, address)


# ---------------------------------------------------------------- worker side

def _result_entry(result: pb.TaskResult) -> bytes:
    """``result`` as a serialized one-result ResultBatch (field 1, length-delimited),
    without copying it into a new message."""
    data = result.SerializeToString()
    n = len(data)
    head = bytearray(b"\x0a")
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            head.append(byte | 0x80)
        else:
            head.append(byte)
            break
    return bytes(head) + data


def _answers(results: Any) -> int:
    """How many tasks these results finish (a streaming task's items do not)."""
    return sum(1 for r in results if not r.generator_item)


class ResultSink:
    """Where a framed connection's results go: ``put(result)`` sends it from the thread
    that produced it; ``put(None)`` ends the stream once all is written.

    The result of the connection's last unanswered task leaves at once; while
    more of its tasks wait or run, results go through the writer's flusher, so
    a pipelined burst returns in a few frames (see FrameWriter).
    """

    def __init__(self, writer: FrameWriter, on_exiting: Callable[[], None]) -> None:
        self._writer = writer
        self._on_exiting = on_exiting
        self.received = 0        # tasks that arrived on this connection (set by the reader)
        self._answered = 0

    def put(self, result: pb.TaskResult | None) -> None:
        if result is None:
            self._writer.close()
            return
        if not result.generator_item:
            self._answered += 1
        self._writer.send_bytes(_result_entry(result),
                                defer=self.received > self._answered)
        if result.worker_exiting:
            self._on_exiting()


class FramedServer:
    """A worker's framed PushTasks listener.

    ``serve(connection)`` runs on each authenticated connection's thread with its
    ServerConnection: it reads the TaskBatches (``connection.serve``, which returns
    when the connection ends) and sends results with ``connection.sink.put``;
    ``on_exiting`` runs after a result that says this worker is leaving has been
    written.

    >>> server = FramedServer(token, "127.0.0.1", executor.serve_connection, exit_soon)
    >>> port = server.start()
    """

    def __init__(self, token: str, host: str,
                 serve: Callable[[ServerConnection], None],
                 on_exiting: Callable[[], None]) -> None:
        self._token = token
        self._serve = serve
        self._on_exiting = on_exiting
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host.strip("[]"), 0), family=family, backlog=128)
        self.port = self._sock.getsockname()[1]
        self._stopped = False

    def start(self) -> int:
        threading.Thread(target=self._accept_loop, daemon=True,
                         name="ember-push-accept").start()
        return self.port

    def stop(self) -> None:
        self._stopped = True
        _shut(self._sock)

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                if self._stopped:
                    return
                continue
            threading.Thread(target=self._handle, args=(sock,), daemon=True,
                             name="ember-push-conn").start()

    def _authenticate(self, sock: socket.socket) -> tuple[Any, FrameDecoder] | None:
        """TLS (if set) and the token frame; None (connection closed) on any failure."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(AUTH_TIMEOUT)
            conn: Any = sock
            cfg = tls.load()
            if cfg is not None:
                conn = _TlsConn(sock, _server_context(cfg), server_side=True)
                conn.handshake()
            decoder = FrameDecoder(MAX_AUTH_FRAME)
            first = read_one_frame(conn, decoder, _RECV)    # alone: never merged with the next
            if not isinstance(first, bytes) or not token_matches(first, self._token):
                _shut(sock)
                return None
            decoder.limit = MAX_FRAME
            sock.settimeout(None)
            return conn, decoder
        except (OSError, FrameError, ValueError):
            _shut(sock)
            return None

    def _handle(self, sock: socket.socket) -> None:
        authed = self._authenticate(sock)
        if authed is None:
            return
        conn, decoder = authed
        writer = FrameWriter(conn, on_close=lambda: _shut(conn))
        self._serve(ServerConnection(conn, decoder, ResultSink(writer, self._on_exiting)))


class ServerConnection:
    """An authenticated connection on the worker, read by two threads in turn.

    An idle main thread reads the connection that sent its last task itself
    (``poll_until``), polling without blocking for a moment before it sleeps: a
    synchronous caller's next task then needs no thread to be woken on its
    arrival. On this 2-vCPU VM a wake-up of a blocked reader costs ~30-35 us; this
    took 1:1 sync actor calls from 2.8-2.9k to 3.5-5.1k a second (docs/architecture.md).

    The connection's own thread (``serve``) reads whenever the main thread does
    not: while the main thread sleeps, reads another connection, or has run a
    task from this one for LONG_TASK_S (so cancellations and more tasks arrive
    while a long task runs). It stays off the socket while the main thread polls
    it or runs a short task: a reader waiting in ``select`` would be woken by
    every message, and that wake-up is the cost being avoided. Reads happen under
    ``_read_lock`` and never block while holding it. A TLS connection is read by
    its own thread alone, blocking, as before.
    """

    LONG_TASK_S = 0.005

    def __init__(self, conn: Any, decoder: FrameDecoder, sink: ResultSink) -> None:
        self.sink = sink
        self._conn = conn
        self._decoder = decoder
        self._read_lock = threading.Lock()
        self._turn = threading.Condition()
        self._main_owns = False          # the main thread polls this or runs its task
        self._busy_since: float | None = None   # when that task started
        self._ended = False
        self.pollable = type(conn) is socket.socket

    def serve(self, on_batch: Callable[[pb.TaskBatch], None]) -> None:
        """The connection's thread: hand every TaskBatch to ``on_batch`` until the end
        frame, EOF, or a frame that is oversized or does not parse (closing nothing)."""
        if not self.pollable:
            try:
                for frame in _read_frames(self._conn, self._decoder):
                    self._dispatch_one(frame, on_batch)
            except (OSError, FrameError, DecodeError):
                pass
            return
        # Frames that came in with the token frame are in the decoder already.
        with self._read_lock:
            alive = self._dispatch_buffered(on_batch)
        if not alive:
            self._end()
            return
        while True:
            with self._turn:
                while (wait := self._main_turn()) > 0 and not self._ended:
                    self._turn.wait(wait)
                timeout = self.LONG_TASK_S if self._main_owns else None
            try:
                ready, _, _ = select.select([self._conn], [], [], timeout)
            except (OSError, ValueError):
                return
            if self._ended:
                return
            # Claimed while we waited in select: the main thread reads what came.
            if ready and self._main_turn() <= 0 and not self.read_ready(on_batch):
                return

    def _main_turn(self) -> float:
        """How long the main thread still has the connection to itself (0: it does not:
        it released it, or has run a task from it for LONG_TASK_S)."""
        if not self._main_owns:
            return 0.0
        busy = self._busy_since
        if busy is None:
            return self.LONG_TASK_S       # polling: look again in a while
        return max(0.0, busy + self.LONG_TASK_S - time.perf_counter())

    def claim(self) -> None:
        """The main thread is about to poll this connection."""
        with self._turn:
            self._main_owns = True
            self._busy_since = None

    def busy(self) -> None:
        """The main thread, which owns this connection, starts running a task."""
        self._busy_since = time.perf_counter()

    def release(self) -> None:
        """The main thread stops polling this connection (it sleeps, or reads another)."""
        with self._turn:
            self._main_owns = False
            self._busy_since = None
            self._turn.notify_all()

    def read_ready(self, on_batch: Callable[[pb.TaskBatch], None]) -> bool:
        """Read what has arrived without blocking and hand over its whole batches.
        False once the connection has ended (and is shut, so its thread sees it too)."""
        with self._read_lock:
            if self._ended:
                return False
            try:
                data = self._conn.recv(_RECV, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if data:
                self._decoder.feed(data)
                if self._dispatch_buffered(on_batch):
                    return True
        self._end()
        return False

    def _dispatch_buffered(self, on_batch: Callable[[pb.TaskBatch], None]) -> bool:
        """``_read_lock`` held: hand over the whole frames the decoder holds (merged, as
        a backlog is settled as one batch). False at the end frame or a bad frame."""
        try:
            try:
                merged, ended = _take_frames(self._decoder)
            except _PartialFrames as e:     # the good ones first, then the end
                merged, ended = e.merged, True
            if merged is not None:
                self._dispatch_one(merged, on_batch)
            return not ended
        except (FrameError, DecodeError):
            return False

    def _end(self) -> None:
        # Shut, so that whichever thread is not reading sees the end too.
        with self._read_lock:
            self._ended = True
        _shut(self._conn)
        with self._turn:
            self._turn.notify_all()

    def poll_until(self, done: Callable[[], bool], seconds: float,
                   on_batch: Callable[[pb.TaskBatch], None]) -> bool:
        """The main thread, having claimed this connection: read for up to ``seconds``
        or until ``done()``. False once the connection has ended."""
        deadline = time.perf_counter() + seconds
        while not done():
            if not self.read_ready(on_batch):
                return False
            if time.perf_counter() >= deadline:
                break
        return True

    def _dispatch_one(self, frame: bytes, on_batch: Callable[[pb.TaskBatch], None]) -> None:
        batch = pb.TaskBatch.FromString(frame)
        self.sink.received += len(batch.tasks)
        on_batch(batch)


__all__ = ["FrameWriter", "FramedPushCall", "FramedServer", "FramedTransport", "ResultSink",
           "ServerConnection"]

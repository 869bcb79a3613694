"""What the transport alone costs a synchronous call: gRPC vs a framed socket.

    python tools/bench/grpc_ceiling.py [--seconds 2] [--json out.json]

Two processes on this machine, a client and an echo server, 64-byte payloads,
one call in flight at a time (the shape of `get(f.remote())`), except the
"pipelined" rows (256 in flight, the shape of a batch of calls). Rows:

- grpc unary: one unary call per round trip (what a per-task RPC would cost).
- grpc stream, direct: a bidirectional stream whose server handler yields each
  reply from the request iterator itself (the least gRPC can do per message).
- grpc stream, Ember's threads: the same stream as Ember's PushTasks uses it:
  the client writes through a queue-fed request iterator and reads on its own
  thread; the server reads requests on a reader thread, "runs" each on a
  main thread, and its handler generator sends what the main thread queued.
  This is the ceiling of `tasks sync` / `actor calls sync` over gRPC.
- socket, direct: length-prefixed frames over one TCP connection, blocking
  reads and writes on the calling threads (what a framed protocol could do).
- socket, Ember's threads: the same frames with the same thread hand-offs as
  the Ember gRPC row (a reader thread and a main thread on the server, a
  reader thread on the client).
- ... pipelined: 256 messages in flight, batched as they queue: messages/s.

Besides the rate, the CPU time each side spends per message (client: this
process; server: the echo process), from the kernel's accounting.

No framework is imported: this measures the transports, not Ember.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

_SVC = "bench.Echo"
_PAYLOAD = b"x" * 64
_LEN = struct.Struct("<I")
_ident = (lambda b: b)


# ---------------------------------------------------------------- server side
def _serve(grpc_port: int, sock_port: int) -> None:
    def unary(req, ctx):
        return req

    def stream_direct(it, ctx):
        for req in it:
            yield req

    def stream_threads(it, ctx):
        # Ember's PushTasks shape: reader thread -> main-thread queue -> out queue.
        work: queue.SimpleQueue = queue.SimpleQueue()
        out: queue.SimpleQueue = queue.SimpleQueue()

        def reader():
            try:
                for req in it:
                    work.put(req)
            except grpc.RpcError:
                pass            # the client cancelled the stream: end of the row
            work.put(None)

        def main():
            while (req := work.get()) is not None:
                out.put(req)
            out.put(None)

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=main, daemon=True).start()
        while (item := out.get()) is not None:
            batch = [item]
            while True:
                try:
                    nxt = out.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    out.put(None)
                    break
                batch.append(nxt)
            yield b"".join(batch)

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, _ident, _ident),
        "StreamDirect": grpc.stream_stream_rpc_method_handler(stream_direct, _ident, _ident),
        "StreamThreads": grpc.stream_stream_rpc_method_handler(stream_threads, _ident, _ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SVC, handlers),))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", sock_port))
    lsock.listen()

    def conn_loop(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = conn.makefile("rb")
        mode = f.read(1)
        if mode == b"d":       # direct echo on this thread
            while hdr := f.read(4):
                (n,) = _LEN.unpack(hdr)
                conn.sendall(hdr + f.read(n))
            return
        work: queue.SimpleQueue = queue.SimpleQueue()
        lock = threading.Lock()

        def main():            # "runs" each request, replies from this thread
            while (req := work.get()) is not None:
                with lock:
                    conn.sendall(_LEN.pack(len(req)) + req)

        threading.Thread(target=main, daemon=True).start()
        while hdr := f.read(4):
            (n,) = _LEN.unpack(hdr)
            work.put(f.read(n))
        work.put(None)

    print("READY", flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=conn_loop, args=(conn,), daemon=True).start()


# ---------------------------------------------------------------- client side
_SERVER_PID = [0]
_CPU: dict = {}           # row -> (client, server) CPU microseconds per message


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _rate(fn, seconds: float, per_call: int = 1, row: str = "") -> float:
    fn()                                   # warm-up
    c0, s0 = time.process_time(), _proc_cpu(_SERVER_PID[0])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    rate = n / (time.perf_counter() - t0)
    msgs = n * per_call
    _CPU[row] = ((time.process_time() - c0) / msgs * 1e6,
                 (_proc_cpu(_SERVER_PID[0]) - s0) / msgs * 1e6)
    return rate


def _grpc_rows(port: int, seconds: float) -> dict:
    chan = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(chan).result(timeout=10)
    out = {}
    unary = chan.unary_unary(f"/{_SVC}/Unary", _ident, _ident)
    out["grpc unary"] = _rate(lambda: unary(_PAYLOAD), seconds, row="grpc unary")

    for name, method in (("grpc stream, direct", "StreamDirect"),
                         ("grpc stream, Ember's threads", "StreamThreads")):
        q: queue.SimpleQueue = queue.SimpleQueue()
        call = chan.stream_stream(f"/{_SVC}/{method}", _ident, _ident)(iter(q.get, None))
        replies: queue.SimpleQueue = queue.SimpleQueue()
        # Ember's client reads results on a thread of its own.

        def read(c=call, r=replies):
            try:
                for x in c:
                    r.put(x)
            except grpc.RpcError:
                pass            # cancelled below, at the end of the row
        threading.Thread(target=read, daemon=True).start()

        def once(q=q, replies=replies):
            q.put(_PAYLOAD)
            replies.get()
        out[name] = _rate(once, seconds, row=name)

        def pipelined(q=q, replies=replies, depth=256):
            for _ in range(depth):
                q.put(_PAYLOAD)
            got = 0
            while got < depth * len(_PAYLOAD):
                got += len(replies.get())
        out[name + ", pipelined (msgs/s)"] = 256 * _rate(
            pipelined, seconds, 256, row=name + ", pipelined (msgs/s)")
        q.put(None)
        call.cancel()
    chan.close()
    return out


def _socket_rows(port: int, seconds: float) -> dict:
    out = {}
    for name, mode in (("socket, direct", b"d"), ("socket, Ember's threads", b"t")):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(mode)
        f = s.makefile("rb")
        frame = _LEN.pack(len(_PAYLOAD)) + _PAYLOAD
        if mode == b"d":
            def once():
                s.sendall(frame)
                (n,) = _LEN.unpack(f.read(4))
                f.read(n)
        else:
            replies: queue.SimpleQueue = queue.SimpleQueue()

            def reader():
                while hdr := f.read(4):
                    (n,) = _LEN.unpack(hdr)
                    replies.put(f.read(n))
            threading.Thread(target=reader, daemon=True).start()

            def once():
                s.sendall(frame)
                replies.get()

            def pipelined(depth=256):
                s.sendall(frame * depth)
                for _ in range(depth):
                    replies.get()
            out[name + ", pipelined (msgs/s)"] = None   # filled below
        out[name] = _rate(once, seconds, row=name)
        if mode == b"t":
            out[name + ", pipelined (msgs/s)"] = 256 * _rate(
                pipelined, seconds, 256, row=name + ", pipelined (msgs/s)")
        s.close()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per row")
    parser.add_argument("--json")
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(*args.serve)
        return
    gport, sport = _free_port(), _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(gport), str(sport)],
                              stdout=subprocess.PIPE, text=True)
    _SERVER_PID[0] = server.pid
    try:
        assert server.stdout.readline().strip() == "READY"
        rows = {**_grpc_rows(gport, args.seconds), **_socket_rows(sport, args.seconds)}
    finally:
        server.kill()
        server.wait()
    print(f"{'transport (64-byte messages)':<50}{'per second':>11}{'us each':>9}"
          f"{'CPU us client':>15}{'server':>8}")
    for name, rate in rows.items():
        cc, sc = _CPU.get(name, (0.0, 0.0))
        print(f"{name:<50}{rate:>11,.0f}{1e6 / rate:>9.1f}{cc:>15.1f}{sc:>8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpus": os.cpu_count(), "rows": rows, "cpu_us": _CPU}, f, indent=2)


if __name__ == "__main__":
    main()

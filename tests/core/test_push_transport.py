"""PushTasks transports (issue #6): the framed wire format, its server's refusals, and a
smoke workload over each transport (framed, the default, and gRPC).

The format and the listener are tested without a cluster (a loopback socket and a
fake executor); the workload runs one small cluster per transport.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time

import pytest

import ember
from ember._private.protos import ember_pb2 as pb
from ember.testing import closed_without_reply
from ember._private.transports import base, framed, frames, grpc_stream

TOKEN = "t0ken-for-tests"


# ---------------------------------------------------------------- the wire format (pure)

def _decoded(messages: list, step: int) -> list:
    """Every frame a decoder gives back from ``messages``' frames fed ``step`` bytes at a time."""
    wire = b"".join(frames.encode_frame([m]) for m in messages) + frames.END_FRAME
    dec = frames.FrameDecoder()
    got = []
    for i in range(0, len(wire), step):
        dec.feed(wire[i:i + step])
        while (frame := dec.next()) is not None:
            got.append(frame)
    return got


def test_frames_round_trip_whatever_the_read_sizes():
    messages = [b"a", b"bc" * 1000, b"\x00" * 7]
    for step in (1, 3, 4096, 1 << 20):
        assert _decoded(messages, step) == messages + [frames.END], step


def test_large_frames_round_trip_in_their_own_buffer_whatever_the_read_sizes(monkeypatch):
    # Large frames are gathered in a buffer of their exact size; the bytes after
    # one (in the same read) must still start the next frames.
    monkeypatch.setattr(frames, "BIG_FRAME", 64)
    messages = [bytes(range(256)) * 3, b"s", os.urandom(1000), b"t" * 63, b"u" * 64,
                os.urandom(5000)]
    for step in (1, 5, 63, 64, 65, 999, 4096, 1 << 20):
        got = _decoded(messages, step)
        assert got == messages + [frames.END], step
        if step < 64:       # every large frame arrived in pieces: its own buffer took them
            assert [type(f) for f in got[:-1]] == [bytearray if len(m) >= 64 else bytes
                                                  for m in messages], step


def test_oversized_lengths_are_refused_before_any_body_arrives():
    dec = frames.FrameDecoder(limit=100)
    dec.feed(struct.pack(">I", 101))
    with pytest.raises(frames.FrameError, match="101 bytes exceeds the limit of 100"):
        dec.next()
    dec = frames.FrameDecoder(limit=100)
    dec.feed(struct.pack(">I", 100) + b"x" * 99)
    assert dec.next() is None                   # complete at 100, not refused
    dec.feed(b"x")
    assert dec.next() == b"x" * 100


def test_encode_refuses_empty_and_oversized_frames(monkeypatch):
    with pytest.raises(ValueError, match="empty frame"):
        frames.encode_frame([b""])
    monkeypatch.setattr(frames, "MAX_FRAME", 10)
    with pytest.raises(frames.FrameError, match="object store"):
        frames.encode_frame([b"x" * 11])


def test_token_check_is_exact():
    assert frames.token_matches(b"abc", "abc")
    for other in (b"", b"ab", b"abcd", b"abC"):
        assert not frames.token_matches(other, "abc")
    assert frames.auth_frame("abc") == b"\x00\x00\x00\x03abc"


def test_concatenated_batches_parse_as_their_merge():
    """What lets a busy writer send waiting messages as one frame without re-encoding."""
    a = pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"1")], release_pins=[b"p"])
    b = pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"2")], cancels=[pb.CancelRequest(task_id=b"1")])
    merged = pb.TaskBatch.FromString(a.SerializeToString() + b.SerializeToString())
    assert [t.task_id for t in merged.tasks] == [b"1", b"2"]
    assert list(merged.release_pins) == [b"p"] and merged.cancels[0].task_id == b"1"


def test_one_result_entry_is_a_one_result_batch():
    for size in (0, 1, 127, 128, 20000):
        result = pb.TaskResult(task_id=b"t", returns=[pb.ReturnObject(data=b"x" * size)])
        assert framed._result_entry(result) == pb.ResultBatch(results=[result]).SerializeToString()


def test_transport_selection(monkeypatch):
    monkeypatch.setenv(base.TRANSPORT_ENV, "grpc")
    assert base.selected() == "grpc"
    monkeypatch.setenv(base.TRANSPORT_ENV, "")
    assert base.selected() == "framed"
    monkeypatch.setenv(base.TRANSPORT_ENV, "carrier-pigeon")
    with pytest.raises(ValueError, match="EMBER_PUSH_TRANSPORT='carrier-pigeon'.*framed, grpc"):
        base.selected()
    assert isinstance(base.get("framed"), framed.FramedTransport)
    assert isinstance(base.get("grpc"), grpc_stream.GrpcTransport)


# ---------------------------------------------------------------- writer and listener

def test_writer_keeps_order_across_threads_and_ends_with_the_end_frame():
    """Direct writes and writes left to the flusher thread (defer) interleave in order."""
    left, right = socket.socketpair()
    writer = framed.FrameWriter(left, end_frame=True)
    per_thread = 200

    def send(k: int) -> None:
        for i in range(per_thread):
            writer.send_bytes(pb.TaskBatch(release_pins=[b"%d:%d" % (k, i)]).SerializeToString(),
                              defer=(i + k) % 3 == 0)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    got: list[bytes] = []

    def read() -> None:
        for frame in framed._read_frames(right, frames.FrameDecoder()):
            got.extend(pb.TaskBatch.FromString(frame).release_pins)

    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert len(got) == 4 * per_thread
    for k in range(4):
        mine = [int(p.split(b":")[1]) for p in got if p.startswith(b"%d:" % k)]
        assert mine == list(range(per_thread))
    writer.send_bytes(b"late")       # after close: dropped, no error
    left.close()
    right.close()


def test_results_of_a_burst_wait_for_the_flusher_and_the_last_one_does_not():
    class Writer:
        def __init__(self):
            self.sent = []

        def send_bytes(self, data, defer=False):
            self.sent.append(defer)

    writer = Writer()
    sink = framed.ResultSink(writer, lambda: None)   # type: ignore[arg-type]
    sink.received = 3
    for i in range(3):
        sink.put(pb.TaskResult(task_id=b"%d" % i))
    assert writer.sent == [True, True, False]
    sink.received += 1                 # a streaming task: its items wait, its end does not
    sink.put(pb.TaskResult(task_id=b"g", generator_item=True))
    sink.put(pb.TaskResult(task_id=b"g", generator_done=True))
    assert writer.sent[3:] == [True, False]


class _FakeExecutor:
    """Records what an authenticated connection delivers and answers each task."""

    def __init__(self) -> None:
        self.batches: list[pb.TaskBatch] = []
        self.threads: list[str] = []          # which thread read each batch
        self.ended = threading.Event()
        self.conn: framed.ServerConnection | None = None
        self.connected = threading.Event()

    def on_batch(self, batch: pb.TaskBatch) -> None:
        self.batches.append(batch)
        self.threads.append(threading.current_thread().name)
        for spec in batch.tasks:
            self.conn.sink.put(pb.TaskResult(task_id=spec.task_id))

    def serve_connection(self, conn: framed.ServerConnection) -> None:
        self.conn = conn
        self.connected.set()
        try:
            conn.serve(self.on_batch)
        finally:
            conn.sink.put(None)
            self.ended.set()


@pytest.fixture
def listener():
    fake = _FakeExecutor()
    server = framed.FramedServer(TOKEN, "127.0.0.1", fake.serve_connection, lambda: None)
    server.start()
    yield server, fake
    server.stop()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _task_frame(task_id: bytes = b"planted") -> bytes:
    return frames.encode_frame([pb.TaskBatch(tasks=[pb.TaskSpec(task_id=task_id)])
                                .SerializeToString()])


def test_listener_answers_the_token_holder(listener):
    server, fake = listener
    call = framed.FramedPushCall(TOKEN, pb.Address(ip="127.0.0.1", push_port=server.port))
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"a")]))   # before connecting: waits
    results = iter(call)
    assert next(results).results[0].task_id == b"a"
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"b")]))
    assert next(results).results[0].task_id == b"b"
    call.close()
    assert list(results) == []               # the server ends the stream after ours
    assert fake.ended.wait(10)


def _call(call, results, task_id: bytes) -> None:
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=task_id)]))
    assert next(results).results[0].task_id == task_id


def _connected_owner(server, fake):
    """An owner whose first call was answered (read by the connection's thread), and the
    worker's ServerConnection for it."""
    call = framed.FramedPushCall(TOKEN, pb.Address(ip="127.0.0.1", push_port=server.port))
    results = iter(call)
    _call(call, results, b"a")
    assert fake.threads == ["ember-push-conn"]
    return call, results, fake.conn


def test_an_idle_main_thread_reads_the_connection_itself(listener):
    # The worker's main thread polls the connection of its last task (a sync
    # caller's next call then needs no wake-up); its own thread stays off it.
    server, fake = listener
    call, results, conn = _connected_owner(server, fake)
    conn.claim()
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"b")]))
    assert conn.poll_until(lambda: len(fake.batches) == 2, 10.0, fake.on_batch)
    assert next(results).results[0].task_id == b"b"
    assert fake.threads[1] == threading.current_thread().name
    # Once released, the connection's thread reads again.
    conn.release()
    _call(call, results, b"c")
    assert fake.threads[2] == "ember-push-conn"
    call.close()
    assert list(results) == [] and fake.ended.wait(10)


def test_during_a_long_task_the_connection_thread_reads_for_the_main_thread(listener):
    # Cancellations and more tasks must arrive while the main thread runs a task.
    server, fake = listener
    call, results, conn = _connected_owner(server, fake)
    conn.claim()
    conn.busy()                     # a task from this connection starts; no poll meanwhile
    _call(call, results, b"b")      # read by the connection's thread after LONG_TASK_S
    assert fake.threads[1] == "ember-push-conn"
    conn.release()
    call.close()
    assert list(results) == [] and fake.ended.wait(10)


def test_the_end_seen_by_the_polling_main_thread_ends_the_connection_thread(listener):
    server, fake = listener
    call, results, conn = _connected_owner(server, fake)
    conn.claim()
    call.close()                    # the end frame, read by the main thread
    deadline = time.monotonic() + 10
    while conn.poll_until(lambda: False, 0.05, fake.on_batch):
        assert time.monotonic() < deadline, "the main thread never saw the end"
    conn.release()
    assert fake.ended.wait(10)
    assert list(results) == []


def _owner_with_reader(server):
    """An owner call whose batches a reader thread consumes (as ActorSubmitter._read),
    recording each batch's task ids and the thread that handled it."""
    call = framed.FramedPushCall(TOKEN, pb.Address(ip="127.0.0.1", push_port=server.port))
    handled: list = []
    gate = threading.Event()
    gate.set()

    def handle(batch) -> None:
        gate.wait(10)
        handled.append(([r.task_id for r in batch.results], threading.current_thread().name))

    def consume() -> None:
        for batch in call:
            handle(batch)

    reader = threading.Thread(target=consume, name="owner-reader", daemon=True)
    reader.start()
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"a")]))
    deadline = time.monotonic() + 10
    while not handled:
        assert time.monotonic() < deadline, "the first result never came"
        time.sleep(0.001)
    return call, handled, handle, gate, reader


def test_a_caller_waiting_for_a_result_handles_it_on_its_own_thread(listener):
    server, _ = listener
    call, handled, handle, _, reader = _owner_with_reader(server)
    assert handled == [([b"a"], "owner-reader")]
    me = threading.current_thread().name
    # The reader thread, woken by the reply too, may win the lock now and then.
    for i in range(20):
        call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"b%d" % i)]))
        call.poll(lambda: len(handled) == i + 2, 10.0, handle)
        assert handled[-1][0] == [b"b%d" % i]
        if handled[-1][1] == me:
            break
    assert [who for _, who in handled].count(me) == 1, handled
    # Nobody polling: the reader thread handles the next one, as before.
    n = len(handled)
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"c")]))
    deadline = time.monotonic() + 10
    while len(handled) == n:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert handled[-1] == ([b"c"], "owner-reader")
    call.close()
    reader.join(10)
    assert not reader.is_alive()


def test_polling_gives_way_while_the_reader_thread_handles_a_batch(listener):
    server, _ = listener
    call, handled, handle, gate, reader = _owner_with_reader(server)
    gate.clear()                    # the reader will hold its next batch (and the lock)
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"b")]))
    while not call._read_lock.locked():
        time.sleep(0.001)
    call.poll(lambda: False, 30.0, handle)   # returns at once instead of spinning 30 s
    assert len(handled) == 1
    gate.set()
    deadline = time.monotonic() + 10
    while len(handled) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert handled[1] == ([b"b"], "owner-reader")
    call.close()
    reader.join(10)


def test_the_end_read_by_a_polling_caller_ends_the_reader_thread(listener):
    server, fake = listener
    call, handled, handle, _, reader = _owner_with_reader(server)
    call.close()                    # the worker answers with the end frame
    assert fake.ended.wait(10)
    call.poll(lambda: False, 10.0, handle)  # may see the end before the reader does
    reader.join(10)
    assert not reader.is_alive() and call._ended
    call.poll(lambda: False, 10.0, handle)  # an ended call returns at once


def test_ctrl_c_waits_until_a_polled_batch_is_handled(listener):
    # Results taken off the wire but not stored would leave their waiters hanging.
    server, _ = listener
    call, handled, _, _, reader = _owner_with_reader(server)
    masks: list = []

    def handle(batch) -> None:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        handled.append(([r.task_id for r in batch.results], threading.current_thread().name))

    for i in range(20):             # until the poll (not the reader) handles one
        call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"b%d" % i)]))
        call.poll(lambda: len(handled) == i + 2, 10.0, handle)
        if masks:
            break
    assert masks and signal.SIGINT in masks[0]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    call.close()
    reader.join(10)


@pytest.mark.parametrize("first", [
    pytest.param(os.urandom(64), id="random-bytes"),
    pytest.param(frames.auth_frame("wrong"), id="wrong-token"),
    pytest.param(frames.auth_frame(TOKEN[:-1]), id="token-prefix"),
    pytest.param(frames.auth_frame(TOKEN + "x"), id="token-plus-one"),
    pytest.param(struct.pack(">I", 0xFFFFFFF0), id="oversized-length"),
    pytest.param(struct.pack(">I", frames.MAX_AUTH_FRAME + 1) + TOKEN.encode(), id="long-token"),
    pytest.param(frames.END_FRAME, id="end-frame-first"),
])
def test_listener_closes_unauthenticated_connections(listener, first):
    server, fake = listener
    with _connect(server.port) as sock:
        sock.sendall(first + _task_frame())
        assert closed_without_reply(sock)
    assert fake.batches == []


@pytest.mark.parametrize("bad", [
    pytest.param(struct.pack(">I", frames.MAX_FRAME + 1), id="oversized-length"),
    pytest.param(frames.encode_frame([b"\x0f\xff\xff"]), id="not-a-protobuf"),
])
def test_listener_closes_authenticated_connections_on_bad_frames(listener, bad):
    server, fake = listener
    with _connect(server.port) as sock:
        sock.sendall(frames.auth_frame(TOKEN) + bad + _task_frame())
        assert closed_without_reply(sock)
    assert fake.ended.wait(10) and fake.batches == []


def test_owner_sees_a_refused_or_missing_listener_as_an_ended_stream(listener):
    server, fake = listener
    refused = framed.FramedPushCall("wrong", pb.Address(ip="127.0.0.1", push_port=server.port))
    refused.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"a")]))
    assert list(refused) == []
    with socket.socket() as probe:      # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    missing = framed.FramedPushCall(TOKEN, pb.Address(ip="127.0.0.1", push_port=port))
    missing.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"a")]))
    assert list(missing) == []
    assert fake.batches == []


def test_cancel_ends_the_owners_iteration(listener):
    server, _ = listener
    call = framed.FramedPushCall(TOKEN, pb.Address(ip="127.0.0.1", push_port=server.port))
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(call))
    reader.start()
    call.send(pb.TaskBatch(tasks=[pb.TaskSpec(task_id=b"a")]))
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    call.cancel()
    reader.join(timeout=10)
    assert not reader.is_alive() and len(got) == 1


# ---------------------------------------------------------------- a workload over each transport

@pytest.fixture(scope="module", params=["framed", "grpc"])
def transport(request):
    if ember.is_initialized():
        ember.shutdown()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(base.TRANSPORT_ENV, request.param)   # workers inherit it (nested tasks)
        ember.init(num_cpus=2)
        try:
            yield request.param
        finally:
            ember.shutdown()


_CALL_CLASSES = {"framed": framed.FramedPushCall, "grpc": grpc_stream.GrpcPushCall}


@ember.remote
def _add(a, b):
    return a + b


@ember.remote
def _nested(n):
    return sum(ember.get([_add.remote(i, 1) for i in range(n)]))


@ember.remote
def _transport_in_worker():
    return base.selected()


@ember.remote(num_returns="streaming")
def _count(n):
    yield from range(n)


@ember.remote
class _Counter:
    def __init__(self):
        self.n = 0

    def incr(self, k=1):
        self.n += k
        return self.n

    def pid(self):
        return os.getpid()

    def die(self):
        os._exit(1)


@ember.remote
class _AsyncEcho:
    async def echo(self, x):
        return x


def test_tasks_actors_and_generators(transport):
    assert ember.get([_add.remote(i, i) for i in range(200)], timeout=60) == [
        2 * i for i in range(200)]
    assert ember.get(_nested.remote(20), timeout=60) == sum(range(1, 21))
    assert ember.get(_transport_in_worker.remote(), timeout=60) == transport
    assert list(ember.get(r, timeout=60) for r in _count.remote(5)) == list(range(5))
    counter = _Counter.remote()
    assert ember.get([counter.incr.remote() for _ in range(100)], timeout=60)[-1] == 100
    echo = _AsyncEcho.remote()
    assert ember.get([echo.echo.remote(i) for i in range(50)], timeout=60) == list(range(50))
    # The stream really is the selected transport's.
    core = ember._private.worker_state.core
    conn = core.actors._actors[counter._actor_id.binary()].conn
    assert isinstance(conn.call, _CALL_CLASSES[transport])
    ember.kill(counter)
    ember.kill(echo)


@ember.remote(max_retries=2)
def _crash_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "retried"


@ember.remote(max_retries=0)
def _crash():
    os._exit(1)


def test_worker_death_retries_and_fails(transport, tmp_path):
    assert ember.get(_crash_once.remote(str(tmp_path / "m")), timeout=60) == "retried"
    with pytest.raises(ember.exceptions.WorkerCrashedError):
        ember.get(_crash.remote(), timeout=60)


def test_actor_restart_and_death(transport):
    actor = _Counter.options(max_restarts=1, max_task_retries=0).remote()
    pid = ember.get(actor.pid.remote(), timeout=60)
    with pytest.raises(ember.exceptions.ActorUnavailableError):   # it is restarting
        ember.get(actor.die.remote(), timeout=60)
    # Restarted: a fresh process with fresh state.
    deadline = time.monotonic() + 60
    while True:
        try:
            new_pid = ember.get(actor.pid.remote(), timeout=60)
            break
        except ember.exceptions.ActorUnavailableError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert new_pid != pid
    assert ember.get(actor.incr.remote(), timeout=60) == 1
    with pytest.raises(ember.exceptions.ActorError):       # no restarts left
        ember.get(actor.die.remote(), timeout=60)
    with pytest.raises(ember.exceptions.ActorDiedError):
        ember.get(actor.pid.remote(), timeout=60)


@ember.remote
def _sleep(s):
    time.sleep(s)
    return "finished"


def test_cancel_and_max_calls(transport):
    ref = _sleep.remote(60)
    time.sleep(0.5)
    ember.cancel(ref)
    with pytest.raises(ember.exceptions.TaskCancelledError):
        ember.get(ref, timeout=60)
    once = _transport_in_worker.options(max_calls=1)
    assert ember.get([once.remote() for _ in range(3)], timeout=60) == [transport] * 3

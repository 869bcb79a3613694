"""Raw gRPC against every server of a cluster: without the cluster token nothing runs.

Each test talks to the servers as an attacker on the network would: bare gRPC,
no token or a wrong one, and request bodies that are random bytes or pickles
that would act if anything unpickled them. The calls must be refused
(UNAUTHENTICATED) before a handler runs, and the cluster's state must not move.
Each refusal has a positive control: the same request with the token does act,
so a check that let everything through would fail here.
"""
from __future__ import annotations

import os
import time

import grpc
import pytest

import ember
from ember._private import serialization
from ember._private.object_transfer import RAW_READ_METHOD
from ember._private.protos import ember_pb2 as pb
from ember._private.protos import ember_pb2_grpc as pbg
from ember.testing import closed_without_reply, pid_alive, wait_for_condition

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _core():
    return ember._private.worker_state.core


def _bad_metadata(token: str) -> list:
    near_miss = token[:-1] + ("0" if token[-1] != "0" else "1")
    return [None, (("ember-token", "wrong"),), (("ember-token", near_miss),),
            (("ember-token", ""),), (("authorization", f"Bearer {token}"),)]


def _raw_call(chan: grpc.Channel, path: str, method, body: bytes, md) -> grpc.StatusCode:
    """Send ``body`` as the raw request of ``method``; the status the server answered."""
    # wait_for_ready: a connection that is slow to come up is not an answer.
    kw = dict(metadata=md, timeout=10, wait_for_ready=True)
    try:
        if method.client_streaming and method.server_streaming:
            list(chan.stream_stream(path)(iter([body]), **kw))
        elif method.client_streaming:
            chan.stream_unary(path)(iter([body]), **kw)
        elif method.server_streaming:
            list(chan.unary_stream(path)(body, **kw))
        else:
            chan.unary_unary(path)(body, **kw)
    except grpc.RpcError as e:
        return e.code()
    return OK


@ember.remote
def _where():
    core = ember._private.worker_state.core
    return core.address, os.getpid(), core.worker_id


@ember.remote
class _Probe:
    def where(self):
        core = ember._private.worker_state.core
        return core.address, os.getpid(), core.worker_id

    def push_port(self):
        return ember._private.worker_state.core.push_port


@pytest.fixture(scope="module")
def servers(cluster):
    """Address of each kind of server: control service, node manager, driver, task worker,
    actor worker; and the probe actor (kept alive for the module)."""
    core = _core()
    task_addr, task_pid, task_wid = ember.get(_where.remote(), timeout=60)
    actor = _Probe.remote()
    actor_addr, actor_pid, actor_wid = ember.get(actor.where.remote(), timeout=60)
    yield {"gcs": core.gcs_address, "node manager": core.node_manager_address,
           "driver": core.address, "task worker": task_addr, "actor worker": actor_addr,
           "task_pid": task_pid, "task_wid": task_wid, "actor_pid": actor_pid,
           "actor": actor, "actor_wid": actor_wid}
    ember.kill(actor)


# Which service each kind of server must host (UNAUTHENTICATED for all its methods).
_HOSTED = {"gcs": "ControlService", "node manager": "NodeManager", "driver": "CoreWorker",
           "task worker": "CoreWorker", "actor worker": "CoreWorker"}


def test_every_method_of_every_server_refuses_random_bytes_without_the_token(servers):
    token = _core().token
    services = list(pb.DESCRIPTOR.services_by_name.values())
    assert {s.name for s in services} >= set(_HOSTED.values())
    for kind, hosted in _HOSTED.items():
        refused = set()
        with grpc.insecure_channel(servers[kind]) as chan:
            for service in services:
                for method in service.methods:
                    path = f"/{service.full_name}/{method.name}"
                    for md in _bad_metadata(token):
                        code = _raw_call(chan, path, method, os.urandom(64), md)
                        # UNIMPLEMENTED: this server does not host that service at all.
                        assert code in (UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED), (
                            kind, path, md, code)
                        if code == UNAUTHENTICATED:
                            refused.add(service.name)
        assert hosted in refused, (kind, refused)
    # Node managers also serve object bytes on a raw method outside the proto.
    with grpc.insecure_channel(servers["node manager"]) as chan:
        read = chan.unary_stream(RAW_READ_METHOD)
        for md in _bad_metadata(token):
            with pytest.raises(grpc.RpcError) as info:
                list(read(os.urandom(32), metadata=md, timeout=10))
            assert info.value.code() == UNAUTHENTICATED


def test_refused_kv_put_leaves_the_kv_unchanged(servers):
    core = _core()
    request = pb.KVRequest(ns="auth_test", key=b"k", value=b"planted", overwrite=True)
    with grpc.insecure_channel(servers["gcs"]) as chan:
        stub = pbg.ControlServiceStub(chan)
        for md in _bad_metadata(core.token):
            with pytest.raises(grpc.RpcError) as info:
                stub.KVPut(request, metadata=md, timeout=5)
            assert info.value.code() == UNAUTHENTICATED
        assert not core.gcs.KVGet(pb.KVRequest(ns="auth_test", key=b"k"), timeout=5).found
        # Positive control: the same call with the token does write.
        stub.KVPut(request, metadata=(("ember-token", core.token),), timeout=5)
    assert core.gcs.KVGet(pb.KVRequest(ns="auth_test", key=b"k"), timeout=5).value == b"planted"
    core.gcs.KVDel(pb.KVRequest(ns="auth_test", key=b"k"), timeout=5)


def _available_cpu(stub) -> float:
    return stub.GetStatus(pb.Empty(), timeout=5).node.available["CPU"]


def test_refused_lease_request_leaves_resources_unchanged(servers):
    core = _core()
    md_ok = (("ember-token", core.token),)
    with grpc.insecure_channel(servers["node manager"]) as chan:
        stub = pbg.NodeManagerStub(chan)
        status = lambda: _available_cpu(_Authed(stub, md_ok))  # noqa: E731
        wait_for_condition(lambda: status() == 2.0, timeout=30)
        request = pb.LeaseRequest(resources={"CPU": 1}, owner_worker_id=core.worker_id,
                                  name="auth_test")
        for md in _bad_metadata(core.token):
            with pytest.raises(grpc.RpcError) as info:
                stub.RequestWorkerLease(request, metadata=md, timeout=5)
            assert info.value.code() == UNAUTHENTICATED
        assert status() == 2.0
        # Positive control: with the token the same request takes a CPU.
        reply = None
        for _ in range(30):
            reply = stub.RequestWorkerLease(request, metadata=md_ok, timeout=10)
            if reply.granted:
                break
        assert reply is not None and reply.granted, reply
        assert status() == 1.0
        stub.ReturnWorkerLease(pb.ReturnLease(lease_id=reply.lease_id), metadata=md_ok,
                               timeout=5)
        wait_for_condition(lambda: status() == 2.0, timeout=30)


class _Authed:
    def __init__(self, stub, md):
        self._stub, self._md = stub, md

    def GetStatus(self, request, timeout):
        return self._stub.GetStatus(request, metadata=self._md, timeout=timeout)


class _Plant:
    """Unpickling this makes a directory: proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_refused_push_tasks_never_unpickles_the_payload(servers, tmp_path):
    core = _core()
    marker = str(tmp_path / "unpickled")
    spec = pb.TaskSpec(task_id=os.urandom(24), job_id=1, function_id=os.urandom(16),
                       name="planted", num_returns=1,
                       args=[pb.Arg(data=serialization.to_bytes(serialization.serialize(
                           _Plant(marker))))],
                       owner=pb.Address(ip="127.0.0.1", port=1, worker_id="nobody"))
    batch = pb.TaskBatch(tasks=[spec])
    for kind in ("task worker", "actor worker", "driver"):
        with grpc.insecure_channel(servers[kind]) as chan:
            push = pbg.CoreWorkerStub(chan).PushTasks
            for md in _bad_metadata(core.token):
                with pytest.raises(grpc.RpcError) as info:
                    list(push(iter([batch]), metadata=md, timeout=10))
                assert info.value.code() == UNAUTHENTICATED
        # StartActor carries a pickled class too; refused the same way.
        with grpc.insecure_channel(servers[kind]) as chan:
            with pytest.raises(grpc.RpcError) as info:
                pbg.CoreWorkerStub(chan).StartActor(pb.StartActorRequest(), timeout=10)
            assert info.value.code() == UNAUTHENTICATED
    time.sleep(0.5)
    assert not os.path.exists(marker)
    # Positive control: delivered with the token (an ordinary task), it does act.
    control = str(tmp_path / "control")
    ember.get(_takes.remote(_Plant(control)), timeout=60)
    assert os.path.isdir(control)


@ember.remote
def _takes(value):
    return None


def test_refused_exit_and_kill_leave_workers_and_actors_alive(servers):
    core = _core()
    for md in _bad_metadata(core.token):
        for kind in ("task worker", "actor worker"):
            with grpc.insecure_channel(servers[kind]) as chan:
                with pytest.raises(grpc.RpcError) as info:
                    pbg.CoreWorkerStub(chan).Exit(pb.Empty(), metadata=md, timeout=5)
                assert info.value.code() == UNAUTHENTICATED
        with grpc.insecure_channel(servers["node manager"]) as chan:
            with pytest.raises(grpc.RpcError) as info:
                pbg.NodeManagerStub(chan).KillWorker(
                    pb.KillWorkerRequest(worker_id=servers["task_wid"], force=True),
                    metadata=md, timeout=5)
            assert info.value.code() == UNAUTHENTICATED
        with grpc.insecure_channel(servers["gcs"]) as chan:
            with pytest.raises(grpc.RpcError) as info:
                pbg.ControlServiceStub(chan).KillActor(
                    pb.KillActorRequest(actor_id=servers["actor"]._actor_id.binary(), no_restart=True),
                    metadata=md, timeout=5)
            assert info.value.code() == UNAUTHENTICATED
    time.sleep(0.5)
    assert pid_alive(servers["task_pid"]) and pid_alive(servers["actor_pid"])
    assert ember.get(servers["actor"].where.remote(), timeout=30)[1] == servers["actor_pid"]


def test_object_bytes_are_not_served_without_the_token(servers):
    import numpy as np

    core = _core()
    value = np.arange(1 << 18, dtype=np.int64)           # 2 MiB: in shared memory
    ref = ember.put(value)
    request = pb.ReadRequest(object_id=ref.binary(), offset=0, length=0)
    with grpc.insecure_channel(servers["node manager"]) as chan:
        raw = chan.unary_stream(RAW_READ_METHOD,
                                request_serializer=pb.ReadRequest.SerializeToString)
        framed = pbg.NodeManagerStub(chan).ReadObject
        for md in _bad_metadata(core.token):
            for read in (raw, framed):
                got = []
                with pytest.raises(grpc.RpcError) as info:
                    for chunk in read(request, metadata=md, timeout=10):
                        got.append(chunk)
                assert info.value.code() == UNAUTHENTICATED and not got
        # Positive control: with the token the raw method streams the object's bytes.
        data = b"".join(raw(request, metadata=(("ember-token", core.token),), timeout=30))
    assert len(data) >= value.nbytes


def test_malformed_requests_with_the_token_fail_cleanly(servers):
    """A body that is not a valid message is refused at parsing; servers stay up."""
    core = _core()
    md = (("ember-token", core.token),)
    garbage = b"\x0f\xff\xff"          # field 1 with wire type 7: never a valid protobuf
    with grpc.insecure_channel(servers["gcs"]) as chan:
        code = _raw_call(chan, "/ember.ControlService/KVPut", _Unary, garbage, md)
        assert code == grpc.StatusCode.INTERNAL, code
    with grpc.insecure_channel(servers["node manager"]) as chan:
        for path in ("/ember.NodeManager/RequestWorkerLease", "/ember.NodeManager/KillWorker"):
            code = _raw_call(chan, path, _Unary, garbage, md)
            assert code == grpc.StatusCode.INTERNAL, (path, code)
    with grpc.insecure_channel(servers["task worker"]) as chan:
        code = _raw_call(chan, "/ember.CoreWorker/PushTasks", _BidiStream, garbage, md)
        assert code != UNAUTHENTICATED
    # Nothing changed and everyone still answers.
    assert not core.gcs.KVGet(pb.KVRequest(ns="", key=b""), timeout=5).found
    assert pid_alive(servers["task_pid"])
    assert core.node_manager.GetStatus(pb.Empty(), timeout=5).node.alive
    assert ember.get(servers["actor"].where.remote(), timeout=30)[1] == servers["actor_pid"]


class _Unary:
    client_streaming = False
    server_streaming = False


class _BidiStream:
    client_streaming = True
    server_streaming = True


# ---------------------------------------------------------------- the framed PushTasks port

@ember.remote
def _push_port():
    return ember._private.worker_state.core.push_port


def test_framed_push_port_refuses_without_the_token_and_never_unpickles(servers, tmp_path):
    """Workers also take PushTasks on a framed socket (transports/framed.py): random
    bytes, a wrong token, an oversized length, or (with the token) a frame that is
    oversized or not a protobuf close the connection before anything is unpickled."""
    import socket
    import struct

    from ember._private.transports import frames

    core = _core()
    task_port = ember.get(_push_port.remote(), timeout=60)
    actor_port = ember.get(servers["actor"].push_port.remote(), timeout=60)
    assert task_port and actor_port
    marker = str(tmp_path / "unpickled")
    planted = pb.TaskBatch(tasks=[pb.TaskSpec(
        task_id=os.urandom(24), job_id=1, function_id=os.urandom(16), name="planted",
        num_returns=1, args=[pb.Arg(data=serialization.to_bytes(serialization.serialize(
            _Plant(marker))))], owner=pb.Address(ip="127.0.0.1", port=1, worker_id="nobody"))])
    planted_frame = frames.encode_frame([planted.SerializeToString()])
    near_miss = core.token[:-1] + ("0" if core.token[-1] != "0" else "1")
    authed = frames.auth_frame(core.token)
    openings = [os.urandom(64), frames.auth_frame("wrong"), frames.auth_frame(near_miss),
                frames.END_FRAME, struct.pack(">I", 0xFFFFFFF0),
                authed + struct.pack(">I", frames.MAX_FRAME + 1),
                authed + frames.encode_frame([b"\x0f\xff\xff"])]
    for port in (task_port, actor_port):
        for opening in openings:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(opening + planted_frame)
                assert closed_without_reply(sock), (port, opening[:8])
    time.sleep(0.5)
    assert not os.path.exists(marker)
    assert pid_alive(servers["task_pid"]) and pid_alive(servers["actor_pid"])
    # Positive control: with the token the same port takes a batch and answers it
    # (a task of an unknown function fails, with its id, before its arguments load).
    probe = pb.TaskBatch(tasks=[pb.TaskSpec(task_id=os.urandom(24), job_id=1, num_returns=1,
                                            function_id=os.urandom(16), name="probe")])
    with socket.create_connection(("127.0.0.1", task_port), timeout=30) as sock:
        sock.sendall(authed + frames.encode_frame([probe.SerializeToString()]))
        decoder = frames.FrameDecoder()
        frame = None
        while frame is None:
            data = sock.recv(65536)
            assert data, "the worker closed an authenticated connection"
            decoder.feed(data)
            frame = decoder.next()
        reply = pb.ResultBatch.FromString(frame)
        assert reply.results[0].task_id == probe.tasks[0].task_id
    assert ember.get(servers["actor"].where.remote(), timeout=30)[1] == servers["actor_pid"]

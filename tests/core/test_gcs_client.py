"""GcsClient waits out a control service that is down; DriverWatch re-opens its stream.

A real gRPC server (in this process) plays the control service: it is started
late, stopped and started again on the same port, as a restart would.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest
from ember._private import gcs_client, node, rpc
from ember._private.gcs import ControlService
from ember._private.gcs_client import DriverWatch, GcsClient
from ember._private.protos import ember_pb2 as pb
from ember._private.protos import ember_pb2_grpc as pbg
from ember.testing import wait_for_condition

TOKEN = "test-token"


class Server:
    """A control service on a fixed port that can be stopped and started again."""

    def __init__(self, port: int, db_path: str) -> None:
        self.port = port
        self.db_path = db_path
        self.server: grpc.Server | None = None
        self.service: ControlService | None = None

    def start(self) -> None:
        self.service = ControlService(self.db_path, TOKEN)
        self.server = rpc.make_server(TOKEN, max_workers=16)
        pbg.add_ControlServiceServicer_to_server(self.service, self.server)
        rpc.bind(self.server, "127.0.0.1", self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=0).wait()
            self.service.stop()
            self.server = None


@pytest.fixture
def server(tmp_path):
    s = Server(node.free_port(), str(tmp_path / "control.sqlite"))
    yield s
    s.stop()


def test_call_waits_for_a_control_service_that_comes_up(server):
    client = GcsClient(f"127.0.0.1:{server.port}", TOKEN, reconnect_s=60)
    threading.Timer(1.0, server.start).start()
    reply = client.KVPut(pb.KVRequest(ns="user", key=b"k", value=b"v", overwrite=True),
                         timeout=5)
    assert reply.added
    client.close()


def test_call_fails_after_the_reconnect_window(server):
    client = GcsClient(f"127.0.0.1:{server.port}", TOKEN, reconnect_s=0.5)
    with pytest.raises(grpc.RpcError) as info:
        client.GetNodes(pb.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # reconnect_s=0 on one call: no waiting at all.
    patient = GcsClient(f"127.0.0.1:{server.port}", TOKEN, reconnect_s=60)
    with pytest.raises(grpc.RpcError):
        patient.GetNodes(pb.Empty(), timeout=5, reconnect_s=0)
    client.close()
    patient.close()


def test_other_errors_are_not_retried(server):
    server.start()
    client = GcsClient(f"127.0.0.1:{server.port}", "wrong-token", reconnect_s=60)
    with pytest.raises(grpc.RpcError) as info:
        client.GetNodes(pb.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    client.close()


def test_calls_continue_across_a_restart_on_the_same_port(server):
    server.start()
    client = GcsClient(f"127.0.0.1:{server.port}", TOKEN, reconnect_s=60)
    client.KVPut(pb.KVRequest(ns="user", key=b"k", value=b"v", overwrite=True), timeout=5)
    server.stop()
    threading.Timer(2.0, server.start).start()
    # State comes back with the restarted service (written through to SQLite).
    assert client.KVGet(pb.KVRequest(ns="user", key=b"k"), timeout=5).value == b"v"
    client.close()


def test_driver_watch_reopens_its_stream_on_the_restarted_service(server):
    server.start()
    client = GcsClient(f"127.0.0.1:{server.port}", TOKEN)
    watch = DriverWatch(client, pb.DriverInfo(worker_id="driver-1", job_id=1))
    wait_for_condition(lambda: server.service._driver_streams.get("driver-1") == 1, timeout=20)
    server.stop()
    server.start()
    wait_for_condition(lambda: server.service._driver_streams.get("driver-1") == 1, timeout=20,
                       message="the driver re-opened WatchDriver")
    assert watch.reconnects >= 1
    service = server.service
    watch.cancel()
    wait_for_condition(lambda: not service._driver_streams.get("driver-1"), timeout=20,
                       message="cancel() ends the stream for good")
    time.sleep(1.5)
    assert not service._driver_streams.get("driver-1")
    client.close()


def test_reconnect_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv(gcs_client.RECONNECT_ENV, "7.5")
    assert gcs_client.reconnect_timeout() == 7.5
    monkeypatch.setenv(gcs_client.RECONNECT_ENV, "soon")
    with pytest.raises(ValueError, match="EMBER_GCS_RECONNECT_TIMEOUT_S.*seconds"):
        gcs_client.reconnect_timeout()
    monkeypatch.delenv(gcs_client.RECONNECT_ENV)
    assert gcs_client.reconnect_timeout() == gcs_client.DEFAULT_RECONNECT_S

"""Every RPC needs the cluster token; without it nothing runs (issue #2 s.2)."""
from __future__ import annotations

import grpc
import pytest

import ember
from ember._private.protos import ember_pb2 as pb
from ember._private.protos import ember_pb2_grpc as pbg


@pytest.mark.parametrize("token", [None, "wrong"])
def test_calls_without_the_token_are_refused(cluster, token):
    core = ember._private.worker_state.core
    md = None if token is None else (("ember-token", token),)
    targets = [
        (pbg.ControlServiceStub, core.gcs_address,
         lambda s: s.KVPut(pb.KVRequest(ns="x", key=b"k", value=b"v"), metadata=md, timeout=5)),
        (pbg.NodeManagerStub, core.node_manager_address,
         lambda s: s.RequestWorkerLease(pb.LeaseRequest(resources={"CPU": 1}), metadata=md,
                                        timeout=5)),
        (pbg.CoreWorkerStub, core.address,
         lambda s: s.GetObject(pb.GetObjectRequest(object_id=b"x"), metadata=md, timeout=5)),
    ]
    for stub_cls, address, call in targets:
        with grpc.insecure_channel(address) as chan:
            with pytest.raises(grpc.RpcError) as info:
                call(stub_cls(chan))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nothing changed: the KV write did not happen.
    reply = core.gcs.KVGet(pb.KVRequest(ns="x", key=b"k"), timeout=5)
    assert not reply.found


def test_servers_listen_on_loopback(cluster):
    core = ember._private.worker_state.core
    for address in (core.gcs_address, core.node_manager_address, core.address):
        assert address.startswith("127.0.0.1:")


def test_token_file_is_private(cluster):
    import os
    import stat
    session = ember.testing.session_dir()
    mode = stat.S_IMODE(os.stat(os.path.join(session, "token")).st_mode)
    assert mode == 0o600

"""Injected RPC failures (EMBER_TESTING_RPC_FAILURE): the parser and policy, the
interceptor against a real server, and whole workloads that must come out exact
with lease, object and actor RPCs dropped on the way there or back."""
from __future__ import annotations

import random
import threading

import ember
import grpc
import pytest
from ember._private import rpc, rpc_chaos
from ember._private.protos import ember_pb2 as pb
from ember._private.protos import ember_pb2_grpc as pbg
from ember._private.rpc_chaos import ChaosPolicy, Rule, parse
from ember.testing import wait_for_condition


# ---------------------------------------------------------------- parsing
def test_parse_ours_rays_and_wildcards():
    rules = parse("NodeManager.RequestWorkerLease=3:25:25, GetActor=-1:10:0,"
                  "CoreWorkerService.grpc_client.GetObject=1:0:100,*=2:1:1")
    assert rules == {"NodeManager.RequestWorkerLease": Rule(3, 25.0, 25.0),
                     "GetActor": Rule(-1, 10.0, 0.0),
                     "CoreWorker.GetObject": Rule(1, 0.0, 100.0),
                     "*": Rule(2, 1.0, 1.0)}
    assert parse("") == {}


@pytest.mark.parametrize("bad", ["NodeManager.X", "X=1:2", "X=a:1:1", "X=1:60:60",
                                 "X=-2:1:1", "=1:1:1"])
def test_bad_entries_say_how_to_write_them(bad):
    with pytest.raises(ValueError, match="EMBER_TESTING_RPC_FAILURE"):
        parse(bad)


# ---------------------------------------------------------------- policy
def test_policy_stops_after_max_failures_per_method():
    policy = ChaosPolicy(parse("NodeManager.GetStatus=2:100:0"))
    verdicts = [policy.decide("NodeManager.GetStatus") for _ in range(5)]
    assert verdicts == ["request", "request", None, None, None]
    assert policy.decide("NodeManager.SetBlocked") is None
    assert policy.failures() == {"NodeManager.GetStatus": 2}


def test_policy_splits_request_and_reply_drops_by_percent():
    policy = ChaosPolicy(parse("Ping=-1:30:20"), rng=random.Random(7))
    verdicts = [policy.decide("Svc.Ping") for _ in range(4000)]
    assert 0.25 < verdicts.count("request") / 4000 < 0.35
    assert 0.15 < verdicts.count("response") / 4000 < 0.25


def test_exact_method_rule_wins_over_wildcard():
    policy = ChaosPolicy(parse("*=-1:100:0,NodeManager.GetStatus=-1:0:100"))
    assert policy.decide("NodeManager.GetStatus") == "response"
    assert policy.decide("NodeManager.SetBlocked") == "request"


# ---------------------------------------------------------------- interceptor
class _CountingNodeManager(pbg.NodeManagerServicer):
    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def GetStatus(self, request, context):
        with self.lock:
            self.calls += 1
        return pb.NodeStatus(num_workers=7)


@pytest.fixture
def counting_server(monkeypatch):
    servicer = _CountingNodeManager()
    server = rpc.make_server("tok", max_workers=4)
    pbg.add_NodeManagerServicer_to_server(servicer, server)
    port = rpc.bind(server)
    server.start()
    rpc_chaos.reset()
    yield servicer, f"127.0.0.1:{port}"
    rpc_chaos.reset()
    server.stop(grace=0)


def _stub(address):
    return rpc.Stub(rpc.channel(address), pbg.NodeManagerStub, "tok")


@pytest.mark.parametrize("future", [False, True])
def test_a_dropped_request_never_reaches_the_server(counting_server, monkeypatch, future):
    servicer, address = counting_server
    monkeypatch.setenv("EMBER_TESTING_RPC_FAILURE", "NodeManager.GetStatus=1:100:0")
    stub = _stub(address)
    with pytest.raises(grpc.RpcError) as info:
        call = stub.GetStatus.future if future else stub.GetStatus
        result = call(pb.Empty(), timeout=5)
        if future:
            result.result()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 0
    assert stub.GetStatus(pb.Empty(), timeout=5).num_workers == 7   # only one failure
    assert servicer.calls == 1


@pytest.mark.parametrize("future", [False, True])
def test_a_dropped_reply_was_handled_by_the_server(counting_server, monkeypatch, future):
    servicer, address = counting_server
    monkeypatch.setenv("EMBER_TESTING_RPC_FAILURE", "NodeManager.GetStatus=1:0:100")
    stub = _stub(address)
    seen = threading.Event()
    with pytest.raises(grpc.RpcError) as info:
        if future:
            fut = stub.GetStatus.future(pb.Empty(), timeout=5)
            fut.add_done_callback(lambda f: seen.set())
            fut.result()
        else:
            stub.GetStatus(pb.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1
    assert seen.is_set() or not future


def test_retry_helper_rides_out_dropped_calls(counting_server, monkeypatch):
    _, address = counting_server
    monkeypatch.setenv("EMBER_TESTING_RPC_FAILURE", "NodeManager.GetStatus=3:50:50")
    stub = _stub(address)
    for _ in range(5):
        assert rpc.call_with_retry(stub.GetStatus, pb.Empty(), timeout=5).num_workers == 7


def test_without_the_variable_nothing_is_intercepted(counting_server, monkeypatch):
    _, address = counting_server
    monkeypatch.delenv("EMBER_TESTING_RPC_FAILURE", raising=False)
    chan = rpc.channel(address)
    assert rpc_chaos.wrap(chan) is chan
    monkeypatch.setenv("EMBER_TESTING_RPC_FAILURE", "NodeManager.GetStatus=1:100:0")
    assert rpc_chaos.wrap(chan) is not chan


# ---------------------------------------------------------------- whole workloads
@pytest.fixture
def chaos(monkeypatch):
    """Start a cluster with the given failures injected in every one of its processes."""
    started: list = []

    def start(spec: str, nodes: int = 1):
        from ember.cluster_utils import Cluster
        monkeypatch.setenv("EMBER_TESTING_RPC_FAILURE", spec)
        rpc_chaos.reset()
        if ember.is_initialized():
            ember.shutdown()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
        started.append(cluster)
        others = [cluster.add_node(num_cpus=1, resources={"far": 1}) for _ in range(nodes - 1)]
        cluster.wait_for_nodes()
        cluster.connect()
        return cluster, others

    yield start
    ember.shutdown()
    for cluster in started:
        cluster.shutdown()
    rpc_chaos.reset()


def _all_free() -> bool:
    available, total = ember.available_resources(), ember.cluster_resources()
    return all(abs(available.get(k, 0.0) - v) < 1e-6 for k, v in total.items())


def _no_leaked_leases(timeout: float = 30) -> None:
    wait_for_condition(
        _all_free,
        timeout=timeout,
        message=lambda: f"leases leaked: available {ember.available_resources()} of "
                        f"{ember.cluster_resources()}")


@ember.remote
def square(x):
    return x * x


@ember.remote
def other_square(x):
    return x * x


@pytest.mark.parametrize("where", ["request", "reply"])
def test_a_lost_lease_request_neither_fails_nor_leaks(chaos, where):
    # Every process drops its first lease request (before sending, or its reply
    # after the node manager granted it): the retry with the same id must find
    # that lease rather than take a second one.
    chaos("NodeManager.RequestWorkerLease=1:" + ("100:0" if where == "request" else "0:100"))
    assert ember.get(square.remote(3), timeout=60) == 9
    assert ember.get(other_square.options(num_cpus=2).remote(4), timeout=60) == 16
    _no_leaked_leases()


def test_a_lost_lease_return_is_sent_again(chaos):
    chaos("NodeManager.ReturnWorkerLease=2:100:0")
    assert ember.get(square.remote(5), timeout=60) == 25
    _no_leaked_leases()
    assert ember.get(other_square.options(num_cpus=2).remote(6), timeout=60) == 36
    _no_leaked_leases()


def test_a_workload_comes_out_exact_under_dropped_rpcs(chaos):
    # At most a few failures per method and process, fewer than each caller's
    # retries, so every call must eventually succeed and nothing may run twice.
    chaos(
        "NodeManager.RequestWorkerLease=4:25:25,NodeManager.ReturnWorkerLease=4:25:25,"
        "NodeManager.PullObject=3:25:25,CoreWorker.GetObject=2:25:25,"
        "ControlService.CreateActor=2:25:25,ControlService.GetActor=3:25:25", nodes=2)

    @ember.remote(max_restarts=0, max_task_retries=0)
    class AtMostOnce:
        def __init__(self):
            self.seen: list[int] = []

        def add(self, i):
            self.seen.append(i)
            return len(self.seen)

        def calls(self):
            return list(self.seen)

    @ember.remote(resources={"far": 1})
    def total_far(arr):
        return int(arr.sum())                  # pulled from the head node

    @ember.remote
    def borrow(boxed):
        return ember.get(boxed[0]) + 1         # GetObject from the driver

    import numpy as np
    big = ember.put(np.arange(300_000, dtype=np.int64))       # shared memory, on the head
    small = ember.put(41)
    counter = AtMostOnce.options(name="once").remote()
    adds = [counter.add.remote(i) for i in range(20)]
    refs = [square.remote(i) for i in range(30)]
    far_refs = [total_far.remote(big) for _ in range(3)]
    assert ember.get(refs, timeout=120) == [i * i for i in range(30)]
    assert ember.get(far_refs, timeout=120) == [int(np.arange(300_000).sum())] * 3
    assert ember.get(borrow.remote([small]), timeout=60) == 42
    assert ember.get(adds, timeout=120) == list(range(1, 21))
    again = ember.get_actor("once")
    assert ember.get(again.calls.remote(), timeout=60) == list(range(20))   # each ran once
    del counter, again
    _no_leaked_leases(timeout=60)
    injected = rpc_chaos.policy_from_env().failures()       # in this (driver) process alone
    print("failures injected in the driver:", injected)
    assert sum(injected.values()) > 0

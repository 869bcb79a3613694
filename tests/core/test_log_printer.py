"""log_printer: worker output on the driver, prefixed by task or actor and pid, folded
across processes, and gathered from every node."""
from __future__ import annotations

import os

import pytest

from ember.testing import wait_for_condition

LINE = "warming up the model cache"


@pytest.fixture
def driver(monkeypatch, request):
    import ember
    if ember.is_initialized():
        ember.shutdown()
    for key, value in request.param.items():
        monkeypatch.setenv(key, value)
    ember.init(num_cpus=2)
    yield ember
    ember.shutdown()


def _two_talkers(ember):
    @ember.remote
    class Talker:
        def say(self, text):
            print(text)
            return os.getpid()

    a, b = Talker.remote(), Talker.remote()
    ember.get([a.say.remote("first actor up"), b.say.remote("second actor up")], timeout=60)
    return ember.get([a.say.remote(LINE), b.say.remote(LINE)], timeout=60)


def _collect(capfd, acc, until, timeout=30):
    def check():
        out, err = capfd.readouterr()
        acc.append(out + err)
        return until("".join(acc))
    wait_for_condition(check, timeout=timeout)
    return "".join(acc)


@pytest.mark.parametrize("driver", [{"EMBER_DEDUP_LOGS_AGG_WINDOW_S": "3"}], indirect=True)
def test_same_line_from_two_actors_printed_once_then_counted(driver, capfd):
    pid_a, pid_b = _two_talkers(driver)
    assert pid_a != pid_b
    acc: list[str] = []
    text = _collect(capfd, acc, lambda t: f"{LINE} [repeated 1x across cluster]" in t)
    lines = [ln for ln in text.splitlines() if LINE in ln]
    first, folded = lines[0], lines[-1]
    # The first copy at once, prefixed with the actor's class and pid; the other
    # one only as a count, with the prefix of the process it came from.
    assert first in (f"(Talker pid={pid_a}) {LINE}", f"(Talker pid={pid_b}) {LINE}")
    other = pid_b if str(pid_a) in first else pid_a
    assert folded == f"(Talker pid={other}) {LINE} [repeated 1x across cluster]"
    assert len(lines) == 2
    assert "EMBER_DEDUP_LOGS=0" in text          # the one-time tip


@pytest.mark.parametrize("driver", [{"EMBER_DEDUP_LOGS": "0"}], indirect=True)
def test_folding_off_prints_every_line(driver, capfd):
    pid_a, pid_b = _two_talkers(driver)
    acc: list[str] = []
    text = _collect(capfd, acc, lambda t: f"(Talker pid={pid_a}) {LINE}" in t
                    and f"(Talker pid={pid_b}) {LINE}" in t)
    assert "repeated" not in text


def test_output_of_a_worker_on_another_node_reaches_the_driver(capfd):
    import ember
    from ember.cluster_utils import Cluster
    from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    if ember.is_initialized():
        ember.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        other = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=30)
        cluster.connect()

        @ember.remote
        def where():
            print("hello from the second node")
            return os.getpid()

        pid = ember.get(where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            other.node_id, soft=False)).remote(), timeout=60)
        acc: list[str] = []
        _collect(capfd, acc, lambda t: f"(where pid={pid}) hello from the second node" in t)
    finally:
        cluster.shutdown()
        if ember.is_initialized():
            ember.shutdown()


def test_start_returns_only_once_the_node_has_us_subscribed():
    """A node that takes a while to add the subscriber: start() must wait for it,
    or output printed meanwhile (a driver's first task) is read with nobody listening."""
    import threading
    import time
    from types import SimpleNamespace

    from ember._private import rpc
    from ember._private.log_printer import LogPrinter
    from ember._private.protos import ember_pb2 as pb
    from ember._private.protos import ember_pb2_grpc as pbg

    subscribed, done = threading.Event(), threading.Event()

    class SlowNode(pbg.NodeManagerServicer):
        def SubscribeLogs(self, request, context):
            time.sleep(0.5)
            subscribed.set()
            yield pb.LogBatch()
            yield pb.LogBatch(lines=[pb.LogLine(pid=7, task_name="t", line="hello")])
            done.wait(30)

    token = rpc.new_token()
    server = rpc.make_server(token, max_workers=4)
    pbg.add_NodeManagerServicer_to_server(SlowNode(), server)
    port = rpc.bind(server, "127.0.0.1", 0)
    server.start()
    gcs = SimpleNamespace(GetNodes=lambda *a, **k: pb.NodeList())
    core = SimpleNamespace(node_id="n" * 28, node_manager_address=f"127.0.0.1:{port}",
                           token=token, gcs=gcs)
    printer = LogPrinter(core)
    try:
        printer.start()
        assert subscribed.is_set()
    finally:
        done.set()
        printer.stop()
        server.stop(0)

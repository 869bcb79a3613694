"""Chaos (issue #5, slow suite): a mixed workload on a 3-node ``Cluster`` while a killer
SIGKILLs a random worker every second and a whole non-head node every 20 s (adding a
fresh one back). Every result must be exact, and once the work is done the cluster's
available resources must equal its total.

    pytest -m slow tests/core/test_chaos.py      # EMBER_CHAOS_SECONDS=180 by default
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
import pytest

import ember
from ember.cluster_utils import Cluster
from ember.testing import node_worker_pids, wait_for_condition

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("EMBER_CHAOS_SECONDS", "180"))
BIG = 2_500_000  # int64s: 20 MB, so it lives in shared memory and crosses nodes
NODE_ARGS = {"num_cpus": 2, "resources": {"worker_node": 10}}


@ember.remote(max_retries=-1)
def leaf(x: int) -> int:
    return x * x


@ember.remote(max_retries=-1)
def nested(i: int) -> int:
    return sum(ember.get([leaf.remote(i * 10 + k) for k in range(4)]))


@ember.remote(max_retries=-1, scheduling_strategy="SPREAD")
def make_big(seed: int) -> np.ndarray:
    return np.full(BIG, seed, dtype=np.int64)


@ember.remote(max_retries=-1, scheduling_strategy="SPREAD")
def total(arr: np.ndarray) -> int:
    return int(arr.sum())


@ember.remote(max_restarts=-1, max_task_retries=-1)
class Squarer:
    def square(self, x: int) -> int:
        return x * x


class Killer(threading.Thread):
    """SIGKILLs a random worker every second and replaces a non-head node every 20 s."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True, name="chaos-killer")
        self.cluster = cluster
        self.stop = threading.Event()
        self.workers_killed = 0
        self.nodes_replaced = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(0)
        next_node = time.monotonic() + 20
        try:
            while not self.stop.wait(1.0):
                pids = [pid for node in self.cluster.list_all_nodes()
                        for pid in node_worker_pids(node)]
                if pids:
                    try:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        self.workers_killed += 1
                    except ProcessLookupError:
                        pass
                if time.monotonic() >= next_node and self.cluster.worker_nodes:
                    victim = rng.choice(sorted(self.cluster.worker_nodes,
                                               key=lambda n: n.node_id))
                    self.cluster.remove_node(victim, allow_graceful=False)
                    self.cluster.add_node(**NODE_ARGS)
                    self.nodes_replaced += 1
                    next_node = time.monotonic() + 20
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


@pytest.fixture
def chaos_cluster(monkeypatch):
    if ember.is_initialized():
        ember.shutdown()
    for key in ("EMBER_CLUSTER_TOKEN", "EMBER_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    # Declare SIGKILLed nodes dead quickly, so their work moves on within the run.
    monkeypatch.setenv("EMBER_NODE_TIMEOUT_S", "3")
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 1})
    try:
        for _ in range(2):
            cluster.add_node(**NODE_ARGS)
        cluster.wait_for_nodes(timeout=60)
        cluster.connect()
        yield cluster
    finally:
        if ember.is_initialized():
            ember.shutdown()
        cluster.shutdown()


def _round(r: int, squarers: list) -> None:
    ints = list(range(r * 8, r * 8 + 8))
    nested_refs = [nested.remote(i) for i in ints]
    seeds = [r * 2 + 1, r * 2 + 2]
    big_refs = [make_big.remote(s) for s in seeds]
    total_refs = [total.remote(b) for b in big_refs]
    calls = [(x, squarers[x % len(squarers)].square.remote(x)) for x in range(r, r + 10)]
    assert ember.get(nested_refs, timeout=300) == [
        sum((i * 10 + k) ** 2 for k in range(4)) for i in ints]
    assert ember.get(total_refs, timeout=300) == [s * BIG for s in seeds]
    # The big objects themselves, read by the driver: rebuilt if their node died.
    for seed, arr in zip(seeds, ember.get(big_refs, timeout=300)):
        assert arr.shape == (BIG,) and int(arr[0]) == int(arr[-1]) == seed
    assert ember.get([ref for _, ref in calls], timeout=300) == [x * x for x, _ in calls]


@pytest.mark.timeout(int(SECONDS) + 600)
def test_workload_survives_killed_workers_and_nodes(chaos_cluster):
    squarers = [Squarer.options(resources={"worker_node": 1}).remote() for _ in range(2)]
    killer = Killer(chaos_cluster)
    killer.start()
    rounds = 0
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline:
            _round(rounds, squarers)
            rounds += 1
            assert killer.error is None, killer.error
    finally:
        killer.stop.set()
        killer.join(60)
    assert killer.error is None, killer.error
    print(f"chaos: {rounds} rounds, {killer.workers_killed} workers killed, "
          f"{killer.nodes_replaced} nodes replaced in {SECONDS:.0f} s")
    assert rounds > 0 and killer.workers_killed > 0
    assert killer.nodes_replaced >= int(SECONDS // 20) - 1
    _round(rounds, squarers)  # the cluster still works once the killing stops
    for s in squarers:
        ember.kill(s)
    chaos_cluster.wait_for_nodes(timeout=60)

    def settled() -> bool:
        return ember.available_resources() == ember.cluster_resources()

    try:
        wait_for_condition(settled, timeout=60)
    except RuntimeError:
        pytest.fail(f"resources leaked: available {ember.available_resources()} != "
                    f"total {ember.cluster_resources()}")

"""node_manager: pieces of the node manager that need no processes."""
from __future__ import annotations

import threading
from types import SimpleNamespace

from ember._private.node_manager import NodeManager
from ember.testing import wait_for_condition


def _fake_node(ready: threading.Event) -> SimpleNamespace:
    node = SimpleNamespace(_lock=threading.RLock(), _stopping=threading.Event(),
                           starting=[], started=[])
    node.scheduler = SimpleNamespace(worker_starting=node.starting.append)
    node._forks = SimpleNamespace(wait_ready=lambda: ready.wait(10))
    node._start_worker = node.started.append
    node._start_prestarted = lambda n: NodeManager._start_prestarted(node, n)
    return node


def test_prestarting_does_not_wait_for_the_fork_server():
    # The node registers (what a starting cluster waits for) while the fork server
    # still imports; the workers count as starting at once, so a lease arriving
    # meanwhile starts no extra ones.
    ready = threading.Event()
    node = _fake_node(ready)
    NodeManager.prestart_workers(node, 2)
    assert node.starting == ["", ""] and node.started == []
    ready.set()
    wait_for_condition(lambda: node.started == ["", ""], timeout=10)


def test_no_prestarted_worker_starts_once_the_node_is_stopping():
    ready = threading.Event()
    node = _fake_node(ready)
    NodeManager.prestart_workers(node, 2)
    node._stopping.set()
    ready.set()
    threads = [t for t in threading.enumerate() if t.name == "ember-prestart"]
    for t in threads:
        t.join(10)
    assert node.started == []


def test_a_prestart_that_fails_stops_counting_as_starting():
    # Else leases would wait for a worker that never comes.
    ready = threading.Event()
    ready.set()
    node = _fake_node(ready)
    failed = []
    node.scheduler.worker_start_failed = lambda env: failed.append(env) or []
    node._apply = lambda actions: None

    def broken(env_hash):
        raise OSError("no more processes")
    node._start_worker = broken
    NodeManager.prestart_workers(node, 2)
    wait_for_condition(lambda: failed == ["", ""], timeout=10)

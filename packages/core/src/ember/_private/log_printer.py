"""The driver's side of worker output: subscribe to every node, prefix, fold, print.

Each node manager streams its workers' lines (SubscribeLogs). The driver holds
one stream per live node (new nodes are picked up every few seconds), prefixes
each line with the task or actor that printed it and its pid, as Ray does:
``(train pid=4242) epoch 1``, adding ``ip=`` for workers on another machine,
and folds identical lines from many workers into one (log_dedup.py).
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any

from .log_dedup import TIP, DedupConfig, Emit, LogDeduplicator, LogRecord, format_emit

NODES_REFRESH_SECONDS = 2.0
# How long init waits for the local node to confirm the subscription: output of
# the first task is read by the node as soon as it is printed.
SUBSCRIBED_WAIT_S = 5.0


class LogPrinter:
    """Prints worker output on this driver until ``stop``.

    >>> printer = LogPrinter(core); printer.start()   # what ember.init(log_to_driver=True) does
    """

    def __init__(self, core: Any, config: DedupConfig | None = None) -> None:
        self.core = core
        self.config = config if config is not None else DedupConfig.from_env()
        self._dedup = LogDeduplicator.from_config(self.config) if self.config.enabled else None
        self._queue: queue.Queue = queue.Queue()
        self._calls: dict[str, Any] = {}      # node id -> its SubscribeLogs call
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tip_shown = False
        self._local_ip = ""

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        # The local node first and synchronously, so output of the very first
        # task is not missed while the node list is fetched.
        ip, _, _ = self.core.node_manager_address.rpartition(":")
        self._local_ip = ip
        self._subscribe(self.core.node_id, self.core.node_manager_address, "",
                        wait_s=SUBSCRIBED_WAIT_S)
        self._subscribe_new_nodes()
        self._spawn(self._print_loop, "ember-logs")
        self._spawn(self._nodes_loop, "ember-logs-nodes")

    def stop(self) -> None:
        """Stop reading, then print what is still buffered (folded counts included)."""
        # Let the node managers send the last lines of output first.
        time.sleep(0.06)
        self._stopping.set()
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        self._queue.put(None)
        for t in self._threads:
            t.join(timeout=1)

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, daemon=True, name=name)
        t.start()
        self._threads.append(t)

    # ------------------------------------------------------------ reading
    def _subscribe(self, node_id: str, address: str, ip: str, wait_s: float = 0.0) -> None:
        """Follow one node's worker output; ``wait_s``: wait up to that long until the
        node has us subscribed (its empty first batch)."""
        from . import rpc
        from .protos import ember_pb2 as pb
        from .protos import ember_pb2_grpc as pbg
        with self._lock:
            if node_id in self._calls or self._stopping.is_set():
                return
            stub = rpc.Stub(rpc.channel(address), pbg.NodeManagerStub, self.core.token)
            call = stub.SubscribeLogs.raw(pb.Empty(), metadata=stub._md)  # type: ignore[attr-defined]
            self._calls[node_id] = call
        subscribed = threading.Event()

        def read() -> None:
            try:
                for batch in call:
                    subscribed.set()
                    if batch.lines:
                        self._queue.put([LogRecord(ln.line, ln.task_name, ln.pid, ip,
                                                   ln.is_err) for ln in batch.lines])
            except Exception:  # noqa: BLE001 - cancelled at shutdown, or the node died
                pass
            subscribed.set()
            with self._lock:
                if self._calls.get(node_id) is call and not self._stopping.is_set():
                    del self._calls[node_id]

        self._spawn(read, f"ember-logs-{node_id[:8]}")
        if wait_s:
            subscribed.wait(wait_s)

    def _nodes_loop(self) -> None:
        while not self._stopping.wait(NODES_REFRESH_SECONDS):
            self._subscribe_new_nodes()

    def _subscribe_new_nodes(self) -> None:
        from .protos import ember_pb2 as pb
        try:
            nodes = self.core.gcs.GetNodes(pb.Empty(), timeout=5).nodes
        except Exception:  # noqa: BLE001 - control service restarting: try again later
            return
        for n in nodes:
            if n.alive and n.node_id not in self._calls:
                ip = "" if n.ip == self._local_ip else n.ip
                try:
                    self._subscribe(n.node_id, f"{n.ip}:{n.port}", ip)
                except Exception:  # noqa: BLE001 - node going away
                    pass

    # ------------------------------------------------------------ printing
    def _print_loop(self) -> None:
        while True:
            timeout = 0.5
            if self._dedup is not None:
                deadline = self._dedup.next_deadline()
                if deadline is not None:
                    timeout = max(0.01, min(timeout, deadline - time.monotonic()))
            try:
                batch = self._queue.get(timeout=timeout)
            except queue.Empty:
                batch = []
            now = time.monotonic()
            if batch is None:
                self._drain_rest(now)
                return
            emits: list[Emit] = []
            for record in batch:
                emits.extend(self._dedup.feed(record, now) if self._dedup is not None
                             else [Emit(record)])
            if self._dedup is not None:
                emits.extend(self._dedup.flush(now))
            self._print(emits)

    def _drain_rest(self, now: float) -> None:
        emits: list[Emit] = []
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            for record in batch or []:
                emits.extend(self._dedup.feed(record, now) if self._dedup is not None
                             else [Emit(record)])
        if self._dedup is not None:
            emits.extend(self._dedup.flush(now, force=True))
        self._print(emits)

    def _print(self, emits: list[Emit]) -> None:
        for emit in emits:
            stream = sys.stderr if emit.record.is_err else sys.stdout
            try:
                print(format_emit(emit), file=stream, flush=True)
                if emit.repeated and not self._tip_shown:
                    self._tip_shown = True
                    print(TIP, file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass    # the driver's stdout is closed (exiting)

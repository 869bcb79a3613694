"""A node's Prometheus endpoint: its processes' metrics plus system metrics.

Runs in the node manager. ``MetricsService.ReportMetrics`` takes each local
process's report (metrics_registry.py) into a ``MetricsStore``; the HTTP
server answers ``GET /metrics`` with the Prometheus text format, built by
``prometheus_client`` at scrape time from the store and a snapshot of the node
(tasks, workers, resources, object store, memory). It listens on the node's
address (127.0.0.1 by default) on ``--metrics-export-port`` (0: any free port;
``ember.nodes()`` lists it as ``MetricsExportPort``) and lets in only requests
that carry the cluster token (``Authorization: Bearer <token>``, http_auth.py).

A Prometheus scrape config::

    - job_name: ember
      authorization: {credentials_file: /tmp/ember/session_latest/token}
      static_configs: [{targets: ["127.0.0.1:<MetricsExportPort>"]}]

User metrics are exported with the ``ember_`` prefix (``Counter("requests")``
becomes ``ember_requests_total``), as Ray prefixes them with ``ray_``.
"""
from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from .metrics_registry import COUNTER, GAUGE, HISTOGRAM
from .metrics_store import FamilyView, MetricsStore, Sample
from .protos import ember_pb2 as pb
from .protos import ember_pb2_grpc as pbg

logger = logging.getLogger("ember")

USER_PREFIX = "ember_"


@dataclass
class NodeSnapshot:
    """What the node manager knows right now (node_manager.metrics_snapshot)."""

    resources_total: dict[str, float] = field(default_factory=dict)
    resources_available: dict[str, float] = field(default_factory=dict)
    workers: dict[str, float] = field(default_factory=dict)       # by state
    store_used: int = 0
    store_capacity: int = 0
    store_num_objects: int = 0
    spilled_bytes: int = 0          # objects with a copy on disk now (0 without spilling)
    total_spilled_bytes: int = 0
    total_restored_bytes: int = 0


def system_families(snap: NodeSnapshot, task_states: dict[str, float],
                    mem_used: int, mem_total: int, cpu_count: int) -> list[FamilyView]:
    """The node's own metrics, Ray's names with ``ember_``."""
    def gauge(name: str, doc: str, keys: tuple[str, ...],
              samples: Sequence[tuple[tuple[str, ...], float]]) -> FamilyView:
        return FamilyView(name, GAUGE, doc, keys, (),
                          [Sample(tags, float(v)) for tags, v in samples])

    def counter(name: str, doc: str, value: float) -> FamilyView:
        return FamilyView(name, COUNTER, doc, (), (), [Sample((), float(value))])

    resources: list[tuple[tuple[str, ...], float]] = []
    for name in sorted(snap.resources_total):
        total = snap.resources_total[name]
        free = snap.resources_available.get(name, 0.0)
        resources.append(((name, "AVAILABLE"), free))
        resources.append(((name, "USED"), max(0.0, total - free)))
    out = [
        gauge("ember_tasks", "Tasks on this node by state (an owner counts the tasks it "
              "submitted, the worker running one counts it RUNNING; FINISHED and FAILED are "
              "totals).", ("State",), [((s,), n) for s, n in sorted(task_states.items())]),
        gauge("ember_workers", "Worker processes on this node by state.", ("State",),
              [((s,), n) for s, n in sorted(snap.workers.items())]),
        gauge("ember_resources", "Logical resources of this node, available or in use.",
              ("Name", "State"), resources),
        gauge("ember_object_store_memory", "Bytes of objects held by this node, in shared "
              "memory (MMAP_SHM) or spilled to disk (SPILLED).", ("Location",),
              [(("MMAP_SHM",), snap.store_used), (("SPILLED",), snap.spilled_bytes)]),
        gauge("ember_object_store_num_local_objects", "Objects in this node's shared memory.",
              (), [((), snap.store_num_objects)]),
        counter("ember_object_store_spilled_bytes", "Bytes written to disk by spilling.",
                snap.total_spilled_bytes),
        counter("ember_object_store_restored_bytes", "Bytes read back from spilled objects.",
                snap.total_restored_bytes),
        gauge("ember_node_cpu_count", "CPUs of this machine.", (), [((), cpu_count)]),
        gauge("ember_node_mem_used", "Memory in use on this machine (bytes).", (),
              [((), mem_used)]),
        gauge("ember_node_mem_total", "Memory of this machine (bytes).", (), [((), mem_total)]),
    ]
    if snap.store_capacity:
        out.append(gauge("ember_object_store_available_memory",
                         "Free bytes in this node's object store.", (),
                         [((), max(0, snap.store_capacity - snap.store_used))]))
    return out


def to_prometheus(view: FamilyView, name: str) -> Any:
    """One family as a prometheus_client metric family."""
    from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                        HistogramMetricFamily)
    doc = view.description or name
    labels = list(view.tag_keys)
    if view.kind == COUNTER:
        counter = CounterMetricFamily(name, doc, labels=labels)
        for s in view.samples:
            counter.add_metric(list(s.tag_values), s.value)
        return counter
    if view.kind == GAUGE:
        gauge = GaugeMetricFamily(name, doc, labels=labels)
        for s in view.samples:
            gauge.add_metric(list(s.tag_values), s.value)
        return gauge
    histogram = HistogramMetricFamily(name, doc, labels=labels)
    for s in view.samples:
        running, buckets = 0.0, []
        bounds = [_le(b) for b in view.boundaries] + ["+Inf"]
        for bound, n in zip(bounds, s.buckets):
            running += n
            buckets.append((bound, running))
        histogram.add_metric(list(s.tag_values), buckets, s.sum)
    return histogram


def _le(bound: float) -> str:
    return repr(float(bound))


class MetricsService(pbg.MetricsServiceServicer):
    """Takes reports from this node's processes; renders the exposition on scrape."""

    def __init__(self, store: MetricsStore, snapshot: Callable[[], NodeSnapshot]) -> None:
        self.store = store
        self.snapshot = snapshot
        self.lock = threading.Lock()
        self._warned: set[str] = set()

    def ReportMetrics(self, request: pb.MetricsReport, context: Any) -> pb.Empty:
        with self.lock:
            self.store.report(request, time.monotonic())
            new = self.store.conflicts - self._warned
            self._warned |= new
        for name in sorted(new):
            logger.warning("metric %r is created with different kinds, tag_keys or boundaries "
                           "in different processes; only the first definition is exported",
                           name)
        return pb.Empty()

    def process_gone(self, process_id: str) -> None:
        with self.lock:
            self.store.process_gone(process_id)

    def families(self) -> list[Any]:
        """Every family this node exports (prometheus_client objects)."""
        from .memory_monitor import read_usage
        snap = self.snapshot()
        with self.lock:
            self.store.expire(time.monotonic())
            user = self.store.families()
            tasks = self.store.task_states()
        try:
            usage = read_usage()
            mem_used, mem_total = usage.used, usage.total
        except Exception:  # noqa: BLE001 - a machine without /proc: report zeros
            mem_used = mem_total = 0
        system = system_families(snap, tasks, mem_used, mem_total, os.cpu_count() or 0)
        out = [to_prometheus(v, v.name) for v in system]
        taken = {v.name for v in system}
        for view in user:
            name = USER_PREFIX + view.name
            if name in taken:
                continue        # a user metric may not shadow a system one
            out.append(to_prometheus(view, name))
        return out

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        service = self

        class _Collector:
            def collect(self) -> Iterator[Any]:
                yield from service.families()

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())
        return generate_latest(registry)


def listen(ip: str, port: int = 0) -> socket.socket:
    """The endpoint's listening socket, made apart from its HTTP server: a node
    manager registers the port at once, and loads ``http.server`` (~15 ms of CPU)
    only when the first scrape arrives (:func:`serve_when_asked`), not while a
    cluster is starting. Scrapes meanwhile wait in the backlog.

    >>> sock = listen("127.0.0.1", 0)
    >>> sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as HTTPServer does
        sock.bind((ip, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise RuntimeError(f"the metrics endpoint cannot listen on {ip}:{port} ({e}): pick "
                           "another --metrics-export-port, or 0 for any free port") from None
    return sock


class MetricsExporter:
    """The HTTP endpoint: ``GET /metrics`` with the cluster token, on ``sock`` (from
    :func:`listen`) or else on a new socket at ``ip:port``."""

    def __init__(self, service: MetricsService, token: str, ip: str = "127.0.0.1",
                 port: int = 0, sock: socket.socket | None = None) -> None:
        from http.server import ThreadingHTTPServer
        self.service = service
        self.token = token
        if sock is None:
            sock = listen(ip, port)
        bound = sock.getsockname()
        self.server = ThreadingHTTPServer(bound[:2], _handler_for(self),
                                          bind_and_activate=False)
        self.server.socket.close()          # the one it made; it serves ``sock``
        self.server.socket = sock
        self.server.server_address = bound
        self.server.server_name, self.server.server_port = bound[0], bound[1]
        self.server.daemon_threads = True
        self.port = bound[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="ember-metrics-http")

    def start(self) -> "MetricsExporter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_when_asked(service: MetricsService, token: str, sock: socket.socket
                     ) -> threading.Thread:
    """Serve ``sock`` (from :func:`listen`) once a first connection is waiting on it:
    a node that is never scraped never loads the HTTP server.

    >>> sock = listen("127.0.0.1", 0)
    >>> thread = serve_when_asked(service, "token", sock)   # doctest: +SKIP
    """
    def wait_then_serve() -> None:
        try:
            select.select([sock], [], [])
        except (OSError, ValueError):       # closed: the node is going away
            return
        MetricsExporter(service, token, sock=sock).server.serve_forever()

    thread = threading.Thread(target=wait_then_serve, daemon=True, name="ember-metrics-http")
    thread.start()
    return thread


def _handler_for(exporter: MetricsExporter) -> type:
    from http.server import BaseHTTPRequestHandler

    from . import http_auth

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, _, query = self.path.partition("?")
            decision = http_auth.decide(exporter.token, "GET", path, query.encode("latin-1"),
                                        list(self.headers.items()))
            if decision.redirect is not None:
                self.send_response(303)
                self.send_header("Location", decision.redirect)
                self.send_header("Set-Cookie",
                                 http_auth.cookie_header(exporter.token, False).decode())
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not decision.allow:
                body = (b"401 Unauthorized: this Ember metrics endpoint needs the cluster "
                        b"token: send 'Authorization: Bearer <token>' (the file `token` in "
                        b"the session directory, or EMBER_CLUSTER_TOKEN).\n")
                self._reply(401, body, "text/plain; charset=utf-8",
                            {"WWW-Authenticate": 'Bearer realm="ember"'})
                return
            if path.rstrip("/") not in ("", "/metrics"):
                self._reply(404, b"not found: the metrics are at /metrics\n",
                            "text/plain; charset=utf-8")
                return
            try:
                body = exporter.service.render()
            except Exception as e:  # noqa: BLE001 - answer the scrape, log the cause
                logger.exception("rendering metrics failed")
                self._reply(500, f"rendering metrics failed: {e}\n".encode(), "text/plain")
                return
            from prometheus_client import CONTENT_TYPE_LATEST
            self._reply(200, body, CONTENT_TYPE_LATEST)

        def _reply(self, code: int, body: bytes, content_type: str,
                   headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass    # scrapes every few seconds would flood the node manager's log

    return Handler

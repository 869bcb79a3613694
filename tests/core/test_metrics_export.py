"""metrics_export: the node's families and its token-guarded HTTP endpoint (no cluster)."""
from __future__ import annotations

import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ember._private.metrics_export import (MetricsExporter, MetricsService, NodeSnapshot,
                                           system_families)
from ember._private.metrics_registry import COUNTER, GAUGE
from ember._private.metrics_store import MetricsStore

TOKEN = "s3cret-token"


def snapshot() -> NodeSnapshot:
    return NodeSnapshot(resources_total={"CPU": 4.0}, resources_available={"CPU": 1.0},
                        workers={"IDLE": 2.0, "LEASED": 3.0}, store_used=100,
                        store_capacity=1000, store_num_objects=2, spilled_bytes=50,
                        total_spilled_bytes=70, total_restored_bytes=20)


def test_system_families():
    fams = {f.name: f for f in system_families(snapshot(), {"RUNNING": 3.0}, 10, 20, 8)}
    res = {s.tag_values: s.value for s in fams["ember_resources"].samples}
    assert res == {("CPU", "AVAILABLE"): 1.0, ("CPU", "USED"): 3.0}
    mem = {s.tag_values: s.value for s in fams["ember_object_store_memory"].samples}
    assert mem == {("MMAP_SHM",): 100.0, ("SPILLED",): 50.0}
    assert fams["ember_object_store_available_memory"].samples[0].value == 900.0
    assert fams["ember_object_store_spilled_bytes"].kind == COUNTER
    assert fams["ember_tasks"].samples[0].tag_values == ("RUNNING",)
    assert fams["ember_workers"].kind == GAUGE


@pytest.fixture
def endpoint():
    service = MetricsService(MetricsStore(), snapshot)
    service.ReportMetrics(SimpleNamespace(
        process_id="w1", final=False, task_states={"FINISHED": 2.0},
        points=[SimpleNamespace(name="tasks", kind=COUNTER, description="clash", tag_keys=[],
                                tag_values=[], value=1.0, updated=0.0, boundaries=[],
                                bucket_counts=[], sum=0.0),
                SimpleNamespace(name="hits", kind=COUNTER, description="Hits.",
                                tag_keys=["k"], tag_values=["v"], value=4.0, updated=0.0,
                                boundaries=[], bucket_counts=[], sum=0.0)]), None)
    exporter = MetricsExporter(service, TOKEN, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{exporter.port}/metrics"
    exporter.stop()


def get(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def test_scrape_with_token(endpoint):
    status, ctype, text = get(endpoint, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and ctype.startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    [hits] = fams["ember_hits"].samples
    assert (hits.name, hits.labels, hits.value) == ("ember_hits_total", {"k": "v"}, 4.0)
    # A user metric named like a system one does not shadow it.
    assert {s.labels["State"]: s.value for s in fams["ember_tasks"].samples} == {"FINISHED": 2.0}


def test_no_or_wrong_token_is_401(endpoint):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(endpoint, headers)
        assert e.value.code == 401
        assert e.value.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_port_in_use_is_a_clear_error(endpoint):
    port = int(endpoint.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(RuntimeError, match="metrics-export-port"):
        MetricsExporter(MetricsService(MetricsStore(), snapshot), TOKEN, "127.0.0.1", port)


def test_a_scrape_before_the_server_starts_waits_in_the_backlog():
    # The node registers the port at once and starts the HTTP server once it is
    # ready (node_manager_main.py): a scrape in between is answered, not refused.
    import threading

    from ember._private.metrics_export import listen
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    got = []
    scrape = threading.Thread(target=lambda: got.append(
        get(f"http://127.0.0.1:{port}/metrics", {"Authorization": f"Bearer {TOKEN}"})))
    scrape.start()
    scrape.join(0.3)
    assert scrape.is_alive() and not got          # waiting: nobody serves yet
    exporter = MetricsExporter(MetricsService(MetricsStore(), snapshot), TOKEN,
                               sock=sock).start()
    try:
        scrape.join(10)
        assert got and got[0][0] == 200 and exporter.port == port
    finally:
        exporter.stop()


_NEVER_SCRAPED = r"""
import sys, time, urllib.request
from ember._private.metrics_export import MetricsService, listen, serve_when_asked
from ember._private.metrics_store import MetricsStore
from ember._private.metrics_export import NodeSnapshot
snap = lambda: NodeSnapshot(resources_total={}, resources_available={}, workers={},
                            store_used=0, store_capacity=1, store_num_objects=0,
                            spilled_bytes=0, total_spilled_bytes=0, total_restored_bytes=0)
sock = listen("127.0.0.1", 0)
thread = serve_when_asked(MetricsService(MetricsStore(), snap), "tok", sock)
time.sleep(0.3)
print("BEFORE", "http.server" in sys.modules, flush=True)
req = urllib.request.Request(f"http://127.0.0.1:{sock.getsockname()[1]}/metrics",
                             headers={"Authorization": "Bearer tok"})
with urllib.request.urlopen(req, timeout=10) as r:
    print("SCRAPE", r.status, "ember_resources" in r.read().decode(), flush=True)
print("AFTER", "http.server" in sys.modules, flush=True)
"""


def test_the_http_server_loads_only_when_a_first_scrape_arrives():
    # A starting node does not spend CPU on http.server; the first scrape is answered.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _NEVER_SCRAPED], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split("\n")[:3] == ["BEFORE False", "SCRAPE 200 True", "AFTER True"], \
        out.stdout + out.stderr

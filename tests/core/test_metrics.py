"""ember.util.metrics: API validation (no cluster), then a cluster whose task and actor
record metrics that its node's Prometheus endpoint serves (with the token only)."""
from __future__ import annotations

import os
import urllib.error
import urllib.request

import pytest

from ember.util.metrics import Counter, Gauge, Histogram, Metric


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("name", ["", "1abc", "a-b", "has space", "ünï"])
def test_bad_names_rejected(name):
    with pytest.raises(ValueError, match="name"):
        Counter(name)


def test_tag_keys_must_be_a_tuple_of_valid_distinct_strings():
    with pytest.raises(TypeError, match="tuple"):
        Counter("t_list", tag_keys=["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="strings"):
        Counter("t_int", tag_keys=(1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not valid"):
        Counter("t_dash", tag_keys=("a-b",))
    with pytest.raises(ValueError, match="twice"):
        Counter("t_dup", tag_keys=("a", "a"))


def test_tags_checked_on_every_call():
    c = Counter("v_calls", tag_keys=("route", "code"))
    with pytest.raises(ValueError, match="Missing value for tag key"):
        c.inc(tags={"route": "/"})
    with pytest.raises(ValueError, match="Unrecognized tag keys"):
        c.inc(tags={"route": "/", "code": "200", "extra": "x"})
    with pytest.raises(TypeError, match="str"):
        c.inc(tags={"route": "/", "code": 200})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="Unrecognized tag keys"):
        c.set_default_tags({"nope": "x"})
    c.set_default_tags({"code": "200"})
    c.inc(tags={"route": "/"})                        # the default fills "code"
    assert c.info == {"name": "v_calls", "description": "", "tag_keys": ("route", "code"),
                      "default_tags": {"code": "200"}}


def test_counter_only_grows_and_values_are_numbers():
    c = Counter("v_grow")
    for bad in (0, -1):
        with pytest.raises(ValueError, match="> 0"):
            c.inc(bad)
    with pytest.raises(TypeError, match="numbers"):
        c.inc("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numbers"):
        Gauge("v_gauge_bool").set(True)
    Gauge("v_gauge_none").set(None)                   # ignored, as in Ray


@pytest.mark.parametrize("boundaries, match", [
    (None, "boundaries argument should be provided"),
    ([], "boundaries argument should be provided"),
    ([1.0, -2.0], "index 1"),
    ([0, 1], "index 0"),
    ([2.0, 1.0], "strictly increasing"),
    ([1.0, 1.0], "strictly increasing"),
])
def test_histogram_boundaries_validated(boundaries, match):
    with pytest.raises(ValueError, match=match):
        Histogram("h_bad", boundaries=boundaries)


def test_histogram_reserves_le_and_reports_its_boundaries():
    with pytest.raises(ValueError, match="'le'"):
        Histogram("h_le", boundaries=[1.0], tag_keys=("le",))
    h = Histogram("h_ok", description="d", boundaries=[1, 2.5])
    assert h.info["boundaries"] == [1.0, 2.5]
    h.observe(2)


def test_same_name_must_agree_within_a_process():
    Counter("same_name", tag_keys=("a",))
    Counter("same_name", tag_keys=("a",))             # the same definition: fine
    with pytest.raises(ValueError, match="already a Counter"):
        Gauge("same_name", tag_keys=("a",))
    with pytest.raises(ValueError, match="tag_keys"):
        Counter("same_name", tag_keys=("b",))


def test_metric_base_and_exports():
    import ember.util.metrics as m
    assert set(m.__all__) == {"Counter", "Gauge", "Histogram", "Metric"}
    assert issubclass(Counter, Metric) and issubclass(Gauge, Metric)


# ------------------------------------------------------------ on a cluster
@pytest.fixture(scope="module")
def metrics_cluster():
    import ember
    if ember.is_initialized():
        ember.shutdown()
    saved = os.environ.get("EMBER_METRICS_REPORT_INTERVAL_S")
    os.environ["EMBER_METRICS_REPORT_INTERVAL_S"] = "0.3"
    try:
        info = ember.init(num_cpus=2)
        with open(os.path.join(info["session_dir"], "token")) as f:
            token = f.read().strip()
        yield ember, token
    finally:
        ember.shutdown()
        if saved is None:
            os.environ.pop("EMBER_METRICS_REPORT_INTERVAL_S", None)
        else:
            os.environ["EMBER_METRICS_REPORT_INTERVAL_S"] = saved


def _url(ember) -> str:
    node = ember.nodes()[0]
    assert node["MetricsExportPort"] > 0, node
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


def _scrape(url: str, token: str | None) -> dict:
    from prometheus_client.parser import text_string_to_metric_families
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict, family: str, sample: str, **labels: str) -> float | None:
    f = families.get(family)
    for s in (f.samples if f else []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_task_counter_and_actor_gauge_reach_the_node_endpoint(metrics_cluster):
    from ember.testing import wait_for_condition
    ember, token = metrics_cluster

    @ember.remote
    def handle(route):
        Counter("requests", description="Requests handled.", tag_keys=("route",)).inc(
            tags={"route": route})
        return route

    @ember.remote
    class Thermometer:
        def __init__(self):
            self.g = Gauge("temperature", description="Degrees.", tag_keys=("room",))
            self.g.set_default_tags({"room": "lab"})

        def read(self, value):
            self.g.set(value)
            return value

    ember.get([handle.remote(r) for r in ("/a", "/a", "/b")], timeout=60)
    t = Thermometer.remote()
    ember.get(t.read.remote(21.5), timeout=60)
    Histogram("driver_latency_s", boundaries=[0.1, 1.0]).observe(0.5)   # from the driver
    url = _url(ember)
    got: dict = {}

    def arrived():
        got.update(_scrape(url, token))
        return (_value(got, "ember_requests", "ember_requests_total", route="/a") == 2.0
                and _value(got, "ember_requests", "ember_requests_total", route="/b") == 1.0
                and _value(got, "ember_temperature", "ember_temperature", room="lab") == 21.5
                and _value(got, "ember_driver_latency_s", "ember_driver_latency_s_count") == 1.0)
    wait_for_condition(arrived, timeout=30)
    assert got["ember_requests"].type == "counter"
    assert got["ember_requests"].documentation == "Requests handled."
    assert got["ember_temperature"].type == "gauge"
    assert _value(got, "ember_driver_latency_s", "ember_driver_latency_s_bucket", le="1.0") == 1.0
    assert _value(got, "ember_driver_latency_s", "ember_driver_latency_s_bucket", le="0.1") == 0.0

    # System metrics, with Ray's names.
    for name in ("ember_tasks", "ember_workers", "ember_resources", "ember_object_store_memory",
                 "ember_node_cpu_count", "ember_node_mem_total"):
        assert name in got, sorted(got)
    assert _value(got, "ember_resources", "ember_resources", Name="CPU", State="AVAILABLE") \
        is not None
    assert _value(got, "ember_object_store_memory", "ember_object_store_memory",
                  Location="SPILLED") is not None
    assert _value(got, "ember_workers", "ember_workers", State="ACTOR") >= 1

    def tasks_finished():
        fams = _scrape(url, token)
        return (_value(fams, "ember_tasks", "ember_tasks", State="FINISHED") or 0) >= 4
    wait_for_condition(tasks_finished, timeout=30)


def test_object_store_bytes_counted(metrics_cluster):
    import numpy as np
    from ember.testing import wait_for_condition
    ember, token = metrics_cluster
    ref = ember.put(np.zeros(2_000_000, dtype=np.uint8))     # shared memory, not inline
    url = _url(ember)

    def counted():
        used = _value(_scrape(url, token), "ember_object_store_memory",
                      "ember_object_store_memory", Location="MMAP_SHM")
        return used is not None and used >= 2_000_000
    wait_for_condition(counted, timeout=30)
    del ref


def test_endpoint_requires_the_token(metrics_cluster):
    ember, token = metrics_cluster
    url = _url(ember)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
        assert e.value.code == 401
        assert "token" in e.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(
            url.replace("/metrics", "/other"), headers={"Authorization": f"Bearer {token}"}),
            timeout=10)
    assert e.value.code == 404


def test_export_port_can_be_chosen(monkeypatch):
    import ember
    from ember._private.node import free_port
    if ember.is_initialized():
        ember.shutdown()
    port = free_port()
    monkeypatch.setenv("EMBER_METRICS_EXPORT_PORT", str(port))
    ember.init(num_cpus=1)
    try:
        assert [n["MetricsExportPort"] for n in ember.nodes()] == [port]
    finally:
        ember.shutdown()


def test_cli_has_the_export_port_option():
    from click.testing import CliRunner

    from ember._private.cli import cli
    out = CliRunner().invoke(cli, ["start", "--help"])
    assert out.exit_code == 0 and "--metrics-export-port" in out.output

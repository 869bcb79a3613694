"""The dashboard (ember/_private/dashboard/): what it decides, what its API answers,
and the process the head starts for it.

Pure parts first (launch decisions, views), then the Starlette app driven in
process with a stand-in source, then a real cluster whose dashboard is asked
over HTTP. The page itself is loaded in a real browser in
test_dashboard_browser.py.
"""
from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import urllib.error
import urllib.request

import pytest

import ember
from ember._private.dashboard import DEFAULT_PORT, INSTALL_HINT, launch, views
from ember._private.http_listen import bind
from ember._private.task_event_store import TaskEventStore
from ember._private.task_events import FINISHED, RUNNING
from ember.testing import pid_alive, wait_for_condition

TOKEN = "d0d0" * 12


# ------------------------------------------------------------------ launch decisions
def _plan(include, host=None, port=None, missing=(), free=True):
    return launch.plan(include, host, port, missing=list(missing),
                       port_free=lambda h, p: free)


def test_plan_follows_rays_include_dashboard():
    assert _plan(False) is None
    assert _plan(None, missing=["uvicorn"]) is None       # not asked for: run without
    with pytest.raises(ImportError) as e:
        _plan(True, missing=["starlette", "uvicorn"])
    assert INSTALL_HINT in str(e.value) and "starlette, uvicorn" in str(e.value)
    p = _plan(None)
    assert (p.host, p.port, p.explicit_port, p.required) == ("127.0.0.1", DEFAULT_PORT,
                                                            False, False)
    assert _plan(True).required
    assert _plan(None, port=0).port == 0 and not _plan(None, port=0).explicit_port
    assert _plan(None, host="0.0.0.0", port=9000).explicit_port


def test_plan_rejects_bad_values_and_a_taken_explicit_port():
    with pytest.raises(OSError, match="already in use.*dashboard_port"):
        _plan(None, port=9000, free=False)
    assert _plan(None, free=False).port == DEFAULT_PORT       # default: fall back later
    for bad in (-1, 70000, "8265", True):
        with pytest.raises(ValueError, match="dashboard_port"):
            _plan(None, port=bad)
    with pytest.raises(ValueError, match="dashboard_host"):
        _plan(None, host=" ")
    with pytest.raises(TypeError, match="include_dashboard"):
        _plan("yes")


def test_command_and_ready_report_round_trip():
    assert launch.command(None, "h:1") == []
    (_, name, argv), = launch.command(_plan(None), "127.0.0.1:6379")
    assert name == "dashboard" and "--port-fallback" in argv and "--required" not in argv
    (_, _, argv), = launch.command(_plan(True, port=9000), "127.0.0.1:6379")
    assert "--port-fallback" not in argv and "--required" in argv
    assert launch.parse_ready(launch.ready_message(port=1234)) == (1234, None)
    assert launch.parse_ready(launch.ready_message(error="no uvicorn")) == (None, "no uvicorn")
    assert launch.parse_ready("garbage")[0] is None


def test_port_note_and_exposure_warning():
    assert launch.port_note(None, f"127.0.0.1:{DEFAULT_PORT}") is None
    assert "8265 was in use" in launch.port_note(None, "127.0.0.1:40000")
    assert launch.port_note(0, "127.0.0.1:40000") is None        # asked for any port
    assert launch.exposure_warning("10.1.2.3", tls_on=False) is not None
    assert launch.exposure_warning("10.1.2.3", tls_on=True) is None
    assert launch.address("0.0.0.0", 1) == "127.0.0.1:1"
    assert launch.http_url("127.0.0.1:1", True) == "https://127.0.0.1:1"


def test_settle_keeps_the_node_manager_last_or_drops_a_failed_dashboard(tmp_path):
    import subprocess
    import sys

    def proc():
        return subprocess.Popen([sys.executable, "-c", ""])

    gcs, nm, dash = proc(), proc(), proc()
    procs = [gcs, nm, dash]
    url = launch.settle(_plan(None, port=0), procs, ["1", "2", launch.ready_message(port=4321)],
                        str(tmp_path), registered=False)
    assert url == "127.0.0.1:4321" and procs == [gcs, dash, nm]
    assert launch.read_url(str(tmp_path)) == url
    gcs, nm, dash = proc(), proc(), proc()
    procs = [gcs, nm, dash]
    assert launch.settle(_plan(None), procs, ["1", "2", launch.ready_message(error="boom")],
                         str(tmp_path / "other"), registered=False) is None
    assert procs == [gcs, nm] and dash.returncode == 0       # reaped
    for p in (gcs, nm):
        p.wait()


def test_dashboard_process_reports_a_failure_to_start_unless_required(tmp_path):
    """Not required: the error goes up the ready pipe (the head runs on without it);
    required: the process fails, and so does the head's start."""
    import subprocess
    import sys

    from ember._private import process_util
    argv = [sys.executable, "-m", "ember._private.dashboard.main", "--gcs-address",
            "127.0.0.1:1", "--port", "0"]
    env = {k: v for k, v in os.environ.items() if k != "EMBER_CLUSTER_TOKEN"}
    for required in (False, True):
        r, w = os.pipe()
        p = subprocess.Popen(argv + ["--ready-fd", str(w)] + (["--required"] if required
                                                              else []),
                             pass_fds=(w,), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        os.close(w)
        if required:
            with pytest.raises(RuntimeError, match="exited during start-up"):
                process_util.read_ready(r, 60, "dashboard")
            os.close(r)
            assert p.wait(60) != 0
        else:
            port, error = launch.parse_ready(process_util.read_ready(r, 60, "dashboard"))
            assert port is None and "EMBER_CLUSTER_TOKEN is not set" in error
            assert p.wait(60) == 1


def test_bind_falls_back_to_a_free_port_only_when_allowed():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        sock = bind("127.0.0.1", port, fallback=True)
        assert sock.getsockname()[1] not in (port, 0)
        sock.close()
        with pytest.raises(OSError) as e:
            bind("127.0.0.1", port, fallback=False)
        assert e.value.errno == errno.EADDRINUSE
    finally:
        taken.close()


# ------------------------------------------------------------------ views
NODE = {"node_id": "n1", "ip": "10.0.0.1", "port": 7000, "alive": True,
        "total": {"CPU": 4.0, "GPU": 1.0, "memory": 8e9, "object_store_memory": 2e9,
                  "accel": 2.0, "node:10.0.0.1": 1.0},
        "available": {"CPU": 4.0, "GPU": 1.0, "memory": 8e9, "object_store_memory": 2e9,
                      "accel": 2.0}, "labels": {"zone": "a"}, "start_time": 100.0}
STATUS = {"available": {"CPU": 1.5, "memory": 6e9, "object_store_memory": 2e9, "accel": 2.0},
          "num_workers": 3, "num_idle_workers": 1, "pending_leases": 2,
          "infeasible": ["{GPU: 8}"], "store_used_bytes": 5 << 20,
          "store_capacity_bytes": 1 << 30, "store_num_objects": 4, "store_spilled_bytes": 0,
          "workers": []}


def test_node_view_turns_a_status_into_used_and_total():
    v = views.node_view(NODE, STATUS, head_id="n1",
                        machine={"mem_used": 3 << 30, "mem_total": 16 << 30})
    assert v["is_head"] and v["state"] == "ALIVE" and v["address"] == "10.0.0.1:7000"
    assert v["resources"]["CPU"] == {"used": 2.5, "total": 4.0}
    assert v["resources"]["GPU"] == {"used": 1.0, "total": 1.0}    # missing = all in use
    assert v["resources"]["memory"] == {"used": 2e9, "total": 8e9}
    assert v["custom_resources"] == {"accel": {"used": 0.0, "total": 2.0}}  # node:* left out
    assert v["object_store"] == {"used_bytes": 5 << 20, "capacity_bytes": 1 << 30,
                                 "num_objects": 4, "spilled_bytes": 0}
    assert v["machine_memory"] == {"used": float(3 << 30), "total": float(16 << 30)}
    assert (v["workers"], v["pending_leases"], v["infeasible"]) == (3, 2, ["{GPU: 8}"])
    # No live report: the control service's numbers, and the node flagged.
    v = views.node_view(NODE, None, head_id="other")
    assert v["state"] == "UNREACHABLE" and not v["is_head"]
    assert v["resources"]["CPU"]["used"] == 0.0
    assert v["object_store"]["capacity_bytes"] == 2e9
    assert views.node_view({**NODE, "alive": False}, None, "n1")["state"] == "DEAD"


def test_cluster_view_sums_live_nodes_and_counts_states():
    alive = views.node_view(NODE, STATUS, "n1")
    dead = views.node_view({**NODE, "node_id": "n2", "alive": False}, None, "n1")
    c = views.cluster_view([alive, dead], [{"state": "ALIVE"}, {"state": "DEAD"}],
                           {"summary": {"f": {"state_counts": {"FINISHED": 3}},
                                        "g": {"state_counts": {"FAILED": 1, "FINISHED": 1}}}},
                           [{"status": "RUNNING"}], "h:1", 5)
    assert (c["nodes_alive"], c["nodes_dead"]) == (1, 1)
    assert c["totals"]["CPU"] == {"used": 2.5, "total": 4.0}      # the dead node left out
    assert c["object_store"] == {"used_bytes": 5 << 20, "capacity_bytes": 1 << 30}
    assert c["actors"] == {"ALIVE": 1, "DEAD": 1}
    assert c["tasks"] == {"FINISHED": 4, "FAILED": 1}
    assert c["jobs"] == {"RUNNING": 1}


def test_task_view_durations_and_errors():
    running = views.task_view({"task_id": "t", "state": "RUNNING", "start_time_ms": 1000},
                              now_ms=4000)
    assert running["duration_s"] == 3.0 and running["error"] is None
    failed = views.task_view({"task_id": "t", "state": "FAILED", "start_time_ms": 1000,
                              "end_time_ms": 1250, "error_type": "TASK_EXECUTION_EXCEPTION",
                              "error_message": "x" * 10_000}, now_ms=99_999)
    assert failed["duration_s"] == 0.25
    assert failed["error"]["type"] == "TASK_EXECUTION_EXCEPTION"
    assert len(failed["error"]["message"]) <= views.MAX_ERROR_CHARS + 3
    assert views.task_view({"task_id": "t", "state": "PENDING_NODE_ASSIGNMENT"},
                           0)["duration_s"] is None


def test_actor_sorting_log_sources_and_placement_groups():
    rows = [{"state": "DEAD", "death_cause": {"error_message": "killed"}},
            {"state": "PENDING_CREATION"}, {"state": "ALIVE"}]
    ordered = views.sort_actors([views.actor_view(r) for r in rows])
    assert [a["state"] for a in ordered] == ["ALIVE", "PENDING_CREATION", "DEAD"]
    assert ordered[-1]["death_cause"] == "killed"
    sources = views.log_sources([
        ("n1", "ip", {"name": "node_manager.log", "size": 5}),
        ("n1", "ip", {"name": "w-9.err", "pid": 9, "is_err": True, "size": 2}),
        ("n1", "ip", {"name": "w-9.out", "pid": 9, "size": 3}),
        ("n1", "ip", {"name": "w-4.out", "pid": 4, "size": 1})])
    assert [(s["pid"], s["name"], s["size"]) for s in sources] == [
        (4, "w-4.out", 1), (9, "w-9.out", 5), (None, "node_manager.log", 5)]
    pg = views.placement_group_view({"placement_group_id": "p", "state": "CREATED",
                                     "bundles": [{"node_id": None, "unit_resources": {}}]})
    assert pg["bundles"] == [{"index": 0, "node_id": None, "resources": {}}]


def test_task_store_answers_newest_first_for_the_dashboard():
    store = TaskEventStore(max_tasks=10)
    for i in range(5):
        store.add([(bytes([i]) * 16, 0, FINISHED if i < 4 else RUNNING, float(i + 1), None)])
    rows, total = store.query(limit=2, newest_first=True)
    assert total == 5 and [r["task_id"][:2] for r in rows] == ["04", "03"]
    assert [r["task_id"][:2] for r in store.query(limit=2)[0]] == ["00", "01"]


# ------------------------------------------------------------------ the app, in process
class FakeSource:
    """Stands in for ClusterSource: canned answers, or the error it is told to raise."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple] = []

    def _answer(self, what, *args, **kw):
        self.calls.append((what, args, kw))
        if self.fail is not None:
            raise self.fail
        return {"what": what}

    def cluster(self):
        return self._answer("cluster")

    def nodes(self):
        return [self._answer("nodes")]

    def actors(self, limit):
        return [self._answer("actors", limit)]

    def tasks(self, limit):
        return {"tasks": [self._answer("tasks", limit)], "total": 1, "dropped": 0}

    def jobs(self):
        return [self._answer("jobs")]

    def placement_groups(self):
        return [self._answer("placement_groups")]

    def log_sources(self):
        return [self._answer("log_sources")]

    def log_tail(self, node_id, **kw):
        if node_id == "nowhere":
            raise LookupError("no live node with id 'nowhere'")
        return self._answer("log_tail", node_id, **kw)


def _get(app, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One GET through the ASGI app: (status, headers, body)."""
    target, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": target, "raw_path": target.encode(),
             "query_string": query.encode(), "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8265)}
    sent: list[dict] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()         # the client stays connected

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_every_path_needs_the_token():
    pytest.importorskip("starlette")
    from ember._private.dashboard.app import create_app
    source = FakeSource()
    app = create_app(source, TOKEN)
    for path in ("/", "/static/app.js", "/api/cluster", "/api/tasks", "/api/logs?node_id=n"):
        status, _, body = _get(app, path)
        assert status == 401 and b"cluster token" in body, path
        assert _get(app, path, {"Authorization": "Bearer nope"})[0] == 401
    assert source.calls == []
    # ?token= once: a cookie and a redirect to the same URL without it.
    status, headers, _ = _get(app, f"/?token={TOKEN}")
    assert status == 303 and headers["location"] == "/"
    assert headers["set-cookie"].startswith(f"ember_token={TOKEN};")
    status, headers, body = _get(app, "/", {"Cookie": f"ember_token={TOKEN}"})
    assert status == 200 and b"/static/app.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]


def test_api_routes_answer_json_and_errors_are_json_too():
    pytest.importorskip("starlette")
    from ember._private.dashboard.app import create_app
    source = FakeSource()
    app = create_app(source, TOKEN)
    expected = {"/api/cluster": {"what": "cluster"},
                "/api/nodes": {"nodes": [{"what": "nodes"}]},
                "/api/actors?limit=7": {"actors": [{"what": "actors"}]},
                "/api/tasks": {"tasks": [{"what": "tasks"}], "total": 1, "dropped": 0},
                "/api/jobs": {"jobs": [{"what": "jobs"}]},
                "/api/placement_groups": {"placement_groups": [{"what": "placement_groups"}]},
                "/api/logs": {"logs": [{"what": "log_sources"}]},
                "/api/logs?node_id=n1&pid=42&err=1&tail=10": {"what": "log_tail"}}
    for path, body in expected.items():
        status, headers, raw = _get(app, path, AUTH)
        assert status == 200 and headers["content-type"] == "application/json", path
        assert json.loads(raw) == body, path
    assert ("actors", (7,), {}) in source.calls
    assert ("tasks", (200,), {}) in source.calls                 # the default limit
    assert ("log_tail", ("n1",), {"pid": 42, "name": "", "err": True, "tail": 10}) \
        in source.calls
    for path in ("/api/tasks?limit=0", "/api/tasks?limit=x", "/api/logs?node_id=n1",
                 "/api/logs?node_id=n1&name=../token"):
        status, _, raw = _get(app, path, AUTH)
        assert status == 400 and "error" in json.loads(raw), path
    status, _, raw = _get(app, "/api/logs?node_id=nowhere&pid=1", AUTH)
    assert status == 404 and "nowhere" in json.loads(raw)["error"]
    down = create_app(FakeSource(fail=ConnectionError("could not reach it")), TOKEN)
    status, _, raw = _get(down, "/api/cluster", AUTH)
    assert status == 503 and "could not reach it" in json.loads(raw)["error"]


# ------------------------------------------------------------------ a real cluster
def _http(url: str, token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


@pytest.fixture
def dashboard_cluster(fresh):
    """An embedded cluster with a dashboard on a free port; (context, token, base URL)."""
    pytest.importorskip("uvicorn")
    from ember._private import api
    ctx = fresh.init(num_cpus=2, include_dashboard=True, dashboard_port=0)
    yield ctx, api._cluster.token, f"http://{ctx.dashboard_url}"


def test_dashboard_serves_the_clusters_state(dashboard_cluster):
    ctx, token, base = dashboard_cluster
    from ember._private import api, worker_state
    assert ctx.dashboard_url == ctx["webui_url"] and ctx.dashboard_url.startswith("127.0.0.1:")
    assert launch.read_url(api._cluster.session_dir) == ctx.dashboard_url
    # Drivers that connect later find it in the control service.
    assert api._dashboard_url(worker_state.core) == ctx.dashboard_url

    @ember.remote
    class Keeper:
        def hello(self):
            print("keeper says hello")
            return os.getpid()

    @ember.remote
    def square(x):
        return x * x

    keeper = Keeper.remote()
    keeper_pid = ember.get(keeper.hello.remote())
    assert ember.get(square.remote(12)) == 144

    assert _http(base + "/api/cluster", token=None)[0] == 401
    assert _http(base + "/api/cluster", token="wrong")[0] == 401

    status, cluster = _http(base + "/api/cluster", token)
    assert status == 200 and cluster["address"] == ctx["address"]
    (node,) = cluster["nodes"]
    assert node["is_head"] and node["state"] == "ALIVE"
    assert node["resources"]["CPU"]["total"] == 2.0
    assert node["object_store"]["capacity_bytes"] > 0
    assert cluster["actors"].get("ALIVE", 0) >= 1 and cluster["jobs"] == {"RUNNING": 1}

    def actor_row():
        rows = _http(base + "/api/actors", token)[1]["actors"]
        return next((a for a in rows if a["class_name"] == "Keeper"), None)
    wait_for_condition(lambda: (actor_row() or {}).get("state") == "ALIVE", timeout=30)
    assert actor_row()["pid"] == keeper_pid

    # FINISHED comes from the owner at once, the start time from the worker's next
    # event batch (about a second later): the duration appears with it.
    def finished():
        rows = _http(base + "/api/tasks", token)[1]["tasks"]
        return [t for t in rows if t["name"] == "square" and t["state"] == "FINISHED"
                and t["duration_s"] is not None]
    wait_for_condition(lambda: finished(), timeout=30, message="square never FINISHED")
    task = finished()[0]
    assert 0 <= task["duration_s"] < 30
    assert task["node_id"] == node["node_id"] and task["error"] is None

    jobs = _http(base + "/api/jobs", token)[1]["jobs"]
    assert [j["status"] for j in jobs] == ["RUNNING"]
    assert _http(base + "/api/placement_groups", token) == (200, {"placement_groups": []})

    # The actor's worker log, found in the list and read through its node's LogService.
    def keeper_log():
        logs = _http(base + "/api/logs", token)[1]["logs"]
        return next((s for s in logs if s["pid"] == keeper_pid), None)
    wait_for_condition(lambda: keeper_log() is not None, timeout=30)
    source = keeper_log()

    def tail():
        return _http(f"{base}/api/logs?node_id={source['node_id']}&pid={keeper_pid}",
                     token)[1].get("text", "")
    wait_for_condition(lambda: "keeper says hello" in tail(), timeout=30)
    assert ":task_name:" not in tail()            # the executor's markers are left out
    assert _http(f"{base}/api/logs?node_id={source['node_id']}&pid=1", token)[0] == 404


def test_dashboard_process_stops_with_the_cluster(fresh):
    pytest.importorskip("uvicorn")
    from ember._private import api
    fresh.init(num_cpus=1, include_dashboard=True, dashboard_port=0)
    (dash,) = [p for p in api._cluster.procs if "dashboard" in " ".join(p.args)]
    assert pid_alive(dash.pid)
    # The node manager (the parent of workers) is still the last process of the node.
    assert "node_manager_main" in " ".join(api._cluster.procs[-1].args)
    fresh.shutdown()
    wait_for_condition(lambda: not pid_alive(dash.pid), timeout=15)


def test_include_dashboard_false_and_missing_packages(fresh, monkeypatch):
    ctx = fresh.init(num_cpus=1, include_dashboard=False)
    assert ctx.dashboard_url is None and ctx["webui_url"] is None
    fresh.shutdown()
    import ember._private.dashboard as dashboard_pkg
    monkeypatch.setattr(dashboard_pkg, "missing_requirements", lambda: ["uvicorn"])
    with pytest.raises(ImportError, match=r'pip install "ember-core\[dashboard\]"'):
        fresh.init(num_cpus=1, include_dashboard=True)
    assert not fresh.is_initialized()
    ctx = fresh.init(num_cpus=1)                  # not asked for: starts without it
    assert ctx.dashboard_url is None


def test_dashboard_port_taken_by_request_is_an_error(fresh):
    pytest.importorskip("uvicorn")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(OSError, match="already in use"):
            fresh.init(num_cpus=1, dashboard_port=taken.getsockname()[1])
        assert not fresh.is_initialized()
    finally:
        taken.close()


def test_dashboard_answers_while_the_control_service_restarts(dashboard_cluster):
    """It keeps serving (503, then data again) instead of dying with the control service."""
    import signal

    from ember.testing import control_service_pid
    _, token, base = dashboard_cluster
    assert _http(base + "/api/jobs", token)[0] == 200
    os.kill(control_service_pid(), signal.SIGKILL)
    # The restarted control service answers at once; the driver's job is back once
    # the driver has reconnected to it.
    seen = []

    def job_back() -> bool:
        status, body = _http(base + "/api/jobs", token)
        seen.append(status)
        return status == 200 and bool(body["jobs"])
    wait_for_condition(job_back, timeout=90, retry_interval=0.5, message=f"answers: {seen}")


def test_dashboard_speaks_https_when_the_cluster_uses_tls(fresh, tmp_path, monkeypatch):
    """With EMBER_TLS_* (a CA: mutual TLS) the dashboard serves HTTPS only, and asks
    for a client certificate the cluster's CA signed."""
    import http.client
    import ssl

    pytest.importorskip("uvicorn")
    from ember._private import api, tls
    from ember.testing import make_tls_certs
    certs = make_tls_certs(str(tmp_path / "cluster"))
    rogue = make_tls_certs(str(tmp_path / "rogue"), name="rogue")
    for var, key in ((tls.CERT_ENV, "cert"), (tls.KEY_ENV, "key"), (tls.CA_ENV, "ca")):
        monkeypatch.setenv(var, certs[key])
    monkeypatch.delenv(tls.SERVER_NAME_ENV, raising=False)
    ctx = fresh.init(num_cpus=1, include_dashboard=True, dashboard_port=0)
    token = api._cluster.token
    request = urllib.request.Request(f"https://{ctx.dashboard_url}/api/jobs",
                                     headers={"Authorization": f"Bearer {token}"})

    def context(paths):
        c = ssl.create_default_context(cafile=certs["ca"])
        c.load_cert_chain(paths["cert"], paths["key"])
        return c

    with urllib.request.urlopen(request, timeout=30, context=context(certs)) as reply:
        assert json.loads(reply.read())["jobs"][0]["status"] == "RUNNING"
    with pytest.raises((OSError, http.client.HTTPException)):       # plaintext: refused
        urllib.request.urlopen(f"http://{ctx.dashboard_url}/api/jobs", timeout=10)
    with pytest.raises(OSError):       # a certificate another CA signed: refused
        urllib.request.urlopen(request, timeout=10, context=context(rogue))

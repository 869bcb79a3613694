"""The Jobs API's pure parts (issue #8): ids, request checks, status transitions,
outcomes, log-tail framing, HTTP routes, start-up decisions, the entrypoint's
environment. No processes."""
from __future__ import annotations

import json

import pytest

from ember._private import job_launch, job_runner, job_server, job_state
from ember._private.job_supervisor import entrypoint_env
from ember.job_submission import JobDetails, JobInfo, JobStatus, JobType


def test_submission_ids_are_fresh_and_checked():
    a, b = job_state.new_submission_id(), job_state.new_submission_id()
    assert a != b and a.startswith("ember_submit_") and len(a) == len("ember_submit_") + 16
    assert job_state.check_submission_id(a) == a
    for bad in ("", "a b", "../x", "x" * 129, None, 3, "a/b"):
        with pytest.raises(ValueError, match="submission_id"):
            job_state.check_submission_id(bad)
    assert job_state.log_name("j-1") == "job-driver-j-1.log"
    assert job_state.is_job_log("job-driver-j-1.log")
    assert not job_state.is_job_log("job-driver-../x.log")
    assert not job_state.is_job_log("worker-1.out")


def test_request_check_normalizes_and_names_the_field():
    req = job_state.check_request({"entrypoint": "python x.py", "entrypoint_num_cpus": 2,
                                   "metadata": {"owner": "me"},
                                   "entrypoint_resources": {"accel": 1}})
    assert req["entrypoint_num_cpus"] == 2.0 and req["entrypoint_resources"] == {"accel": 1.0}
    assert req["submission_id"].startswith("ember_submit_")
    assert job_state.check_request({"entrypoint": "x", "submission_id": "mine"})[
        "submission_id"] == "mine"
    cases = [
        ({"entrypoint": ""}, "entrypoint"),
        ({}, "entrypoint"),
        ([], "JSON object"),
        ({"entrypoint": "x", "runtime_env": "[]"}, "runtime_env"),
        ({"entrypoint": "x", "metadata": {"a": 1}}, "metadata"),
        ({"entrypoint": "x", "entrypoint_num_cpus": -1}, "entrypoint_num_cpus"),
        ({"entrypoint": "x", "entrypoint_num_gpus": True}, "entrypoint_num_gpus"),
        ({"entrypoint": "x", "entrypoint_resources": {"CPU": 1}}, "entrypoint_num_cpus"),
        ({"entrypoint": "x", "entrypoint_resources": {}}, "entrypoint_resources"),
        ({"entrypoint": "x", "bogus": 1}, "bogus"),
        ({"entrypoint": "x", "submission_id": "a b"}, "submission_id"),
    ]
    for body, word in cases:
        with pytest.raises(ValueError, match=word):
            job_state.check_request(body)


def test_status_only_moves_forward():
    rec = job_state.new_record("s", job_state.check_request({"entrypoint": "x"}), now_ms=5)
    assert rec["status"] == "PENDING" and rec["start_time"] == 5 and rec["end_time"] is None
    running = job_state.advance(rec, "RUNNING", 6, driver_node_id="n")
    assert running["status"] == "RUNNING" and running["driver_node_id"] == "n"
    assert running["end_time"] is None and rec["status"] == "PENDING"   # a copy
    done = job_state.advance(running, "SUCCEEDED", 7, driver_exit_code=0)
    assert done["end_time"] == 7 and done["driver_exit_code"] == 0
    for later in ("PENDING", "RUNNING", "FAILED", "STOPPED", "SUCCEEDED"):
        assert job_state.advance(done, later, 8) is None
    assert job_state.advance(running, "PENDING", 8) is None
    assert job_state.advance(rec, "SUCCEEDED", 8) is None     # never ran
    assert job_state.advance(rec, "STOPPED", 8)["status"] == "STOPPED"
    assert job_state.advance(rec, "FAILED", 8)["status"] == "FAILED"
    assert job_state.decode(job_state.encode(done)) == done


def test_outcome():
    assert job_state.outcome(0, False) == ("SUCCEEDED", "Job finished successfully.")
    status, message = job_state.outcome(3, False, "x" * 30000 + "boom")
    assert status == "FAILED" and "exit code 3" in message and message.endswith("boom")
    assert len(message) < 20200
    assert job_state.outcome(0, True)[0] == "STOPPED"
    assert job_state.outcome(143, True)[0] == "STOPPED"


def test_reconcile_fails_unfinished_jobs_without_a_live_supervisor():
    for status in ("PENDING", "RUNNING"):
        for supervisor in (None, "DEAD"):
            action, why = job_state.reconcile(status, supervisor)
            assert action == "fail" and why.startswith("Job supervisor actor died")
        for supervisor in ("PENDING", "ALIVE", "RESTARTING"):
            assert job_state.reconcile(status, supervisor) == ("adopt", None)
    for status in job_state.TERMINAL:
        for supervisor in (None, "DEAD", "ALIVE"):
            assert job_state.reconcile(status, supervisor) == ("keep", None)


def test_job_server_process_is_recognized_among_a_heads():
    class P:
        def __init__(self, args):
            self.args = args
    assert job_launch.is_job_server(P(["/py", "-m", "ember._private.job_server", "--x"]))
    assert not job_launch.is_job_server(P(["/py", "-m", "ember._private.node_manager_main"]))


def test_tail_frames_never_split_a_character():
    text = "héllo → wörld\n".encode()
    for cut in range(len(text) + 1):
        first = job_state.tail_frame(text[:cut], 0, False)
        second = job_state.tail_frame(text[first["offset"]:], first["offset"], True)
        assert first["logs"] + second["logs"] == text.decode()
        assert second["done"] and second["offset"] == len(text)
        assert not first["done"]
    assert job_state.tail_frame(b"", 9, False) == {"logs": "", "offset": 9, "done": False}
    assert job_state.tail_frame(b"", 9, True) == {"logs": "", "offset": 9, "done": True}


def test_routes():
    r = job_server.route
    assert r("GET", "/api/version") == ("version",)
    assert r("GET", "/api/jobs/") == ("list",) and r("POST", "/api/jobs") == ("submit",)
    assert r("GET", "/api/jobs/abc") == ("get", "abc")
    assert r("DELETE", "/api/jobs/abc") == ("delete", "abc")
    assert r("POST", "/api/jobs/abc/stop") == ("stop", "abc")
    assert r("GET", "/api/jobs/abc/logs?x=1") == ("logs", "abc")
    assert r("GET", "/api/jobs/abc/logs/tail?offset=3") == ("tail", "abc")
    assert r("PUT", "/api/packages/gcs/_ember_pkg_1.zip") == ("put_package", "gcs",
                                                                "_ember_pkg_1.zip")
    assert r("GET", "/api/jobs/abc/stop") == ("method_not_allowed",)
    assert r("GET", "/nope") is None and r("GET", "/api/jobs/a/b/c/d") is None
    assert job_server.package_uri("gcs", "_ember_pkg_1.zip") == "gcs://_ember_pkg_1.zip"
    for protocol, name in (("s3", "x.zip"), ("gcs", ""), ("gcs", ".hidden")):
        with pytest.raises(ValueError):
            job_server.package_uri(protocol, name)


def test_start_up_plan():
    free = lambda h, p: True        # noqa: E731
    taken = lambda h, p: False      # noqa: E731
    assert job_launch.plan(False, "127.0.0.1", None, dashboard=False, port_free=free) is None
    p = job_launch.plan(True, "127.0.0.1", None, dashboard=False, port_free=taken)
    assert (p.port, p.explicit_port) == (8265, False)          # falls back when taken
    assert job_launch.plan(True, "127.0.0.1", None, dashboard=True, port_free=free).port == 8266
    assert job_launch.plan(True, "127.0.0.1", 0, dashboard=False, port_free=free).port == 0
    with pytest.raises(OSError, match="already in use"):
        job_launch.plan(True, "127.0.0.1", 9000, dashboard=False, port_free=taken)
    with pytest.raises(ValueError, match="job_server_port"):
        job_launch.plan(True, "127.0.0.1", 70000, dashboard=False, port_free=free)
    argv = job_launch.command(p, "127.0.0.1:6379")[0][2]
    assert "--port-fallback" in argv and "ember._private.job_server" in argv
    assert job_launch.parse_ready(json.dumps({"port": 5})) == 5
    with pytest.raises(RuntimeError, match="did not start"):
        job_launch.parse_ready("garbage")


def test_entrypoint_environment():
    base = {"PATH": "/usr/bin:/venv/bin", "EMBER_NODE_ID": "n", "EMBER_WATCH_FD": "3",
            "EMBER_SESSION_DIR": "/s", "PYTHONPATH": "/old", "KEEP": "1"}
    env = entrypoint_env(base, address="h:1", token="tok", submission_id="sid",
                         runtime_env={"working_dir": "gcs://_ember_pkg_a.zip"},
                         env_vars={"A": "b"}, pythonpath=["/wd"], python="/venv/bin/python")
    assert env["EMBER_ADDRESS"] == "h:1" and env["EMBER_CLUSTER_TOKEN"] == "tok"
    assert json.loads(env["EMBER_JOB_RUNTIME_ENV"]) == {"working_dir": "gcs://_ember_pkg_a.zip"}
    assert env["EMBER_JOB_SUBMISSION_ID"] == "sid" and env["A"] == "b" and env["KEEP"] == "1"
    assert "EMBER_NODE_ID" not in env and "EMBER_WATCH_FD" not in env
    assert env["EMBER_SESSION_DIR"] == "/s"          # `ember stop` finds the job by it
    assert env["PYTHONPATH"] == "/wd:/old"
    assert env["PATH"] == "/venv/bin:/usr/bin"       # the job's python first, once
    assert base["PATH"] == "/usr/bin:/venv/bin"      # not modified


def test_runner_exit_status():
    assert job_runner.exit_status(0) == 0 and job_runner.exit_status(2) == 2
    assert job_runner.exit_status(-9) == 137


def test_models_round_trip():
    d = JobDetails(status=JobStatus.RUNNING, entrypoint="x", submission_id="s")
    again = JobDetails.from_dict({**d.to_dict(), "from_a_newer_server": 1})
    assert again == d and again.type is JobType.SUBMISSION
    assert isinstance(again, JobInfo)
    assert [s.is_terminal() for s in JobStatus] == [False, False, True, True, True]
    assert str(JobStatus.FAILED) == "FAILED" and JobStatus("STOPPED") is JobStatus.STOPPED

"""JobSubmissionClient against a cluster's job server (issue #8): submit, status,
logs (whole and tailed), list, stop (the job's actor goes with it), delete, bad
input, and job states surviving a control-service restart."""
from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time

import pytest

import ember
from ember.cluster_utils import Cluster
from ember.job_submission import JobStatus, JobSubmissionClient
from ember.testing import wait_for_condition

PY = sys.executable


@pytest.fixture(scope="module")
def cluster():
    if ember.is_initialized():
        ember.shutdown()
    c = Cluster(initialize_head=True, connect=True,
                head_node_args={"num_cpus": 2, "include_job_server": True,
                                "job_server_port": 0})
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def client(cluster):
    return JobSubmissionClient(cluster.head_node.job_server_url, token=cluster.head_node.token)


def wait_terminal(client, sid, timeout=60.0) -> JobStatus:
    wait_for_condition(lambda: client.get_job_status(sid).is_terminal(), timeout=timeout,
                       retry_interval=0.1, message=f"job {sid} did not end")
    return client.get_job_status(sid)


def script(tmp_path, name, body) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{PY} {path}"


def test_submit_status_logs_list_delete(cluster, client, tmp_path):
    entry = script(tmp_path, "hello.py", """
        import os, ember
        ember.init()
        print("answer", ember.get(ember.put(41)) + 1, os.environ["EMBER_JOB_SUBMISSION_ID"])
    """)
    sid = client.submit_job(entrypoint=entry, metadata={"owner": "test"})
    assert sid.startswith("ember_submit_")
    assert wait_terminal(client, sid) == JobStatus.SUCCEEDED, client.get_job_logs(sid)
    info = client.get_job_info(sid)
    assert info.submission_id == sid and info.entrypoint == entry
    assert info.driver_exit_code == 0 and info.metadata == {"owner": "test"}
    assert info.start_time <= info.end_time
    assert info.driver_node_id == cluster.head_node.node_id      # no resources: the head
    assert f"answer 42 {sid}" in client.get_job_logs(sid)
    from ember.util.state import list_jobs
    drivers = {j.job_id: j for j in list_jobs(address=cluster.address)}
    assert info.job_id in drivers                                 # its driver's job id
    assert sid in [j.submission_id for j in client.list_jobs()]
    assert client.stop_job(sid) is False                          # it has ended
    assert client.delete_job(sid) is True
    with pytest.raises(RuntimeError, match="404"):
        client.get_job_info(sid)
    assert sid not in [j.submission_id for j in client.list_jobs()]


def test_failed_job_has_exit_code_and_log_tail(client):
    sid = client.submit_job(entrypoint="echo going down >&2; exit 3",
                            submission_id="failing-job")
    assert sid == "failing-job"
    assert wait_terminal(client, sid) == JobStatus.FAILED
    info = client.get_job_info(sid)
    assert info.driver_exit_code == 3
    assert "exit code 3" in info.message and "going down" in info.message


def test_tail_job_logs_streams_until_the_end(client):
    sid = client.submit_job(entrypoint=f"{PY} -c \"import time\nfor i in range(5):\n"
                                       f"    print('line', i, flush=True); time.sleep(0.3)\"")

    async def collect() -> list[str]:
        return [chunk async for chunk in client.tail_job_logs(sid)]

    chunks = asyncio.run(collect())
    text = "".join(chunks)
    assert [f"line {i}" for i in range(5)] == text.splitlines(), text
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED   # tail ends with the job


def test_stop_kills_the_entrypoint_and_its_actor(cluster, client, tmp_path):
    entry = script(tmp_path, "actor_job.py", """
        import time, ember
        ember.init(namespace="jobtest")

        @ember.remote(num_cpus=0)
        class Holder:
            def ping(self):
                return "pong"

        h = Holder.options(name="held_by_job").remote()
        print(ember.get(h.ping.remote()), flush=True)
        time.sleep(300)
    """)
    sid = client.submit_job(entrypoint=entry)
    wait_for_condition(lambda: "pong" in client.get_job_logs(sid), timeout=60,
                       message="the job's actor did not answer")
    assert client.get_job_status(sid) == JobStatus.RUNNING
    actor = ember.get_actor("held_by_job", namespace="jobtest")
    assert ember.get(actor.ping.remote()) == "pong"
    runner_pid = int(client.get_job_info(sid).driver_info["pid"])

    assert client.stop_job(sid) is True
    assert wait_terminal(client, sid, timeout=30) == JobStatus.STOPPED
    info = client.get_job_info(sid)
    assert info.message == "Job was intentionally stopped." and info.end_time

    def actor_gone() -> bool:
        try:
            ember.get_actor("held_by_job", namespace="jobtest")
        except ValueError:
            return True
        return False

    wait_for_condition(actor_gone, timeout=30, message="the job's actor outlived the job")
    wait_for_condition(lambda: not os.path.exists(f"/proc/{runner_pid}"), timeout=10)


def test_stop_a_pending_job(client):
    # Asks for a resource no node has: stays PENDING until stopped.
    sid = client.submit_job(entrypoint="echo never", entrypoint_resources={"nowhere": 1})
    time.sleep(0.5)
    assert client.get_job_status(sid) == JobStatus.PENDING
    assert client.stop_job(sid) is True
    assert client.get_job_status(sid) == JobStatus.STOPPED
    assert client.get_job_logs(sid) == ""


def test_bad_input_gives_clear_errors(cluster, client):
    with pytest.raises(RuntimeError, match="404.*no job with submission id 'nope'"):
        client.get_job_info("nope")
    for call in (client.stop_job, client.get_job_logs, client.delete_job):
        with pytest.raises(RuntimeError, match="404"):
            call("nope")
    sid = client.submit_job(entrypoint="sleep 30", submission_id="dup-id")
    try:
        with pytest.raises(RuntimeError, match="409.*already exists"):
            client.submit_job(entrypoint="true", submission_id="dup-id")
        with pytest.raises(RuntimeError, match="400.*only be deleted once it has ended"):
            client.delete_job(sid)
    finally:
        client.stop_job(sid)
    with pytest.raises(ValueError, match="runtime_env must be a dict"):
        client.submit_job(entrypoint="true", runtime_env="[]")
    with pytest.raises(ValueError, match="submission_id"):
        client.submit_job(entrypoint="true", submission_id="has space")
    with pytest.raises(ValueError, match="does not exist"):
        client.submit_job(entrypoint="true", runtime_env={"working_dir": "/no/such/dir"})
    with pytest.raises(RuntimeError, match="400.*entrypoint"):
        client.submit_job(entrypoint=" ")
    with pytest.raises(RuntimeError, match="401"):
        JobSubmissionClient(cluster.head_node.job_server_url, token="wrong")
    wait_terminal(client, sid)


def test_state_survives_a_control_service_restart(cluster, client):
    sid = client.submit_job(entrypoint="echo persisted")
    assert wait_terminal(client, sid) == JobStatus.SUCCEEDED
    before = client.get_job_info(sid)
    cluster.kill_control_service()
    cluster.wait_for_control_service()
    after = client.get_job_info(sid)
    assert after == before
    assert "persisted" in client.get_job_logs(sid)


def test_pip_runtime_env_reaches_the_entrypoint_and_its_tasks(client, tmp_path):
    sys.path.insert(0, os.path.dirname(__file__))
    from runtime_env_helpers import build_wheel
    wheel = build_wheel(str(tmp_path), "job_pip_mod", value="from the job's pip")
    entry = script(tmp_path, "uses_pip.py", """
        import ember, job_pip_mod

        @ember.remote
        def in_task():
            import job_pip_mod
            return job_pip_mod.VALUE

        ember.init()
        print("driver:", job_pip_mod.VALUE, "| task:", ember.get(in_task.remote()))
    """)
    sid = client.submit_job(entrypoint=entry.replace(PY, "python"), runtime_env={
        "pip": {"packages": [wheel], "pip_install_options": ["--no-index"]}})
    assert wait_terminal(client, sid, timeout=120) == JobStatus.SUCCEEDED, \
        client.get_job_logs(sid)
    assert "driver: from the job's pip | task: from the job's pip" in client.get_job_logs(sid)


def test_failed_runtime_env_setup_fails_the_job_with_the_installers_words(client):
    sid = client.submit_job(entrypoint="echo never runs", runtime_env={
        "pip": {"packages": ["ember-job-no-such-package"],
                "pip_install_options": ["--no-index"]}})
    assert wait_terminal(client, sid, timeout=120) == JobStatus.FAILED
    info = client.get_job_info(sid)
    assert info.error_type == "RUNTIME_ENV_SETUP_FAILED" and info.driver_exit_code is None
    assert "ember-job-no-such-package" in info.message
    assert "runtime_env setup failed" in client.get_job_logs(sid)
    assert "never runs" not in client.get_job_logs(sid)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_restarted_job_server_fails_jobs_whose_supervisor_died_and_adopts_live_ones(
        cluster, client, tmp_path):
    import signal
    release = tmp_path / "release"
    waiter = script(tmp_path, "waits.py", f"""
        import os, time
        print("started", flush=True)
        while not os.path.exists({str(release)!r}):
            time.sleep(0.1)
        print("released", flush=True)
    """)
    orphaned = client.submit_job(entrypoint=waiter)
    adopted = client.submit_job(entrypoint=waiter)
    for sid in (orphaned, adopted):
        wait_for_condition(lambda: "started" in client.get_job_logs(sid), timeout=60,
                           message=f"job {sid} did not start")
    runner = int(client.get_job_info(orphaned).driver_info["pid"])
    supervisor = _ppid(runner)            # the runner is the supervisor's child

    cluster.kill_job_server()
    os.kill(supervisor, signal.SIGKILL)   # dies while no job server watches it
    # Its runner ends the entrypoint (it watches the supervisor) ...
    wait_for_condition(lambda: not os.path.exists(f"/proc/{runner}"), timeout=30,
                       message="the runner outlived its supervisor")
    # ... but nothing recorded an end: without reconciling it would stay RUNNING.
    url = cluster.restart_job_server()
    assert url == cluster.head_node.job_server_url
    fresh = JobSubmissionClient(url, token=cluster.head_node.token)
    assert wait_terminal(fresh, orphaned, timeout=60) == JobStatus.FAILED
    info = fresh.get_job_info(orphaned)
    assert info.error_type == "JOB_SUPERVISOR_DIED", info
    assert info.message.startswith("Job supervisor actor died"), info.message
    # The job whose supervisor lived is watched again and ends as it should.
    assert fresh.get_job_status(adopted) == JobStatus.RUNNING
    release.write_text("go")
    assert wait_terminal(fresh, adopted, timeout=60) == JobStatus.SUCCEEDED
    assert "released" in fresh.get_job_logs(adopted)

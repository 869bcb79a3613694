"""A job's working_dir reaches every node (issue #8): a local directory with a
module of its own is uploaded by JobSubmissionClient through the job server, the
entrypoint runs in it on the node that has its entrypoint_resources, and the
job's tasks, pinned to each of the two nodes, import the module there. Also on
two nodes: entrypoint_num_gpus places the job where a GPU is (a logical one here)
and gives it CUDA_VISIBLE_DEVICES; a job whose node is removed fails and leaves no
process behind."""
from __future__ import annotations

import json
import textwrap

import pytest

import ember
from ember.cluster_utils import Cluster
from ember.job_submission import JobStatus, JobSubmissionClient
from ember.testing import wait_for_condition


@pytest.fixture
def two_nodes():
    if ember.is_initialized():
        ember.shutdown()
    c = Cluster(initialize_head=True,
                head_node_args={"num_cpus": 1, "include_job_server": True, "job_server_port": 0})
    second = c.add_node(num_cpus=1, num_gpus=1, resources={"second": 1})
    c.wait_for_nodes()
    yield c, second
    c.shutdown()


def test_working_dir_module_imported_on_both_nodes(two_nodes, tmp_path):
    cluster, second = two_nodes
    project = tmp_path / "project"
    project.mkdir()
    (project / "jobmod.py").write_text("VALUE = 'from the working_dir'\n")
    (project / "big.csv").write_text("x\n" * 10)        # excluded below
    (project / "main.py").write_text(textwrap.dedent("""
        import json, os
        import ember, jobmod
        from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ember.init()

        @ember.remote(num_cpus=1)
        def where():
            import jobmod
            return jobmod.VALUE, ember.get_runtime_context().get_node_id(), \\
                os.path.exists("main.py"), os.path.exists("big.csv")

        nodes = sorted(n["NodeID"] for n in ember.nodes() if n["Alive"])
        refs = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
                .remote() for n in nodes]
        print("RESULT", json.dumps({"driver": [jobmod.VALUE, os.path.exists("main.py")],
                                    "tasks": ember.get(refs), "nodes": nodes}))
    """))
    client = JobSubmissionClient(cluster.head_node.job_server_url, token=cluster.head_node.token)
    sid = client.submit_job(entrypoint="python main.py",
                            runtime_env={"working_dir": str(project), "excludes": ["*.csv"]},
                            entrypoint_resources={"second": 0.5})
    wait_for_condition(lambda: client.get_job_status(sid).is_terminal(), timeout=90,
                       retry_interval=0.2)
    logs = client.get_job_logs(sid)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED, logs
    info = client.get_job_info(sid)
    assert info.driver_node_id == second.node_id       # where its resources are
    assert info.runtime_env["working_dir"].startswith("gcs://_ember_pkg_")
    result = json.loads(logs.split("RESULT ", 1)[1])
    assert result["driver"] == ["from the working_dir", True]
    assert sorted(result["nodes"]) == sorted([cluster.head_node.node_id, second.node_id])
    assert [t[0] for t in result["tasks"]] == ["from the working_dir"] * 2
    assert [t[1] for t in result["tasks"]] == result["nodes"]      # one task on each node
    assert all(t[2] and not t[3] for t in result["tasks"])          # cwd: the unpacked dir


def test_a_job_whose_node_dies_fails_and_leaves_no_process(two_nodes, tmp_path):
    import os
    cluster, second = two_nodes
    client = JobSubmissionClient(cluster.head_node.job_server_url, token=cluster.head_node.token)
    pidfile = tmp_path / "pid"
    sid = client.submit_job(entrypoint=f"echo $$ > {pidfile}; echo started; exec sleep 300",
                            entrypoint_resources={"second": 1})
    wait_for_condition(lambda: "started" in client.get_job_logs(sid), timeout=60)
    assert client.get_job_info(sid).driver_node_id == second.node_id
    pid = int(pidfile.read_text())
    cluster.remove_node(second)
    wait_for_condition(lambda: client.get_job_status(sid).is_terminal(), timeout=60,
                       retry_interval=0.2)
    info = client.get_job_info(sid)
    assert info.status == JobStatus.FAILED and info.error_type == "JOB_SUPERVISOR_DIED", info
    wait_for_condition(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15,
                       message="the entrypoint outlived its supervisor")
    # Ended by its runner, which saw the supervisor go (the node's log is on this machine).
    with open(os.path.join(cluster.session_dir, "logs", f"job-driver-{sid}.log")) as f:
        assert "the job supervisor is gone" in f.read()


def test_entrypoint_num_gpus_places_the_job_and_sets_its_gpus(two_nodes):
    cluster, second = two_nodes
    client = JobSubmissionClient(cluster.head_node.job_server_url, token=cluster.head_node.token)
    sid = client.submit_job(entrypoint='echo "gpus=[$CUDA_VISIBLE_DEVICES]"',
                            entrypoint_num_gpus=1)
    wait_for_condition(lambda: client.get_job_status(sid).is_terminal(), timeout=60,
                       retry_interval=0.2)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED, client.get_job_logs(sid)
    info = client.get_job_info(sid)
    assert info.driver_node_id == second.node_id and info.entrypoint_num_gpus == 1.0
    assert "gpus=[0]" in client.get_job_logs(sid)

"""The job server speaks HTTPS only when the cluster uses TLS (issue #8), and a job
submitted through it runs (its driver inherits the cluster's TLS settings)."""
from __future__ import annotations

import http.client
import urllib.request

import pytest

import ember
from ember.cluster_utils import Cluster
from ember.job_submission import JobStatus, JobSubmissionClient
from ember.testing import make_tls_certs, wait_for_condition


def test_job_server_uses_tls(tmp_path, monkeypatch):
    from ember._private import tls
    if ember.is_initialized():
        ember.shutdown()
    certs = make_tls_certs(str(tmp_path / "cluster"))
    rogue = make_tls_certs(str(tmp_path / "rogue"), name="rogue")
    for var, key in ((tls.CERT_ENV, "cert"), (tls.KEY_ENV, "key"), (tls.CA_ENV, "ca")):
        monkeypatch.setenv(var, certs[key])
    monkeypatch.delenv(tls.SERVER_NAME_ENV, raising=False)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_job_server": True, "job_server_port": 0})
    try:
        url = cluster.head_node.job_server_url
        assert url.startswith("https://")
        client = JobSubmissionClient(url, token=cluster.head_node.token)
        script = ("import ember; ember.init(); "
                  "print('over tls', ember.get(ember.put(1)))")
        sid = client.submit_job(entrypoint=f"python -c \"{script}\"")
        wait_for_condition(lambda: client.get_job_status(sid).is_terminal(), timeout=60,
                           retry_interval=0.2)
        assert client.get_job_status(sid) == JobStatus.SUCCEEDED, client.get_job_logs(sid)
        assert "over tls 1" in client.get_job_logs(sid)
        with pytest.raises((OSError, http.client.HTTPException)):     # plaintext: refused
            urllib.request.urlopen("http" + url[5:] + "/api/version", timeout=10)
        for var, key in ((tls.CERT_ENV, "cert"), (tls.KEY_ENV, "key")):
            monkeypatch.setenv(var, rogue[key])   # a certificate the cluster's CA did not sign
        with pytest.raises(ConnectionError):
            JobSubmissionClient(url, token=cluster.head_node.token)
    finally:
        cluster.shutdown()

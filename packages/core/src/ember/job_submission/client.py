"""``JobSubmissionClient``: submit and manage jobs through a cluster's job server
(Ray's ``ray.job_submission.JobSubmissionClient``), over HTTP(S) with the cluster
token. Standard library only: it works without connecting to the cluster.

>>> from ember.job_submission import JobSubmissionClient
>>> client = JobSubmissionClient("http://127.0.0.1:8265")
>>> sid = client.submit_job(entrypoint="python script.py", runtime_env={"working_dir": "./"})
>>> client.get_job_status(sid)
<JobStatus.RUNNING: 'RUNNING'>
"""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any, AsyncIterator, Iterator
from urllib.parse import quote

from .models import JobDetails, JobStatus

ADDRESS_ENV = "EMBER_ADDRESS"
_TOKEN_ENV = "EMBER_CLUSTER_TOKEN"     # rpc.TOKEN_ENV, spelled out: this module loads no gRPC
TAIL_WAIT_S = 5.0


def _local_sessions() -> list[str]:
    from .._private.node import _session_dirs
    return _session_dirs()


def resolve_address(address: str | None) -> tuple[str, str | None]:
    """(job server URL, the session directory it was found in or None).

    ``address``: ``http(s)://host:port`` (the job server itself), ``host:port`` (a
    cluster's control service, as ``ember.init`` takes: its job server is looked up),
    ``"auto"`` or None: $EMBER_ADDRESS, else the newest cluster ``ember start`` left
    running on this machine.
    """
    from .._private import job_launch, node
    address = (address or os.environ.get(ADDRESS_ENV) or "auto").strip()
    if address.startswith(("http://", "https://")):
        url = address.rstrip("/")
        for d in _local_sessions():
            if job_launch.read_url(d) == url:
                return url, d
        return url, None
    if address == "auto":
        found = node.find_latest_cluster()
        if found is None:
            raise ConnectionError(
                "no Ember cluster found on this machine: start one with `ember start --head`, "
                "or pass the job server's address (address=\"http://HOST:8265\", `ember job "
                f"--address`, or ${ADDRESS_ENV})")
        address = found
    session = node.find_session(address)
    found_url = job_launch.read_url(session) if session else None
    if found_url is None:
        token = os.environ.get(_TOKEN_ENV) or (node.find_local_token(address) or "")
        found_url = node.cluster_kv(address, token, job_launch.KV_KEY) if token else None
    if found_url is None:
        raise ConnectionError(
            f"the cluster at {address} has no job server: it is started by `ember start "
            "--head` (a Cluster needs include_job_server=True); or pass its address "
            "as http://HOST:PORT")
    return found_url, session


class JobSubmissionClient:
    """Talks to a cluster's job server.

    Args:
        address: ``http(s)://host:port`` of the job server (``ember start --head``
            prints it), a control service's ``host:port``, or None/"auto": $EMBER_ADDRESS,
            else the newest local cluster.
        headers: extra HTTP headers for every request.
        verify: for https: verify the server's certificate (True: against EMBER_TLS_CA
            or the cluster certificate when EMBER_TLS_* is set, else the system's CAs;
            False: don't; a path: that CA bundle).
        token: the cluster token (default $EMBER_CLUSTER_TOKEN, else the local session's).

    >>> client = JobSubmissionClient("http://127.0.0.1:8265")
    >>> [j.submission_id for j in client.list_jobs()]
    """

    def __init__(self, address: str | None = None, create_cluster_if_needed: bool = False,
                 cookies: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
                 headers: dict[str, Any] | None = None, verify: str | bool = True,
                 token: str | None = None) -> None:
        self._address, session = resolve_address(address)
        self._default_metadata = dict(metadata or {})
        token = token or os.environ.get(_TOKEN_ENV)
        if not token and session:
            from .._private.node import read_token
            token = read_token(session)
        if not token:
            raise ConnectionError(
                f"no cluster token for the job server at {self._address}: set {_TOKEN_ENV} to "
                "the token `ember start --head` printed (the file `token` in the head's "
                "session directory)")
        self._headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        if cookies:
            self._headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self._ssl = self._ssl_context(verify) if self._address.startswith("https://") else None
        self._request("GET", "/api/version", timeout=10)   # fail now if unreachable

    @staticmethod
    def _ssl_context(verify: str | bool) -> ssl.SSLContext:
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if isinstance(verify, str):
            return ssl.create_default_context(cafile=verify)
        from .._private import tls
        cfg = tls.load()
        return tls.client_ssl_context(cfg) if cfg else ssl.create_default_context()

    def get_address(self) -> str:
        """The job server's URL."""
        return self._address

    # ---------------------------------------------------------------- HTTP
    def _request(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                 timeout: float = 60, ok_404: bool = False) -> Any:
        if body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(self._address + path, data=data, method=method,
                                     headers={**self._headers,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            if ok_404 and e.code == 404:
                return None
            detail = e.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except (ValueError, AttributeError):
                pass
            raise RuntimeError(f"Request failed with status code {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            raise ConnectionError(f"could not reach the job server at {self._address}: "
                                  f"{e.reason}; is the cluster running (`ember status`)?") \
                from None
        except OSError as e:   # TLS refusals can surface only when the answer is read
            raise ConnectionError(f"the connection to the job server at {self._address} "
                                  f"failed: {e}") from None
        return json.loads(raw) if raw else None

    @staticmethod
    def _id(job_id: str) -> str:
        return quote(job_id, safe="")

    # ---------------------------------------------------------------- packages
    def _package_exists(self, uri: str) -> bool:
        protocol, _, name = uri.partition("://")
        return self._request("GET", f"/api/packages/{protocol}/{quote(name)}",
                             ok_404=True) is not None

    def _put_package(self, uri: str, data: bytes) -> None:
        protocol, _, name = uri.partition("://")
        self._request("PUT", f"/api/packages/{protocol}/{quote(name)}", data=data, timeout=600)

    def _upload(self, runtime_env: dict) -> dict:
        if not any(k in runtime_env for k in ("working_dir", "py_modules")):
            return runtime_env
        try:
            from .._private.runtime_env.packaging import upload_local_packages
        except ImportError:
            raise RuntimeError("this Ember cannot ship working_dir/py_modules (its runtime_env "
                               "package is missing): upgrade ember-core") from None
        return upload_local_packages(runtime_env, put=self._put_package,
                                     exists=self._package_exists)

    # ---------------------------------------------------------------- jobs
    def submit_job(self, *, entrypoint: str, job_id: str | None = None,
                   runtime_env: dict[str, Any] | None = None,
                   metadata: dict[str, str] | None = None,
                   submission_id: str | None = None,
                   entrypoint_num_cpus: int | float | None = None,
                   entrypoint_num_gpus: int | float | None = None,
                   entrypoint_memory: int | None = None,
                   entrypoint_resources: dict[str, float] | None = None) -> str:
        """Submit a job; returns its submission id (``ember_submit_<random>`` unless given).
        A local ``working_dir``/``py_modules`` is uploaded first (once per content).

        >>> client.submit_job(entrypoint="python train.py", runtime_env={"working_dir": "."},
        ...                   entrypoint_num_gpus=1)
        'ember_submit_4f1c2a9b8d7e6f50'
        """
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise ValueError(f"runtime_env must be a dict, got {type(runtime_env).__name__}")
        from .._private import job_state
        if submission_id is not None:
            job_state.check_submission_id(submission_id)
        env = self._upload(dict(runtime_env)) if runtime_env else None
        body = {"entrypoint": entrypoint, "submission_id": submission_id or job_id,
                "runtime_env": env, "metadata": {**self._default_metadata, **(metadata or {})}
                or None, "entrypoint_num_cpus": entrypoint_num_cpus,
                "entrypoint_num_gpus": entrypoint_num_gpus,
                "entrypoint_memory": entrypoint_memory,
                "entrypoint_resources": entrypoint_resources}
        return str(self._request("POST", "/api/jobs/", body)["submission_id"])

    def get_job_info(self, job_id: str) -> JobDetails:
        """The job's details (status, message, times, exit code, ...); RuntimeError if
        there is no such job."""
        return JobDetails.from_dict(self._request("GET", f"/api/jobs/{self._id(job_id)}"))

    def get_job_status(self, job_id: str) -> JobStatus:
        """The job's :class:`JobStatus`."""
        return self.get_job_info(job_id).status

    def list_jobs(self) -> list[JobDetails]:
        """Every job the cluster knows, oldest first."""
        return [JobDetails.from_dict(d) for d in self._request("GET", "/api/jobs/")]

    def stop_job(self, job_id: str) -> bool:
        """Stop the job (SIGTERM to its process group, SIGKILL after a grace period);
        True if it was pending or running, False if it had already ended."""
        return bool(self._request("POST", f"/api/jobs/{self._id(job_id)}/stop")["stopped"])

    def delete_job(self, job_id: str) -> bool:
        """Forget an ended job; RuntimeError if it is still pending or running."""
        return bool(self._request("DELETE", f"/api/jobs/{self._id(job_id)}")["deleted"])

    def get_job_logs(self, job_id: str) -> str:
        """Everything the job's entrypoint printed so far (stdout and stderr)."""
        return str(self._request("GET", f"/api/jobs/{self._id(job_id)}/logs")["logs"])

    def _iter_logs(self, job_id: str, wait: float = TAIL_WAIT_S) -> Iterator[str]:
        """The job's output as it comes, until the job ends (blocking)."""
        offset = 0
        while True:
            frame = self._request(
                "GET", f"/api/jobs/{self._id(job_id)}/logs/tail?offset={offset}&wait={wait}",
                timeout=wait + 60)
            if frame["logs"]:
                yield frame["logs"]
            offset = int(frame["offset"])
            if frame["done"]:
                return

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's output as it comes, until the job ends.

        >>> async for lines in client.tail_job_logs(sid):
        ...     print(lines, end="")
        """
        it = self._iter_logs(job_id)
        done = object()
        while True:
            chunk = await asyncio.to_thread(next, it, done)
            if chunk is done:
                return
            yield chunk  # type: ignore[misc]

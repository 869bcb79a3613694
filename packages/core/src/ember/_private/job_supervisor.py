"""The job supervisor: a detached, named actor per submitted job that runs its
entrypoint on the node it was placed on (the head, or a node with the job's
``entrypoint_num_cpus/gpus/resources``) and records what happens to it.

``run`` (the actor's long call) prepares the job's runtime_env on this node
(``runtime_env.setup.prepare``: unpacked working_dir, py_modules, pip venv),
starts the entrypoint through ``job_runner`` in a process group of its own,
with the cluster's address and token, ``EMBER_JOB_RUNTIME_ENV`` and
``EMBER_JOB_SUBMISSION_ID`` in its environment, its stdout+stderr in
``session_*/logs/job-driver-<id>.log`` on this node, and writes the job's record
(RUNNING, then SUCCEEDED/FAILED/STOPPED with the exit code) to the control
service's KV. ``stop`` (a concurrent call: the actor is threaded) SIGTERMs the
group, then SIGKILLs it after a grace period. The job's driver exits with it,
so the existing owner-death path cleans up its tasks and non-detached actors.

>>> # created by job_manager.JobManager.submit; not used directly
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from . import job_state

# Variables a worker gets from its node manager that describe *that worker*: a
# driver started from it must not see them (it would take itself for a worker).
_WORKER_ONLY_ENV = ("EMBER_NODE_MANAGER_ADDRESS", "EMBER_RUNTIME_ENV_HASH", "EMBER_WATCH_FD",
                    "EMBER_GCS_ADDRESS", "EMBER_NODE_ID", "EMBER_SHM_DIR", "EMBER_SHM_PREFIX",
                    "EMBER_NODE_IP", "EMBER_WORKER_ID")
RUNTIME_ENV_VAR = "EMBER_JOB_RUNTIME_ENV"
SUBMISSION_ID_VAR = "EMBER_JOB_SUBMISSION_ID"


def now_ms() -> int:
    return int(time.time() * 1000)


def entrypoint_env(base: dict[str, str], *, address: str, token: str, submission_id: str,
                   runtime_env: dict | None, env_vars: dict[str, str],
                   pythonpath: list[str], python: str | None) -> dict[str, str]:
    """The entrypoint's environment (pure): ``base`` without the worker's own
    variables, plus the cluster's address and token, the job's runtime_env (for
    the driver's ``ember.init``), its env_vars, and its interpreter first on PATH
    so ``python`` in the entrypoint is the job's.

    >>> env = entrypoint_env({"PATH": "/usr/bin", "EMBER_NODE_ID": "x"}, address="h:1",
    ...     token="t", submission_id="s", runtime_env=None, env_vars={}, pythonpath=[],
    ...     python="/venv/bin/python")
    >>> env["EMBER_ADDRESS"], env["PATH"], "EMBER_NODE_ID" in env
    ('h:1', '/venv/bin:/usr/bin', False)
    """
    from .http_auth import TOKEN_ENV
    env = {k: v for k, v in base.items() if k not in _WORKER_ONLY_ENV}
    env.update(env_vars)
    env["EMBER_ADDRESS"] = address
    env[TOKEN_ENV] = token
    env[SUBMISSION_ID_VAR] = submission_id
    env[RUNTIME_ENV_VAR] = json.dumps(runtime_env or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            [*pythonpath, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    if python:
        bindir = os.path.dirname(python)
        path = env.get("PATH", "").split(os.pathsep) if env.get("PATH") else []
        env["PATH"] = os.pathsep.join([bindir, *[p for p in path if p != bindir]])
    return env


class _Prepared:
    def __init__(self, cwd: str | None, python: str, pythonpath: list[str],
                 env_vars: dict[str, str]) -> None:
        self.cwd, self.python, self.pythonpath, self.env_vars = cwd, python, pythonpath, env_vars


def prepare_runtime_env(runtime_env: dict | None, session_dir: str,
                        kv_get: Callable[[str], bytes | None]) -> Any:
    """Set the job's runtime_env up on this node (``runtime_env.setup.prepare``).
    Without it (an Ember that lacks the runtime_env package), env_vars only."""
    runtime_env = runtime_env or {}
    try:
        from .runtime_env import setup
    except ImportError:
        setup = None   # type: ignore[assignment]
    if setup is not None and hasattr(setup, "prepare"):
        timeout = (runtime_env.get("config") or {}).get("setup_timeout_seconds")
        return setup.prepare(runtime_env, session_dir=session_dir, kv_get=kv_get,
                             timeout=timeout)
    if set(runtime_env) - {"env_vars", "config"}:
        raise RuntimeError(f"this Ember cannot set up runtime_env fields "
                           f"{sorted(set(runtime_env) - {'env_vars', 'config'})}")
    return _Prepared(None, sys.executable, [], dict(runtime_env.get("env_vars") or {}))


class JobSupervisor:
    """Runs one job's entrypoint (see the module docstring). Created by the job server
    as ``ember.remote(JobSupervisor).options(name=..., lifetime="detached",
    max_concurrency=4, ...)``."""

    def __init__(self, submission_id: str, entrypoint: str, runtime_env: dict | None) -> None:
        from . import worker_state
        self._core = worker_state.require_core()
        self.submission_id = submission_id
        self.entrypoint = entrypoint
        self.runtime_env = runtime_env
        self._proc: subprocess.Popen | None = None
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._run_started = False
        self._run_done = threading.Event()

    # ---------------------------------------------------------------- KV
    def _kv(self, method: str, **fields: Any) -> Any:
        from .protos import ember_pb2 as pb
        return getattr(self._core.gcs, method)(pb.KVRequest(ns=job_state.KV_NS, **fields),
                                               timeout=60)

    def _record(self) -> dict[str, Any] | None:
        reply = self._kv("KVGet", key=self.submission_id.encode())
        return job_state.decode(reply.value) if reply.found else None

    def _move(self, status: str, **fields: Any) -> bool:
        """Write the job's next status; False if it has already ended (stopped while
        this was starting) or was deleted."""
        record = self._record()
        if record is None:
            return False
        moved = job_state.advance(record, status, now_ms(), **fields)
        if moved is None:
            return False
        self._kv("KVPut", key=self.submission_id.encode(), value=job_state.encode(moved),
                 overwrite=True)
        return True

    def _package(self, uri: str) -> bytes | None:
        from .protos import ember_pb2 as pb
        reply = self._core.gcs.KVGet(pb.KVRequest(ns=job_state.PACKAGES_NS, key=uri.encode()),
                                     timeout=60)
        return reply.value if reply.found else None

    # ---------------------------------------------------------------- calls
    def ping(self) -> str:
        """The node this supervisor runs on."""
        return self._core.node_id

    def run(self) -> dict[str, Any] | None:
        """Prepare, run the entrypoint to its end and record the outcome; returns the
        final record (None if the job was deleted meanwhile).

        Idempotent: a second call (a restarted job server adopting this job) waits
        for the first one's end instead of starting the entrypoint again."""
        with self._lock:
            first, self._run_started = not self._run_started, True
        if not first:
            self._run_done.wait()
            return self._record()
        try:
            return self._run_once()
        finally:
            self._run_done.set()

    def _run_once(self) -> dict[str, Any] | None:
        session_dir = os.environ.get("EMBER_SESSION_DIR", "")
        log_path = os.path.join(session_dir, "logs", job_state.log_name(self.submission_id))
        record = self._record()
        if record is None or record["status"] != "PENDING" or self._stop_requested.is_set():
            return record
        try:
            prepared = prepare_runtime_env(self.runtime_env, session_dir, self._package)
        except Exception as e:  # noqa: BLE001 - any setup failure fails the job, with its text
            with open(log_path, "ab") as log:
                log.write(f"runtime_env setup failed: {e}\n".encode())
            self._move("FAILED", message=f"runtime_env setup failed: {e}",
                       error_type="RUNTIME_ENV_SETUP_FAILED", driver_node_id=self._core.node_id)
            return self._record()
        env = entrypoint_env(dict(os.environ), address=self._core.gcs_address,
                             token=self._core.token, submission_id=self.submission_id,
                             runtime_env=self.runtime_env, env_vars=prepared.env_vars,
                             pythonpath=list(prepared.pythonpath), python=prepared.python)
        watch_r, watch_w = os.pipe()
        try:
            with self._lock:
                if self._stop_requested.is_set():
                    os.close(watch_w)
                    return self._record()
                with open(log_path, "ab") as log:
                    self._proc = subprocess.Popen(
                        [sys.executable, "-m", "ember._private.job_runner", "--watch-fd",
                         str(watch_r), "--grace", str(job_state.STOP_GRACE_S), "--",
                         self.entrypoint],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                        cwd=prepared.cwd or None, pass_fds=(watch_r,), start_new_session=True)
        except OSError as e:
            os.close(watch_w)
            self._move("FAILED", message=f"the job's entrypoint could not be started: {e}",
                       driver_node_id=self._core.node_id)
            return self._record()
        finally:
            os.close(watch_r)
        proc = self._proc
        try:
            if not self._move("RUNNING", message="Job is currently running.",
                              driver_node_id=self._core.node_id,
                              driver_info={"pid": str(proc.pid), "node_ip_address":
                                           self._core.address.rpartition(":")[0]}):
                self.stop()      # stopped (or deleted) while it was starting
            code = proc.wait()
        finally:
            os.close(watch_w)   # the runner ends the group if anything is left
        status, message = job_state.outcome(code, self._stop_requested.is_set(),
                                            _tail(log_path))
        self._move(status, message=message, driver_exit_code=code,
                   driver_node_id=self._core.node_id)
        return self._record()

    def stop(self) -> bool:
        """SIGTERM the entrypoint's process group, SIGKILL after the grace period;
        False if it had already ended."""
        with self._lock:
            self._stop_requested.set()
            proc = self._proc
        if proc is None:
            return True          # not started: run() will not start it
        if proc.poll() is not None:
            return False
        _signal_group(proc.pid, signal.SIGTERM)

        def escalate() -> None:
            try:
                proc.wait(job_state.STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)

        threading.Thread(target=escalate, name="ember-job-stop", daemon=True).start()
        return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: str, limit: int = 20000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""

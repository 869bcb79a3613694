"""The submitting side: upload a process's packages and key its tasks' envs.

``ember.init(runtime_env=...)`` uploads the job-level env once
(``upload_job_env``); a task's or actor's own runtime_env is uploaded the
first time it is submitted and merged over the job's as Ray merges them
(``resolve``), giving the (hash, bytes) its lease requests carry.

>>> env_hash, env_bytes = resolve(core, {"py_modules": ["./mypkg"]})
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import JOB_RUNTIME_ENV_ENV, WORKER_RUNTIME_ENV_ENV, spec  # noqa: F401 - re-exported
from .packaging import PACKAGE_KV_NS, upload_local_packages


def kv_functions(gcs: Any) -> tuple[Any, Any]:
    """(put, exists) over the control service's package namespace."""
    from ..protos import ember_pb2 as pb

    def put(uri: str, data: bytes) -> None:
        gcs.KVPut(pb.KVRequest(ns=PACKAGE_KV_NS, key=uri.encode(), value=data,
                               overwrite=False), timeout=300)

    def exists(uri: str) -> bool:
        reply = gcs.KVKeys(pb.KVRequest(ns=PACKAGE_KV_NS, key=uri.encode()), timeout=60)
        return uri.encode() in reply.keys

    return put, exists


def kv_getter(gcs: Any) -> Any:
    """``kv_get(uri)`` for setup.prepare over the control service."""
    from ..protos import ember_pb2 as pb

    def get(uri: str) -> bytes | None:
        reply = gcs.KVGet(pb.KVRequest(ns=PACKAGE_KV_NS, key=uri.encode()), timeout=300)
        return reply.value if reply.found else None

    return get


def job_env_from_environment() -> dict[str, Any] | None:
    """The job-level runtime_env a job supervisor handed this driver, if any."""
    import json
    raw = os.environ.get(JOB_RUNTIME_ENV_ENV)
    if not raw:
        return None
    try:
        env = json.loads(raw)
    except ValueError:
        raise ValueError(f"{JOB_RUNTIME_ENV_ENV} is not valid JSON: {raw[:200]!r}") from None
    if not isinstance(env, dict):
        raise ValueError(f"{JOB_RUNTIME_ENV_ENV} must be a JSON object, got {raw[:200]!r}")
    return env


def upload_job_env(gcs: Any, env: Mapping[str, Any] | None) -> dict[str, Any]:
    """``env`` with its local packages uploaded (the job-level env of a driver)."""
    if not env:
        return {}
    if not any(env.get(k) for k in ("working_dir", "py_modules")):
        return dict(env)
    put, exists = kv_functions(gcs)
    return upload_local_packages(dict(env), put=put, exists=exists)


def resolve(core: Any, task_env: Mapping[str, Any] | None) -> tuple[str, bytes]:
    """(env hash, lease bytes) for work submitted with ``task_env`` under ``core``'s job env."""
    from ..options import merge_runtime_env
    job_env = core.runtime_env
    if task_env and any(task_env.get(k) for k in spec.PROCESS_KEYS + ("config",)):
        uploaded = upload_job_env(core.gcs, task_env)
        merged = merge_runtime_env(job_env, uploaded)
    else:
        merged = job_env
    return spec.env_hash(merged), spec.encode(merged)


__all__ = ["JOB_RUNTIME_ENV_ENV", "WORKER_RUNTIME_ENV_ENV", "job_env_from_environment",
           "kv_functions", "kv_getter", "resolve", "upload_job_env"]

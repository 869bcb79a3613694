"""What the Jobs API returns: :class:`JobStatus`, :class:`JobInfo`, :class:`JobDetails`
(Ray's ``ray.job_submission`` models, same names and fields, as plain dataclasses).

Times are milliseconds since the epoch, as in Ray.

>>> JobStatus.SUCCEEDED.is_terminal(), JobStatus("RUNNING").is_terminal()
(True, False)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    """The state of a submitted job.

    PENDING (accepted, entrypoint not started yet: waiting for its resources or
    runtime_env), RUNNING, then one of STOPPED (``stop_job``), SUCCEEDED (exit
    code 0) or FAILED (non-zero exit, failed setup, or its supervisor died).

    >>> JobStatus.STOPPED.is_terminal()
    True
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return str(self.value)

    def is_terminal(self) -> bool:
        """Whether the job has ended (its status will not change again)."""
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobType(str, Enum):
    """Ray's job types; every job of the Jobs API is a SUBMISSION."""

    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"


@dataclass
class JobInfo:
    """A submitted job, as kept by the cluster (Ray's ``JobInfo``).

    >>> JobInfo(status=JobStatus.PENDING, entrypoint="python x.py").status
    <JobStatus.PENDING: 'PENDING'>
    """

    status: JobStatus
    entrypoint: str
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] | None = None
    runtime_env: dict[str, Any] | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None


@dataclass
class JobDetails(JobInfo):
    """A job as the job server lists it (Ray's ``JobDetails``): :class:`JobInfo` plus
    ``type``, ``submission_id`` and ``job_id``.

    >>> client.get_job_info("ember_submit_0a1b2c3d4e5f6a7b").submission_id
    'ember_submit_0a1b2c3d4e5f6a7b'
    """

    type: JobType = JobType.SUBMISSION
    job_id: str | None = None
    submission_id: str | None = None
    driver_info: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as their names)."""
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        out["type"] = self.type.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobDetails":
        """The inverse of :meth:`to_dict`; unknown keys (a newer server) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["status"] = JobStatus(kwargs["status"])
        kwargs["type"] = JobType(kwargs.get("type") or "SUBMISSION")
        return cls(**kwargs)

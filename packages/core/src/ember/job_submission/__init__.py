"""Submit jobs to a cluster and follow them (Ray's ``ray.job_submission``).

A job is a shell command (``python script.py``) that the cluster's job server runs
on the head, or on a node with the resources it asks for, connected to the cluster
(``ember.init()`` in it joins it), with its runtime_env (working_dir, py_modules,
pip, env_vars) set up there. Its output is kept and can be streamed.

>>> from ember.job_submission import JobSubmissionClient, JobStatus
>>> client = JobSubmissionClient("http://127.0.0.1:8265")
>>> sid = client.submit_job(entrypoint="python -c 'print(1)'")
>>> client.get_job_status(sid) in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED)
True

The same from the command line: ``ember job submit -- python script.py``.
"""
from __future__ import annotations

from .client import JobSubmissionClient
from .models import JobDetails, JobInfo, JobStatus, JobType

__all__ = ["JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient", "JobType"]

"""Pure rules of the Jobs API: submission ids, requests, status transitions,
outcomes and the framing of log tails. No I/O here: the job server
(job_server.py), the supervisor (job_supervisor.py) and the client all use these.

A job's record is a JSON object (``JobDetails.to_dict()``) kept in the control
service's KV, namespace :data:`KV_NS`, key = submission id; the KV is written
through to SQLite, so records survive a control-service restart.

>>> rec = new_record("ember_submit_x", {"entrypoint": "echo hi"}, now_ms=1)
>>> advance(rec, "RUNNING", now_ms=2)["status"]
'RUNNING'
>>> done = advance(advance(rec, "RUNNING", now_ms=2), "SUCCEEDED", now_ms=3)
>>> done["end_time"], advance(done, "RUNNING", now_ms=4)
(3, None)
"""
from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any

KV_NS = "job_submission"                  # the jobs' records
PACKAGES_NS = "runtime_env_packages"      # uploaded working_dir/py_modules zips (key = URI)
DRIVERS_NS = "job_submission_drivers"     # submission id -> its first driver's job id (hex)
ID_PREFIX = "ember_submit_"
SUPERVISOR_NAMESPACE = "_ember_jobs"      # named supervisor actors live here
STOP_GRACE_S = 3.0                        # SIGTERM, then SIGKILL (Ray: RAY_JOB_STOP_WAIT_TIME_S)
_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
TERMINAL = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
# Which status may follow which: a record only moves forward, and never leaves an end state.
_NEXT = {
    "PENDING": frozenset({"RUNNING", "STOPPED", "FAILED"}),
    "RUNNING": frozenset({"STOPPED", "SUCCEEDED", "FAILED"}),
}
_SUBMIT_FIELDS = {"entrypoint", "submission_id", "runtime_env", "metadata",
                  "entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory",
                  "entrypoint_resources", "job_id"}


def new_submission_id() -> str:
    """A fresh id, ``ember_submit_`` + 16 random hex digits.

    >>> new_submission_id().startswith("ember_submit_")
    True
    """
    return ID_PREFIX + secrets.token_hex(8)


def check_submission_id(submission_id: Any) -> str:
    """``submission_id`` if it is usable (letters, digits, ``_ . -``; 1-128 long), else
    ValueError saying what is allowed.

    >>> check_submission_id("nightly-2026.11.27")
    'nightly-2026.11.27'
    >>> check_submission_id("a b")
    Traceback (most recent call last):
    ValueError: submission_id 'a b' is invalid: use 1-128 letters, digits, '_', '.' or '-'
    """
    if not isinstance(submission_id, str) or not _ID_RE.match(submission_id):
        raise ValueError(f"submission_id {submission_id!r} is invalid: use 1-128 letters, "
                         "digits, '_', '.' or '-'")
    return submission_id


def log_name(submission_id: str) -> str:
    """The job's log file in its node's ``session_*/logs`` (Ray's name).

    >>> log_name("ember_submit_1")
    'job-driver-ember_submit_1.log'
    """
    return f"job-driver-{check_submission_id(submission_id)}.log"


def is_job_log(name: str) -> bool:
    """Whether a log file name is a job's (served by each node's LogService)."""
    return name.startswith("job-driver-") and name.endswith(".log") and \
        bool(_ID_RE.match(name[len("job-driver-"):-len(".log")]))


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_request(body: Any) -> dict[str, Any]:
    """A submit request (the JSON the client posts) checked and normalized; ValueError
    naming the field and the fix otherwise.

    >>> check_request({"entrypoint": "python x.py", "entrypoint_num_cpus": 1})["entrypoint_num_cpus"]
    1.0
    >>> check_request({"entrypoint": ""})
    Traceback (most recent call last):
    ValueError: entrypoint must be a non-empty shell command, e.g. "python script.py"
    """
    if not isinstance(body, dict):
        raise ValueError("a job submission must be a JSON object with at least an entrypoint")
    unknown = sorted(set(body) - _SUBMIT_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)} in the job submission; "
                         f"known: {', '.join(sorted(_SUBMIT_FIELDS))}")
    entrypoint = body.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise ValueError('entrypoint must be a non-empty shell command, e.g. "python script.py"')
    out: dict[str, Any] = {"entrypoint": entrypoint}
    sid = body.get("submission_id") or body.get("job_id")
    out["submission_id"] = check_submission_id(sid) if sid else new_submission_id()
    runtime_env = body.get("runtime_env")
    if runtime_env is not None and not isinstance(runtime_env, dict):
        raise ValueError(f"runtime_env must be a JSON object (a dict), got {runtime_env!r}")
    out["runtime_env"] = runtime_env or None
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ValueError(f"metadata must map strings to strings, got {metadata!r}")
    out["metadata"] = metadata or None
    for key in ("entrypoint_num_cpus", "entrypoint_num_gpus"):
        out[key] = _number(key, body.get(key))
    memory = _number("entrypoint_memory", body.get("entrypoint_memory"))
    out["entrypoint_memory"] = int(memory) if memory is not None else None
    resources = body.get("entrypoint_resources")
    if resources is not None:
        if not isinstance(resources, dict) or not resources:
            raise ValueError(f"entrypoint_resources must be a non-empty dict of resource name "
                             f"to quantity, e.g. {{\"accel\": 1}}, got {resources!r}")
        for name, qty in resources.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"entrypoint_resources cannot name {name!r}: use "
                                 f"entrypoint_num_{name.lower()}s / entrypoint_memory")
            _number(f"entrypoint_resources[{name!r}]", qty)
        resources = {k: float(v) for k, v in resources.items()}
    out["entrypoint_resources"] = resources
    return out


def new_record(submission_id: str, request: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The PENDING record of a job just accepted (``request``: from :func:`check_request`)."""
    return {
        "type": "SUBMISSION", "submission_id": submission_id, "job_id": None,
        "status": "PENDING", "entrypoint": request["entrypoint"],
        "message": "Job has not started yet. It may be waiting for resources "
                   "(CPUs, GPUs, custom resources) or for its runtime_env to be set up.",
        "error_type": None, "start_time": now_ms, "end_time": None,
        "metadata": request.get("metadata"), "runtime_env": request.get("runtime_env"),
        "entrypoint_num_cpus": request.get("entrypoint_num_cpus"),
        "entrypoint_num_gpus": request.get("entrypoint_num_gpus"),
        "entrypoint_memory": request.get("entrypoint_memory"),
        "entrypoint_resources": request.get("entrypoint_resources"),
        "driver_agent_http_address": None, "driver_node_id": None, "driver_exit_code": None,
        "driver_info": None,
    }


def can_move(current: str, new: str) -> bool:
    """Whether a job in ``current`` may move to ``new``.

    >>> can_move("PENDING", "RUNNING"), can_move("FAILED", "RUNNING"), can_move("RUNNING", "PENDING")
    (True, False, False)
    """
    return new in _NEXT.get(current, frozenset())


def advance(record: dict[str, Any], status: str, now_ms: int, **fields: Any
            ) -> dict[str, Any] | None:
    """A copy of ``record`` moved to ``status`` with ``fields`` set (an end state also
    gets ``end_time``), or None when that move is not allowed (it has already ended,
    or the status would go backwards)."""
    if not can_move(record["status"], status):
        return None
    out = {**record, **fields, "status": status}
    if status in TERMINAL:
        out["end_time"] = now_ms
    return out


def outcome(exit_code: int, stop_requested: bool, log_tail: str = "") -> tuple[str, str]:
    """(status, message) for an entrypoint that exited with ``exit_code``.

    >>> outcome(0, False)
    ('SUCCEEDED', 'Job finished successfully.')
    >>> outcome(1, False, "Traceback ...")[1].splitlines()[0]
    'Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):'
    >>> outcome(-15, True)[0]
    'STOPPED'
    """
    if stop_requested:
        return "STOPPED", "Job was intentionally stopped."
    if exit_code == 0:
        return "SUCCEEDED", "Job finished successfully."
    tail = log_tail[-20000:]
    return "FAILED", ("Job entrypoint command failed with exit code "
                      f"{exit_code}, last available logs (truncated to 20,000 chars):\n{tail}")


SUPERVISOR_DIED_MESSAGE = "Job supervisor actor died"   # Ray's words


def reconcile(status: str, supervisor: str | None) -> tuple[str, str | None]:
    """What a (re)started job server does with a job it is not watching:
    ("fail", why), ("adopt", None) (watch its live supervisor) or ("keep", None).

    ``supervisor`` is the supervisor actor's state name (actor_directory's
    PENDING/ALIVE/RESTARTING/DEAD), None when no actor has its name. A job that
    has not ended and has no live supervisor never will: nothing else records
    its end, and its runner has ended its entrypoint (it watches the supervisor).

    >>> reconcile("RUNNING", "DEAD")[0], reconcile("PENDING", None)[0]
    ('fail', 'fail')
    >>> reconcile("RUNNING", "ALIVE"), reconcile("SUCCEEDED", None)
    (('adopt', None), ('keep', None))
    """
    if status in TERMINAL:
        return "keep", None
    if supervisor is None or supervisor == "DEAD":
        gone = "is gone" if supervisor is None else "died"
        return "fail", (f"{SUPERVISOR_DIED_MESSAGE}: the job's supervisor {gone} while the "
                        "job server was not watching it (found when the job server "
                        "started or checked); the job's entrypoint was ended with it")
    return "adopt", None


def encode(record: dict[str, Any]) -> bytes:
    """A record as the KV stores it."""
    return json.dumps(record, sort_keys=True).encode()


def decode(value: bytes) -> dict[str, Any]:
    """The inverse of :func:`encode`."""
    return json.loads(value.decode())


# ---------------------------------------------------------------- log tails

def utf8_complete(data: bytes) -> int:
    """How many leading bytes of ``data`` end on a whole UTF-8 character (a chunk cut
    in the middle of one keeps its first bytes for the next read).

    >>> utf8_complete("é".encode()[:1]), utf8_complete(b"ab"), utf8_complete("aé".encode())
    (0, 2, 3)
    """
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b < 0x80:                      # ASCII: whole
            return n
        if b >= 0xC0:                     # a lead byte: is its sequence complete?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return n if back >= need else n - back
    return n                              # continuation bytes only: not ours to fix


def tail_frame(data: bytes, offset: int, done: bool) -> dict[str, Any]:
    """One answer of ``GET /api/jobs/<id>/logs/tail``: the text of ``data`` (read from
    byte ``offset`` of the log), the offset to ask from next, and whether the job has
    ended and everything was sent. A character split at the end is left for the next
    answer (unless the job has ended).

    >>> tail_frame(b"hi\\n", 0, False)
    {'logs': 'hi\\n', 'offset': 3, 'done': False}
    >>> tail_frame("é".encode()[:1], 3, False)
    {'logs': '', 'offset': 3, 'done': False}
    """
    keep = len(data) if done else utf8_complete(data)
    return {"logs": data[:keep].decode("utf-8", "replace"), "offset": offset + keep,
            "done": done and keep == len(data)}

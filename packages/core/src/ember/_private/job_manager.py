"""The job server's cluster side: submit, watch, stop and delete jobs, read their
logs, and keep uploaded runtime_env packages (used by job_server.py's HTTP
handlers; one per job server process).

The job server process connects to its cluster as a driver (namespace
``_ember_jobs``, no log printing) on the first request that needs it, so a head
that never runs a job pays nothing but an idle HTTP server. Each job gets a
detached, named supervisor actor (job_supervisor.py) placed on the head, or
where ``entrypoint_num_cpus/gpus/memory/resources`` fit; a thread here waits on
each supervisor's ``run`` call and marks the job FAILED if the supervisor died
before recording an end state (its node failed), then removes the actor.

A job server that was restarted watches nothing at first: ``reconcile`` (when it
starts, if any job has not ended, and every RECONCILE_INTERVAL_S once connected)
fails each unwatched, unfinished job whose supervisor is dead or missing, and
adopts each whose supervisor lives (its ``run`` is idempotent: calling it again
waits for the first call's end), so every job still reaches an end state.

>>> m = JobManager("127.0.0.1:6379", token)
>>> sid = m.submit({"entrypoint": "echo hi"})
>>> m.get(sid)["status"]
'PENDING'
"""
from __future__ import annotations

import builtins
import logging
import threading
import time
from typing import Any

from . import job_state
from .job_supervisor import JobSupervisor, now_ms

logger = logging.getLogger("ember.jobs")

LOG_READ_LIMIT = 4 << 20          # bytes per logs/tail answer
TAIL_POLL_S = 0.2
RECONCILE_INTERVAL_S = 10.0       # unwatched jobs' supervisors checked this often


class JobNotFound(KeyError):
    """No job with this submission id (HTTP 404)."""


class JobExists(ValueError):
    """A job with this submission id was already submitted (HTTP 409)."""


class JobManager:
    def __init__(self, gcs_address: str, token: str) -> None:
        self.gcs_address = gcs_address
        self.token = token
        self._lock = threading.Lock()
        self._connected = False
        self._watched: dict[str, tuple[Any, Any]] = {}   # submission id -> (actor, run ref)
        self._watch_lock = threading.Lock()
        self._stopping = threading.Event()
        self._channels: dict[str, Any] = {}
        # Jobs between their PENDING record and their watch: no supervisor yet, and
        # not a job to fail.
        self._submitting: set[str] = set()

    # ---------------------------------------------------------------- connection
    def _core(self) -> Any:
        """This process's driver core, connecting on first use."""
        from . import worker_state
        with self._lock:
            if not self._connected:
                import os

                import ember
                from .http_auth import TOKEN_ENV
                os.environ[TOKEN_ENV] = self.token
                ember.init(address=self.gcs_address, namespace=job_state.SUPERVISOR_NAMESPACE,
                           log_to_driver=False)
                self._connected = True
                threading.Thread(target=self._watch_loop, name="ember-job-watch",
                                 daemon=True).start()
            return worker_state.require_core()

    def close(self) -> None:
        self._stopping.set()
        for chan in self._channels.values():
            chan.close()
        if self._connected:
            import ember
            ember.shutdown()

    def _kv(self, method: str, ns: str = job_state.KV_NS, **fields: Any) -> Any:
        from .protos import ember_pb2 as pb
        return getattr(self._core().gcs, method)(pb.KVRequest(ns=ns, **fields), timeout=60)

    # ---------------------------------------------------------------- records
    def get(self, submission_id: str) -> dict[str, Any]:
        """The job's record; JobNotFound if there is none."""
        job_state.check_submission_id(submission_id)
        reply = self._kv("KVGet", key=submission_id.encode())
        if not reply.found:
            raise JobNotFound(f"no job with submission id {submission_id!r}: list them with "
                              "`ember job list`")
        return self._with_job_id(job_state.decode(reply.value))

    def _with_job_id(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with ``job_id``: its entrypoint's first driver (api.py records it)."""
        if record.get("job_id") is None and record["status"] != "PENDING":
            found = self._kv("KVGet", ns=job_state.DRIVERS_NS,
                             key=record["submission_id"].encode())
            if found.found:
                record = {**record, "job_id": found.value.decode()}
        return record

    def list(self) -> list[dict[str, Any]]:
        """Every job's record, oldest first."""
        out = []
        for key in self._kv("KVKeys", key=b"").keys:
            reply = self._kv("KVGet", key=key)
            if reply.found:
                out.append(self._with_job_id(job_state.decode(reply.value)))
        return sorted(out, key=lambda r: (r.get("start_time") or 0, r["submission_id"]))

    def _write(self, record: dict[str, Any]) -> None:
        self._kv("KVPut", key=record["submission_id"].encode(),
                 value=job_state.encode(record), overwrite=True)

    def _move(self, submission_id: str, status: str, **fields: Any) -> bool:
        try:
            record = self.get(submission_id)
        except JobNotFound:
            return False
        moved = job_state.advance(record, status, now_ms(), **fields)
        if moved is None:
            return False
        self._write(moved)
        return True

    # ---------------------------------------------------------------- submit
    def submit(self, body: Any) -> str:
        """Accept a job (see job_state.check_request) and start its supervisor; returns
        its submission id. ValueError for a bad request, JobExists for a taken id."""
        request = job_state.check_request(body)
        sid = request["submission_id"]
        with self._watch_lock:
            self._submitting.add(sid)
        try:
            return self._submit(sid, request)
        finally:
            with self._watch_lock:
                self._submitting.discard(sid)

    def _submit(self, sid: str, request: dict[str, Any]) -> str:
        record = job_state.new_record(sid, request, now_ms())
        added = self._kv("KVPut", key=sid.encode(), value=job_state.encode(record),
                         overwrite=False).added
        if not added:
            raise JobExists(f"a job with submission id {sid!r} already exists: pick another "
                            "submission_id, or delete the old job first (`ember job delete "
                            f"{sid}`, once it has ended)")
        try:
            actor = self._supervisor_class(request).remote(sid, request["entrypoint"],
                                                           request["runtime_env"])
            ref = actor.run.remote()
        except Exception as e:  # noqa: BLE001 - the job fails, with why
            logger.exception("could not start the supervisor of job %s", sid)
            self._move(sid, "FAILED", message=f"the job's supervisor could not be started: {e}",
                       error_type="JOB_SUPERVISOR_ACTOR_START_FAILURE")
            return sid
        with self._watch_lock:
            self._watched[sid] = (actor, ref)
        return sid

    def _supervisor_class(self, request: dict[str, Any]) -> Any:
        import ember
        from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .node import CLUSTER_KV_NS
        options: dict[str, Any] = {
            "name": supervisor_name(request["submission_id"]),
            "namespace": job_state.SUPERVISOR_NAMESPACE, "lifetime": "detached",
            "max_concurrency": 4, "num_cpus": request["entrypoint_num_cpus"] or 0,
            "max_restarts": 0,
        }
        if request["entrypoint_num_gpus"]:
            options["num_gpus"] = request["entrypoint_num_gpus"]
        if request["entrypoint_memory"]:
            options["memory"] = request["entrypoint_memory"]
        if request["entrypoint_resources"]:
            options["resources"] = request["entrypoint_resources"]
        wants_resources = any(request[k] for k in (
            "entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory",
            "entrypoint_resources"))
        if not wants_resources:
            # As Ray: without resource requests the entrypoint runs on the head.
            head = self._kv("KVGet", ns=CLUSTER_KV_NS, key=b"head_node_id")
            if head.found:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    head.value.decode(), soft=True)
        return ember.remote(JobSupervisor).options(**options)

    def _supervisor(self, submission_id: str) -> Any:
        """The job's live supervisor actor, or None."""
        import ember
        with self._watch_lock:
            watched = self._watched.get(submission_id)
        if watched is not None:
            return watched[0]
        try:
            return ember.get_actor(supervisor_name(submission_id),
                                   namespace=job_state.SUPERVISOR_NAMESPACE)
        except ValueError:
            return None

    # ---------------------------------------------------------------- watching
    def start_reconciling(self) -> None:
        """When the job server starts: if any job has not ended (a job server before
        this one left it), connect now, so reconcile settles it without waiting for
        a request. A head whose jobs have all ended still pays nothing."""
        def check() -> None:
            try:
                if self._unfinished_jobs_exist():
                    self._core()           # starts the watch loop, which reconciles first
            except Exception as e:  # noqa: BLE001 - the periodic pass retries once connected
                logger.warning("could not check for unfinished jobs at start-up: %s", e)
        threading.Thread(target=check, name="ember-job-reconcile", daemon=True).start()

    def _unfinished_jobs_exist(self, timeout: float = 30.0) -> bool:
        """Whether any job record has not ended, read with a bare control-service
        client (no driver connection)."""
        from . import rpc
        from .protos import ember_pb2 as pb
        from .protos import ember_pb2_grpc as pbg
        chan = rpc.channel(self.gcs_address)
        try:
            stub = rpc.Stub(chan, pbg.ControlServiceStub, self.token)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    keys = stub.KVKeys(pb.KVRequest(ns=job_state.KV_NS, key=b""),
                                       timeout=5).keys
                    break
                except Exception:  # noqa: BLE001 - not up yet: try again until the deadline
                    if time.monotonic() >= deadline or self._stopping.is_set():
                        raise
                    time.sleep(0.5)
            for key in keys:
                reply = stub.KVGet(pb.KVRequest(ns=job_state.KV_NS, key=key), timeout=5)
                if reply.found and \
                        job_state.decode(reply.value)["status"] not in job_state.TERMINAL:
                    return True
            return False
        finally:
            chan.close()

    def reconcile(self) -> builtins.list[str]:
        """Settle every unfinished job this server is not watching (see the module
        docstring): FAILED if its supervisor is dead or missing, watched again if it
        lives. Returns the submission ids it failed."""
        import ember

        from .actor_directory import STATE_NAMES
        from .protos import ember_pb2 as pb
        failed: builtins.list[str] = []
        gcs = self._core().gcs
        for record in self.list():
            sid = record["submission_id"]
            if record["status"] in job_state.TERMINAL:
                continue
            with self._watch_lock:
                if sid in self._watched or sid in self._submitting:
                    continue
            info = gcs.GetActor(pb.GetActorRequest(
                name=supervisor_name(sid), namespace=job_state.SUPERVISOR_NAMESPACE), timeout=30)
            state = STATE_NAMES.get(info.state, "DEAD") if info.found else None
            action, why = job_state.reconcile(record["status"], state)
            if action == "fail":
                with self._watch_lock:
                    if sid in self._watched or sid in self._submitting:
                        continue       # submitted by this server meanwhile
                if self._move(sid, "FAILED", message=why, error_type="JOB_SUPERVISOR_DIED"):
                    logger.warning("job %s failed: %s", sid, why)
                    failed.append(sid)
            elif action == "adopt":
                try:
                    actor = ember.get_actor(supervisor_name(sid),
                                            namespace=job_state.SUPERVISOR_NAMESPACE)
                except ValueError:
                    continue           # died just now: the next pass fails the job
                with self._watch_lock:
                    if sid not in self._watched:
                        self._watched[sid] = (actor, actor.run.remote())
                logger.info("job %s: watching its supervisor again", sid)
        return failed

    def _watch_loop(self) -> None:
        import ember
        next_reconcile = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + RECONCILE_INTERVAL_S
                try:
                    self.reconcile()
                except Exception as e:  # noqa: BLE001 - control service away: next pass
                    logger.info("reconciling jobs failed (will retry): %s", e)
            with self._watch_lock:
                refs = {ref: sid for sid, (_, ref) in self._watched.items()}
            if not refs:
                self._stopping.wait(0.5)
                continue
            try:
                ready, _ = ember.wait(list(refs), num_returns=1, timeout=1.0)
            except Exception:  # noqa: BLE001 - disconnected while shutting down
                self._stopping.wait(0.5)
                continue
            for ref in ready:
                self._settle(refs[ref], ref)

    def _settle(self, sid: str, ref: Any) -> None:
        """A supervisor's ``run`` returned (or its actor died): make sure the job has an
        end state, then let the actor go."""
        import ember
        try:
            ember.get(ref)
        except Exception as e:  # noqa: BLE001 - its actor died
            if self._move(sid, "FAILED", message=f"{job_state.SUPERVISOR_DIED_MESSAGE} before "
                          f"the job ended (did its node fail?): {e}",
                          error_type="JOB_SUPERVISOR_DIED"):
                logger.warning("job %s failed: its supervisor died: %s", sid, e)
        with self._watch_lock:
            actor, _ = self._watched.pop(sid, (None, None))
        if actor is not None:
            try:
                ember.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass

    # ---------------------------------------------------------------- stop / delete
    def stop(self, submission_id: str) -> bool:
        """Stop a job: True if it was pending or running, False if it had ended."""
        import ember
        record = self.get(submission_id)
        if record["status"] in job_state.TERMINAL:
            return False
        actor = self._supervisor(submission_id)
        if record["status"] == "RUNNING" and actor is not None:
            try:
                return bool(ember.get(actor.stop.remote(), timeout=30))
            except Exception as e:  # noqa: BLE001 - it died meanwhile: fall through
                logger.info("stop of job %s through its supervisor failed: %s",
                            submission_id, e)
        # Not started yet (waiting for resources), or its supervisor is gone: end it
        # here. STOPPED first, so the watcher does not take the supervisor's death for
        # a failure; killing the supervisor ends an entrypoint that started meanwhile
        # (its runner sees the supervisor go).
        self._move(submission_id, "STOPPED", message="Job was intentionally stopped.")
        if actor is not None:
            try:
                ember.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        return True

    def delete(self, submission_id: str) -> bool:
        """Forget an ended job (its record; its log file stays on its node). ValueError
        if it has not ended."""
        record = self.get(submission_id)
        if record["status"] not in job_state.TERMINAL:
            raise ValueError(f"job {submission_id!r} is {record['status']}: it can only be "
                             f"deleted once it has ended (`ember job stop {submission_id}` "
                             "first)")
        self._kv("KVDel", ns=job_state.DRIVERS_NS, key=submission_id.encode())
        return bool(self._kv("KVDel", key=submission_id.encode()).found)

    # ---------------------------------------------------------------- logs
    def _log_stub(self, node_id: str) -> Any:
        from . import rpc
        from .protos import ember_pb2 as pb
        from .protos import ember_pb2_grpc as pbg
        nodes = self._core().gcs.GetNodes(pb.Empty(), timeout=30).nodes
        node = next((n for n in nodes if n.node_id == node_id), None)
        if node is None:
            return None
        address = f"{node.ip}:{node.port}"
        chan = self._channels.get(address)
        if chan is None:
            chan = self._channels[address] = rpc.channel(address)
        return rpc.Stub(chan, pbg.LogServiceStub, self.token)

    def read_logs(self, submission_id: str, offset: int = 0,
                  limit: int = LOG_READ_LIMIT) -> tuple[bytes, dict[str, Any]]:
        """Up to ``limit`` bytes of the job's log from byte ``offset``, and its record
        (read before the log, so an ended record means the log is complete)."""
        from .protos import ember_pb2 as pb
        record = self.get(submission_id)
        node_id = record.get("driver_node_id")
        if not node_id:
            return b"", record
        stub = self._log_stub(node_id)
        if stub is None:
            raise RuntimeError(f"the node that ran job {submission_id!r} ({node_id[:12]}) is "
                               "gone, and its log with it")
        out = bytearray()
        stream = stub.GetLog(pb.LogRequest(name=job_state.log_name(submission_id),
                                           offset=offset), timeout=60)
        try:
            for chunk in stream:
                if chunk.error:
                    if "has no log file" in chunk.error:
                        break         # nothing written yet
                    raise RuntimeError(chunk.error)
                out += chunk.data
                if len(out) >= limit:
                    break
        finally:
            stream.cancel()
        return bytes(out[:limit]), record

    def tail(self, submission_id: str, offset: int, wait: float) -> dict[str, Any]:
        """One frame of a log tail (job_state.tail_frame): what the log holds after
        ``offset``, waiting up to ``wait`` seconds for something new; ``done`` once the
        job has ended and all of it was sent."""
        deadline = time.monotonic() + max(0.0, min(wait, 30.0))
        while True:
            data, record = self.read_logs(submission_id, offset)
            ended = record["status"] in job_state.TERMINAL
            frame = job_state.tail_frame(data, offset, ended and len(data) < LOG_READ_LIMIT)
            if frame["logs"] or frame["done"] or time.monotonic() >= deadline:
                return frame
            time.sleep(TAIL_POLL_S)

    # ---------------------------------------------------------------- packages
    def package_exists(self, uri: str) -> bool:
        return bool(self._kv("KVGet", ns=job_state.PACKAGES_NS, key=uri.encode()).found)

    def put_package(self, uri: str, data: bytes) -> None:
        self._kv("KVPut", ns=job_state.PACKAGES_NS, key=uri.encode(), value=data,
                 overwrite=False)


def supervisor_name(submission_id: str) -> str:
    """The supervisor actor's name (namespace ``_ember_jobs``).

    >>> supervisor_name("ember_submit_1")
    '_ember_job_supervisor_ember_submit_1'
    """
    return f"_ember_job_supervisor_{submission_id}"

"""One process's placement-group creates and removals, pipelined and batched.

A create or removal is one control-service call of ~0.5 ms of Python gRPC, and
a loop that makes or removes many groups would pay it for each. Instead the
caller queues the operation and returns; a sender thread sends everything
queued as one ``ApplyPlacementGroupOps`` call, which the control service
applies in order. Order is all the caller can observe, so every operation that
reads groups back (``wait``, ``ready``, the table, lookups by name), schedules
into a group, or hands a group to another process first waits until everything
this process queued has been applied (``barrier``). Creates whose answer the
caller needs (a name that may be taken; a detached group that must outlive a
driver about to exit) wait for their own result.

>>> ops = PlacementGroupOps(gcs)
>>> ops.submit(pb.PlacementGroupOp(create=spec))      # returns at once
>>> ops.barrier()                                     # applied by the control service
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from .protos import ember_pb2 as pb

logger = logging.getLogger(__name__)

# One call carries at most this many operations (a bounded message).
MAX_BATCH = 1000


class Pending:
    """The answer to one queued operation, once the control service has applied it."""

    __slots__ = ("_done", "info", "error", "awaited")

    def __init__(self, awaited: bool = False) -> None:
        self.awaited = awaited    # its caller waits for it (and so sees its failure)
        self._done = threading.Event()
        self.info: pb.PlacementGroupInfo | None = None
        self.error: BaseException | None = None

    def result(self, timeout: float | None = None) -> pb.PlacementGroupInfo:
        """The operation's PlacementGroupInfo; re-raises the call's error."""
        if not self._done.wait(timeout):
            raise TimeoutError("the control service did not apply a placement-group "
                               f"operation within {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.info is not None
        return self.info

    def _settle(self, info: pb.PlacementGroupInfo | None, error: BaseException | None) -> None:
        self.info, self.error = info, error
        self._done.set()


class PlacementGroupOps:
    """The queue and its sender thread (started on first use)."""

    def __init__(self, gcs: Any) -> None:
        self._gcs = gcs
        self._cond = threading.Condition()
        self._queue: list[tuple[pb.PlacementGroupOp, Pending]] = []
        self._queued = 0          # operations ever queued
        self._applied = 0         # operations answered (applied or failed)
        self._failure: BaseException | None = None   # a failed call, for the next barrier
        self._refused: dict[bytes, str] = {}          # pg_id -> why its create was refused
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, op: pb.PlacementGroupOp, *, awaited: bool = False) -> Pending:
        """Queue ``op``; it is applied after every operation queued before it.
        ``awaited``: the caller waits for its result (a failure is raised there, not
        again at the next barrier)."""
        pending = Pending(awaited)
        with self._cond:
            if self._closed:
                raise RuntimeError("Ember is shut down: call ember.init() first")
            self._queue.append((op, pending))
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_loop, daemon=True,
                                                name="ember-pg-ops")
                self._thread.start()
            self._cond.notify_all()
        return pending

    @property
    def idle(self) -> bool:
        """Nothing queued or in flight (read without the lock: a hint for fast paths)."""
        return self._applied == self._queued

    def barrier(self, timeout: float | None = 120.0) -> None:
        """Wait until everything queued so far is applied; raise a call's failure once."""
        with self._cond:
            target = self._queued
            if not self._cond.wait_for(lambda: self._applied >= target, timeout):
                raise TimeoutError("placement-group operations were not applied within "
                                   f"{timeout} s: is the control service reachable?")
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def refusal(self, pg_id: bytes) -> str | None:
        """Why the control service refused to create ``pg_id``, if it did."""
        with self._cond:
            return self._refused.get(pg_id)

    def close(self, timeout: float = 10.0) -> None:
        """Apply what is queued (a removal must not be lost at exit), then stop."""
        try:
            self.barrier(timeout)
        except Exception as e:  # noqa: BLE001 - shutting down: say it, go on
            logger.warning("placement-group operations not applied at shutdown: %s", e)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._send(batch)

    def _send(self, batch: list[tuple[pb.PlacementGroupOp, Pending]]) -> None:
        try:
            reply = self._gcs.ApplyPlacementGroupOps(
                pb.PlacementGroupOps(ops=[op for op, _ in batch]), timeout=60)
            results = list(reply.results)
            if len(results) != len(batch):
                raise RuntimeError(f"the control service answered {len(results)} of "
                                   f"{len(batch)} placement-group operations")
        except Exception as e:  # noqa: BLE001 - handed to the callers
            if not all(pending.awaited for _, pending in batch):
                with self._cond:
                    self._failure = e
            for _, pending in batch:
                pending._settle(None, e)
        else:
            refused = {op.create.pg_id: info.error for (op, _), info in zip(batch, results)
                       if op.WhichOneof("op") == "create" and not info.found}
            if refused:
                with self._cond:
                    self._refused.update(refused)
            for (_, pending), info in zip(batch, results):
                pending._settle(info, None)
        with self._cond:
            self._applied += len(batch)
            self._cond.notify_all()

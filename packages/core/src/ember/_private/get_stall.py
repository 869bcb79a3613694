"""A ``get`` that waits long says why (``EMBER_GET_STALL_WARNING_S``, 30 s).

When ``ember.get`` has waited that long for objects this process owns, it logs
one warning naming the tasks that make them and why they have not started:
no node can ever hold the resources they ask for, the resources are all in
use, their arguments are not ready, or the actor they call is not running.
Tasks already running are not a stall (long tasks are normal) and get no
warning. Set the variable to 0 to turn the warning off.

``explain`` is pure (tested without processes); ``wait_owned`` does the I/O.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import ids

logger = logging.getLogger("ember")

STALL_ENV = "EMBER_GET_STALL_WARNING_S"
DEFAULT_STALL_S = 30.0
_ACTOR_STATES = {-1: "unknown", 0: "PENDING_CREATION", 1: "ALIVE", 2: "RESTARTING",
                 3: "DEAD"}


def stall_delay() -> float | None:
    """Seconds before a stalled get warns; None when turned off."""
    raw = os.environ.get(STALL_ENV, "").strip()
    if not raw:
        return DEFAULT_STALL_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{STALL_ENV}={raw!r} is not a number of seconds: set it to e.g. 30, "
                         "or 0 to turn the warning off") from None
    return value if value > 0 else None


@dataclass
class Waiting:
    """What the owner knows about one task a stalled get waits on."""

    name: str
    task_id: str
    state: str                      # deps, queued, backoff, pushed
    resources: dict = field(default_factory=dict)
    unresolved_args: int = 0
    actor: str = ""                 # actor calls: "Class (id)"
    actor_state: str = ""           # PENDING_CREATION, RESTARTING, ALIVE, ...


def explain(waited_s: float, num_objects: int, waiting: list[Waiting],
            node_totals: list[dict]) -> str | None:
    """The warning for a stalled get, or None when every task is already running.

    >>> w = Waiting("f", "ab12", "queued", {"CPU": 64.0})
    >>> print(explain(30, 1, [w], [{"CPU": 2.0}]))
    ember.get has waited 30 s for 1 object(s), made by tasks that have not started:
      f (task ab12) is pending: no node has the resources it requests {'CPU': 64.0} (the largest has {'CPU': 2.0}); lower the request or add a node that has them
    """
    lines = []
    for w in waiting:
        why = _why(w, node_totals)
        if why is not None:
            lines.append(f"  {w.name} (task {w.task_id}) {why}")
    if not lines:
        return None
    shown = lines[:5]
    if len(lines) > 5:
        shown.append(f"  ... and {len(lines) - 5} more")
    return (f"ember.get has waited {waited_s:g} s for {num_objects} object(s), made by tasks "
            "that have not started:\n" + "\n".join(shown))


def _fits(request: dict, total: dict) -> bool:
    return all(total.get(k, 0.0) >= v - 1e-9 for k, v in request.items() if v > 0)


def _why(w: Waiting, node_totals: list[dict]) -> str | None:
    if w.actor:
        if w.actor_state in ("ALIVE", "") and w.state == "pushed":
            return None
        if w.actor_state == "DEAD":
            return f"calls actor {w.actor}, which is dead"
        if w.actor_state in ("PENDING_CREATION", "RESTARTING", "unknown"):
            return (f"calls actor {w.actor}, which is not running yet ({w.actor_state}): "
                    + _resources_note(w.resources, node_totals, "its resources"))
    if w.state == "deps":
        return (f"is waiting for {w.unresolved_args} argument(s) to be ready (the tasks "
                "making them are pending too, or slow)")
    if w.state in ("queued", "backoff"):
        return "is pending: " + _resources_note(w.resources, node_totals,
                                                "the resources it requests")
    return None


def _resources_note(request: dict, node_totals: list[dict], what: str) -> str:
    request = {k: v for k, v in request.items() if v > 0}
    if not node_totals:
        return "the cluster has no live node"
    if request and not any(_fits(request, t) for t in node_totals):
        largest = max(node_totals, key=lambda t: sum(t.get(k, 0.0) for k in request))
        shown = {k: largest.get(k, 0.0) for k in request}
        return (f"no node has {what} {request} (the largest has {shown}); lower the request "
                "or add a node that has them")
    return (f"{what} {request or '{}'} are all in use by other tasks and actors; it starts "
            "when they free up (see `ember status` and `ember list tasks`)")


# ------------------------------------------------------------------ I/O
def wait_owned(core: Any, oids: list[bytes], timeout: float | None) -> set[bytes]:
    """``memory_store.wait_ready`` for a get of owned objects, warning once if it stalls."""
    store = core.memory_store
    need = len(set(oids))
    delay = stall_delay()
    if delay is None or (timeout is not None and timeout <= delay):
        return store.wait_ready(oids, need, timeout, on_first_wait=core._blocked)
    start = time.monotonic()
    done = store.wait_ready(oids, need, delay, on_first_wait=core._blocked)
    if len(done) >= need:
        return done
    try:
        message = _diagnose(core, [o for o in set(oids) if o not in done],
                            time.monotonic() - start)
        if message:
            logger.warning(message)
    except Exception as e:  # noqa: BLE001 - a diagnosis must never break the get
        logger.debug("could not explain a stalled get: %s", e)
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
    return store.wait_ready(oids, need, left)


def _diagnose(core: Any, missing: list[bytes], waited: float) -> str | None:
    from .protos import ember_pb2 as pb
    submitter = core.submitter
    waiting: list[Waiting] = []
    actors: list[tuple[Waiting, bytes]] = []
    with submitter._lock:
        for oid in missing:
            task = submitter._tasks.get(ids.task_id_of(oid))
            if task is None:
                continue
            spec = task.spec
            w = Waiting(spec.name, spec.task_id.hex(), task.state,
                        dict(submitter._key_resources.get(task.key, {})),
                        task.unresolved)
            if task.actor is not None:
                w.actor = f"{task.actor.class_name} ({task.actor.actor_id.hex()[:12]})"
                w.actor_state = _ACTOR_STATES.get(task.actor.state, "unknown")
                actors.append((w, task.actor.actor_id))
            waiting.append(w)
    if not waiting:
        return None
    for w, actor_id in actors:
        if w.actor_state != "ALIVE":
            info = core.gcs.GetActor(pb.GetActorRequest(actor_id=actor_id), timeout=10)
            if info.found:
                w.actor_state = _ACTOR_STATES.get(info.state, w.actor_state)
                w.resources = dict(info.resources) or {"CPU": 1.0}
    nodes = core.gcs.GetNodes(pb.Empty(), timeout=10).nodes
    totals = [dict(n.total) for n in nodes if n.alive]
    return explain(round(waited), len(missing), waiting, totals)

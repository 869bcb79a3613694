"""``ember logs``: find a log file somewhere in the cluster and print or follow it.

Which file: a name (``gcs.log``, ``worker-...out``), a worker by pid, an
actor (its worker's pid and node, from the control service) or a task (the
worker that ran its latest attempt; only the lines printed while tasks of its
name ran, using the executor's task-name markers). Without any of those it
lists every node's files. The files are read through each node manager's
LogService (log_service.py), so nodes on other machines work the same.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import click

from .log_service import strip_markers, task_lines


def _pick_node(nodes: list, node_id: str) -> Any:
    matches = [n for n in nodes if n.node_id.startswith(node_id)]
    if len(matches) != 1:
        known = ", ".join(n.node_id[:12] for n in nodes)
        raise click.ClickException(
            f"--node-id {node_id!r} matches {len(matches)} nodes (known: {known}): pass more "
            "of the id")
    return matches[0]


def _target(actor_id: str | None, task_id: str | None, address: str | None,
            timeout: float, call: Callable) -> tuple[str, int, str]:
    """(node id, worker pid, task name or "") of an actor's or a task's worker."""
    from ..util.state import get_actor, get_task
    if actor_id:
        actor = call(lambda: get_actor(actor_id, address=address, timeout=timeout))
        if actor is None:
            raise click.ClickException(f"no actor with id {actor_id!r}: see `ember list actors`")
        if not actor.pid:
            raise click.ClickException(f"actor {actor_id} has no worker now (it is "
                                       f"{actor.state}): nothing to show")
        return actor.node_id or "", actor.pid, ""
    found = call(lambda: get_task(task_id or "", address=address, timeout=timeout))
    if found is None:
        raise click.ClickException(f"no events for task {task_id!r}: see `ember list tasks`")
    task = found[-1] if isinstance(found, list) else found
    if not task.worker_pid:
        raise click.ClickException(f"task {task_id} has not run on a worker yet (it is "
                                   f"{task.state}): nothing to show")
    return task.node_id or "", task.worker_pid, task.name


def run(*, filename: str | None, node_id: str | None, actor_id: str | None,
        task_id: str | None, pid: int | None, err: bool, follow: bool, tail: int,
        address: str | None, timeout: float, call: Callable) -> None:
    from .state_client import StateClient
    client = call(lambda: StateClient(address, timeout))
    with client:
        nodes = [n for n in call(client.nodes) if n.alive]
        head = call(client.head_node_id)
        nodes.sort(key=lambda n: n.node_id != head)
        task_name = ""
        if actor_id or task_id:
            target_node, pid, task_name = _target(actor_id, task_id, address, timeout, call)
            node_id = node_id or target_node
        candidates = [_pick_node(nodes, node_id)] if node_id else nodes
        if not filename and not pid:
            _list_files(client, candidates, call)
            return
        from .protos import ember_pb2 as pb
        for node in candidates:
            stub = client.log_stub(node)
            listing = call(lambda stub=stub: stub.ListLogs(pb.Empty(), timeout=timeout))
            for f in listing.files:
                if (filename and f.name == filename) or (
                        pid and f.pid == pid and f.is_err == err):
                    task = (task_name, task_id or "")
                    if follow:
                        task = ("", "")    # following: the whole log, as it grows
                    request = pb.LogRequest(name=f.name, follow=follow,
                                            tail=0 if any(task) else tail)
                    _stream(stub, request, follow, timeout, bool(f.pid), task, tail, call)
                    return
        what = f"file {filename!r}" if filename else f"worker pid {pid}"
        where = f"node {candidates[0].node_id[:12]}" if node_id else "any live node"
        raise click.ClickException(f"{where} has no log for {what}: list the files with "
                                   "`ember logs`")


def _list_files(client: Any, nodes: list, call: Callable) -> None:
    from tabulate import tabulate

    from .protos import ember_pb2 as pb
    rows = []
    for node in nodes:
        stub = client.log_stub(node)
        listing = call(lambda stub=stub: stub.ListLogs(pb.Empty(),
                                                        timeout=client.timeout))
        for f in listing.files:
            rows.append([f"{node.node_id[:12]} ({node.ip})", f.name, f.size, f.pid or ""])
    click.echo(tabulate(rows, headers=["NODE", "FILE", "SIZE", "WORKER PID"]) if rows
               else "(no log files)")


def _stream(stub: Any, request: Any, follow: bool, timeout: float, is_worker: bool,
            task: tuple[str, str], tail: int, call: Callable) -> None:
    """Print the file as it arrives (worker logs without the task-name markers);
    ``task`` (name, id): only what that task printed, once the file is read."""
    task_name, task_id = task
    # By id even while the task's name is unknown: the executor's events (its pid) can
    # reach the control service before the owner's (its name), and a name-less task
    # must not show the whole log.
    one_task = bool(task_name or task_id)
    stream = call(lambda: stub.GetLog(request, timeout=None if follow else max(timeout, 60)))
    carry = ""
    kept: list[str] = []
    try:
        for chunk in stream:
            if chunk.error:
                raise click.ClickException(chunk.error)
            text = carry + chunk.data.decode("utf-8", "replace")
            if one_task:
                kept.append(text)     # filtered once whole: markers set the state
                carry = ""
                continue
            # Markers are whole lines: only pass on complete ones.
            head, sep, carry = text.rpartition("\n")
            text = head + sep
            sys.stdout.write(strip_markers(text) if is_worker else text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        stream.cancel()
        return
    if one_task:
        lines = task_lines("".join(kept), task_name, task_id).splitlines(keepends=True)
        sys.stdout.write("".join(lines[-tail:] if tail else lines))
    elif carry:
        sys.stdout.write(strip_markers(carry) if is_worker else carry)
    sys.stdout.flush()

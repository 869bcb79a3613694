"""The state commands of the ``ember`` command line (Ray's state CLI).

    ember list nodes|actors|tasks|objects|placement-groups|jobs|workers
               [--filter KEY=VALUE | KEY!=VALUE ...] [--limit N] [--detail] [--format table|json]
    ember get actors|tasks|nodes|placement-groups|workers|objects ID [--format table|json]
    ember summary tasks|actors|objects [--format table|json]
    ember memory [--group-by NODE_ADDRESS|STACK_TRACE] [--sort-by OBJECT_SIZE|PID|REFERENCE_TYPE]
                 [--units B|KB|MB|GB] [--stats-only] [--num-entries N]
    ember timeline [--output trace.json]
    ember logs [FILE] [--node-id ID] [--actor-id ID | --task-id ID | --pid PID] [--err]
               [--follow] [--tail N]

Every command takes ``--address`` (default: $EMBER_ADDRESS, else the cluster
``ember start`` left running on this machine) and ``--timeout``. They read
the cluster's state without connecting as a driver (no job is created).
Registered on the main group by cli.py; the text they print is built by
state_format.py and timeline.py.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from typing import Any, Callable

import click

from . import state_format

_LIST = ("nodes", "actors", "tasks", "objects", "placement-groups", "jobs", "workers")
_GET = {"nodes": "get_node", "actors": "get_actor", "tasks": "get_task",
        "placement-groups": "get_placement_group", "workers": "get_worker",
        "objects": "get_objects"}


def _address_option(f: Any) -> Any:
    f = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, help="Seconds to wait for each request.")(f)
    return click.option("--address", default=None, metavar="HOST:PORT", envvar="EMBER_ADDRESS",
                        show_envvar=True, help="Control service of the cluster (default: the "
                        "cluster started on this machine).")(f)


def _format_option(f: Any) -> Any:
    return click.option("--format", "fmt", type=click.Choice(["table", "json"]),
                        default="table", show_default=True, help="Output format.")(f)


def _call(fn: Callable[[], Any]) -> Any:
    """Run a state query; its warnings go to stderr, its errors become CLI errors."""
    import grpc
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn()
    except (ConnectionError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    except grpc.RpcError as e:
        raise click.ClickException(f"the cluster did not answer ({e.code().name}): "
                                   f"{e.details()}; check it with `ember status`") from None
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return result


def _schema(resource: str) -> Any:
    from ..util.state import common
    return {"nodes": common.NodeState, "actors": common.ActorState, "tasks": common.TaskState,
            "objects": common.ObjectState, "placement-groups": common.PlacementGroupState,
            "jobs": common.JobState, "workers": common.WorkerState}[resource]


@click.command("list")
@click.argument("resource", type=click.Choice(_LIST))
@click.option("--filter", "-f", "filters", multiple=True, metavar="KEY=VALUE",
              help="Keep rows whose KEY equals VALUE (KEY!=VALUE: differs); repeatable, "
                   "all must hold. Strings compare case-insensitively.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many rows.")
@click.option("--detail", is_flag=True, help="Every field (some are only filled with it).")
@_format_option
@_address_option
def list_cmd(resource: str, filters: tuple[str, ...], limit: int, detail: bool, fmt: str,
             address: str | None, timeout: float) -> None:
    """List the cluster's nodes, actors, tasks, objects, placement groups, jobs or workers.

    \b
    ember list tasks --filter state=FAILED --detail
    ember list actors -f state!=DEAD --format json
    """
    from ..util import state
    from .state_filters import parse_filter
    parsed = []
    for text in filters:
        try:
            parsed.append(parse_filter(text))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--filter") from None
    fn = getattr(state, "list_" + resource.replace("-", "_"))
    records = _call(lambda: fn(address=address, filters=parsed, limit=limit + 1,
                               timeout=timeout, detail=detail))
    more = len(records) > limit
    schema = _schema(resource)
    click.echo(state_format.render_list(records[:limit], schema.list_columns(detail), fmt,
                                        more))


@click.command("get")
@click.argument("resource", type=click.Choice(sorted(_GET)))
@click.argument("id")
@_format_option
@_address_option
def get_cmd(resource: str, id: str, fmt: str, address: str | None, timeout: float) -> None:
    """Show one actor, task, node, placement group, worker or object by id.

    \b
    ember get actors 5b0c0e32a9c1f0e6b2d1c0ff00000001
    ember get tasks <task id> --format json
    """
    from ..util import state
    found = _call(lambda: getattr(state, _GET[resource])(id, address=address, timeout=timeout))
    records = found if isinstance(found, list) else [found] if found is not None else []
    if not records:
        raise click.ClickException(f"no {resource[:-1].replace('-', ' ')} with id {id!r}: "
                                   f"list them with `ember list {resource}`")
    if fmt == "json":
        data = [r.asdict() for r in records]
        click.echo(json.dumps(data if isinstance(found, list) else data[0], indent=2,
                              default=str))
        return
    click.echo("\n---\n".join(state_format.render_record(r, fmt) for r in records))


@click.command("summary")
@click.argument("resource", type=click.Choice(["tasks", "actors", "objects"]))
@_format_option
@_address_option
def summary_cmd(resource: str, fmt: str, address: str | None, timeout: float) -> None:
    """Count tasks per function, actors per class or objects, by state."""
    from ..util import state
    summary = _call(lambda: getattr(state, f"summarize_{resource}")(address=address,
                                                                    timeout=timeout))
    click.echo(state_format.render_summary(resource, summary, fmt))


@click.command("memory")
@click.option("--group-by", type=click.Choice(["NODE_ADDRESS", "STACK_TRACE"]),
              default="NODE_ADDRESS", show_default=True,
              help="Group references by node, or by call site (not recorded: one group).")
@click.option("--sort-by", type=click.Choice(sorted(state_format.SORT_KEYS)),
              default="OBJECT_SIZE", show_default=True)
@click.option("--units", type=click.Choice(list(state_format.UNITS)), default="B",
              show_default=True)
@click.option("--stats-only", is_flag=True, help="Only the object stores' totals.")
@click.option("--num-entries", type=click.IntRange(min=0), default=None,
              help="At most this many references per group.")
@_address_option
def memory_cmd(group_by: str, sort_by: str, units: str, stats_only: bool,
               num_entries: int | None, address: str | None, timeout: float) -> None:
    """Object references held by every driver and worker, their sizes, and the
    object stores' use (spilled bytes included)."""
    from ..util.state.api import _object_rows
    from .state_client import StateClient

    def collect() -> tuple:
        with StateClient(address, timeout) as client:
            nodes = client.nodes()
            statuses = client.node_statuses(nodes)
            missing = list(client.missing)
            rows = [] if stats_only else _object_rows(client.objects())
            missing += client.missing
        if missing:
            warnings.warn(f"no answer from {', '.join(missing)}: left out")
        return rows, statuses, {n.node_id: n.ip for n in nodes}

    rows, statuses, ips = _call(collect)
    click.echo(state_format.render_memory(rows, statuses, ips, group_by, sort_by, units,
                                          stats_only, num_entries))


@click.command("timeline")
@click.option("--output", "-o", default=None, metavar="PATH",
              help="Where to write the trace (default: ember-timeline-<time>.json in the "
                   "temp directory).")
@_address_option
def timeline_cmd(output: str | None, address: str | None, timeout: float) -> None:
    """Write the tasks' execution as a Chrome trace (chrome://tracing, ui.perfetto.dev)."""
    from .state_client import StateClient
    from .timeline import chrome_trace

    def collect() -> tuple:
        with StateClient(address, timeout) as client:
            rows, _, dropped = client.tasks()
            return rows, dropped, {n.node_id: n.ip for n in client.nodes()}

    rows, dropped, names = _call(collect)
    trace = chrome_trace(rows, node_names=names)
    path = output or os.path.join(
        tempfile.gettempdir(), f"ember-timeline-{time.strftime('%Y-%m-%d_%H-%M-%S')}.json")
    with open(path, "w") as f:
        json.dump(trace, f)
    ran = sum(1 for e in trace if e["ph"] == "X")
    click.echo(f"Trace of {ran} task run(s) written to {path}; open it in chrome://tracing "
               "or https://ui.perfetto.dev")
    if dropped:
        click.echo(f"warning: {dropped} task attempt(s) were dropped from the control "
                   "service's store (EMBER_TASK_EVENTS_MAX) and are not in it", err=True)


@click.command("logs")
@click.argument("filename", required=False)
@click.option("--node-id", default=None, help="The node (an id or a unique prefix).")
@click.option("--actor-id", default=None, help="The worker log of this actor.")
@click.option("--task-id", default=None, help="What this task printed (its worker's log).")
@click.option("--pid", type=int, default=None, help="The log of the worker with this pid.")
@click.option("--err", is_flag=True, help="A worker's stderr instead of its stdout.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what is appended.")
@click.option("--tail", type=click.IntRange(min=0), default=0,
              help="Only the last N lines (0: all).")
@_address_option
def logs_cmd(filename: str | None, node_id: str | None, actor_id: str | None,
             task_id: str | None, pid: int | None, err: bool, follow: bool, tail: int,
             address: str | None, timeout: float) -> None:
    """Print a log file of the cluster: by name, by worker pid, actor or task.

    \b
    ember logs                          # list every node's log files
    ember logs gcs.log --tail 50
    ember logs --actor-id 5b0c... --follow
    ember logs --task-id 1a2b... --err
    """
    from . import state_logs
    chosen = [x for x in (filename, actor_id, task_id, pid) if x]
    if len(chosen) > 1:
        raise click.UsageError("pass one of FILENAME, --actor-id, --task-id or --pid")
    state_logs.run(filename=filename, node_id=node_id, actor_id=actor_id, task_id=task_id,
                   pid=pid, err=err, follow=follow, tail=tail, address=address,
                   timeout=timeout, call=_call)


def register(group: click.Group) -> None:
    """Add the state commands to the ``ember`` group."""
    for command in (list_cmd, get_cmd, summary_cmd, memory_cmd, timeline_cmd, logs_cmd):
        group.add_command(command)

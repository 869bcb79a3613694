"""``ember job``: submit and manage jobs from the command line (as ``ray job``).

    ember job submit [--address URL] [--working-dir DIR] [--runtime-env-json JSON]
                     [--submission-id ID] [--entrypoint-num-cpus N] [--no-wait] -- python script.py
    ember job status|logs [--follow]|stop|delete ID
    ember job list

``--address``: the job server's ``http(s)://host:port`` (printed by ``ember start
--head``), a control service's ``host:port``, or left out: $EMBER_ADDRESS, else
the newest cluster started on this machine. The token comes from
$EMBER_CLUSTER_TOKEN or the local session directory.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

_ADDRESS_HELP = ("Job server address: http(s)://HOST:PORT as printed by `ember start --head`, "
                 "or a control service's HOST:PORT. Default: $EMBER_ADDRESS, else the newest "
                 "cluster on this machine.")


def _address_option(f: Any) -> Any:
    return click.option("--address", default=None, metavar="ADDRESS", help=_ADDRESS_HELP)(f)


def _client(address: str | None) -> Any:
    from ..job_submission import JobSubmissionClient
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None


def _json_option(value: str | None, what: str, example: str) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"{value!r} is not valid JSON ({e.msg}); pass a JSON object, "
                                 f"e.g. {example}", param_hint=what) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"{value!r} must be a JSON object, e.g. {example}",
                                 param_hint=what)
    return parsed


def _follow(client: Any, sid: str) -> None:
    """Print the job's output until it ends."""
    for chunk in _iter(client, sid):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _iter(client: Any, sid: str) -> Any:
    try:
        yield from client._iter_logs(sid)
    except (ConnectionError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None


@click.group("job")
def job() -> None:
    """Submit, inspect and stop jobs (a shell command run on the cluster)."""


@job.command("submit", context_settings={"ignore_unknown_options": True})
@_address_option
@click.option("--submission-id", "--job-id", "submission_id", default=None,
              help="The job's id (default: ember_submit_<random>).")
@click.option("--runtime-env-json", default=None, metavar="JSON",
              help="The job's runtime_env as JSON, e.g. '{\"pip\": [\"requests\"]}'.")
@click.option("--working-dir", default=None, metavar="DIR",
              help="Local directory (or .zip) shipped to the cluster as the job's working_dir.")
@click.option("--metadata-json", default=None, metavar="JSON",
              help="Metadata (string to string) kept with the job.")
@click.option("--entrypoint-num-cpus", type=click.FloatRange(min=0), default=None,
              help="CPUs reserved for the entrypoint (it then runs where they are free).")
@click.option("--entrypoint-num-gpus", type=click.FloatRange(min=0), default=None,
              help="GPUs reserved for the entrypoint.")
@click.option("--entrypoint-memory", type=click.IntRange(min=0), default=None,
              help="Memory (bytes) reserved for the entrypoint.")
@click.option("--entrypoint-resources", default=None, metavar="JSON",
              help="Custom resources reserved for the entrypoint, e.g. '{\"accel\": 1}'.")
@click.option("--no-wait", is_flag=True,
              help="Return once submitted instead of streaming its logs until it ends.")
@click.argument("entrypoint", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(address: str | None, submission_id: str | None, runtime_env_json: str | None,
           working_dir: str | None, metadata_json: str | None,
           entrypoint_num_cpus: float | None, entrypoint_num_gpus: float | None,
           entrypoint_memory: int | None, entrypoint_resources: str | None, no_wait: bool,
           entrypoint: tuple[str, ...]) -> None:
    """Submit ENTRYPOINT (after --) as a job; without --no-wait, stream its output and
    exit non-zero if it fails."""
    runtime_env = _json_option(runtime_env_json, "--runtime-env-json",
                               "'{\"env_vars\": {\"A\": \"1\"}}'") or {}
    if working_dir is not None:
        runtime_env["working_dir"] = working_dir
    metadata = _json_option(metadata_json, "--metadata-json", "'{\"owner\": \"me\"}'")
    resources = _json_option(entrypoint_resources, "--entrypoint-resources", "'{\"accel\": 1}'")
    client = _client(address)
    import shlex
    command = " ".join(entrypoint) if len(entrypoint) == 1 else shlex.join(entrypoint)
    sid = _call(client.submit_job, entrypoint=command, runtime_env=runtime_env or None,
                submission_id=submission_id, metadata=metadata,
                entrypoint_num_cpus=entrypoint_num_cpus, entrypoint_num_gpus=entrypoint_num_gpus,
                entrypoint_memory=entrypoint_memory, entrypoint_resources=resources)
    click.echo(f"Job '{sid}' submitted successfully", err=True)
    if no_wait:
        click.echo(f"  status: ember job status {sid}\n  logs:   ember job logs --follow {sid}\n"
                   f"  stop:   ember job stop {sid}", err=True)
        return
    click.echo("Tailing logs until the job exits (Ctrl-C leaves it running):", err=True)
    try:
        _follow(client, sid)
    except KeyboardInterrupt:
        click.echo(f"\nJob '{sid}' keeps running: `ember job stop {sid}` stops it.", err=True)
        sys.exit(130)
    _finish(client, sid)


def _finish(client: Any, sid: str) -> None:
    info = _call(client.get_job_info, sid)
    status = info.status.value
    click.echo(f"Job '{sid}' {_verb(status)}", err=True)
    if status != "SUCCEEDED":
        if info.message and status == "FAILED" and "last available logs" not in info.message:
            click.echo(f"  {info.message}", err=True)
        sys.exit(1)


def _verb(status: str) -> str:
    return {"SUCCEEDED": "succeeded", "FAILED": "failed", "STOPPED": "was stopped"}.get(
        status, status.lower())


@job.command("status")
@_address_option
@click.argument("submission_id")
def status(address: str | None, submission_id: str) -> None:
    """Show a job's status."""
    info = _call(_client(address).get_job_info, submission_id)
    click.echo(f"Status for job '{submission_id}': {info.status.value}")
    if info.message:
        click.echo(f"Status message: {info.message}")
    if info.driver_exit_code is not None:
        click.echo(f"Exit code: {info.driver_exit_code}")


@job.command("logs")
@_address_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends.")
@click.argument("submission_id")
def logs(address: str | None, submission_id: str, follow: bool) -> None:
    """Print a job's output (stdout and stderr)."""
    client = _client(address)
    if follow:
        try:
            _follow(client, submission_id)
        except KeyboardInterrupt:
            sys.exit(130)
        return
    sys.stdout.write(_call(client.get_job_logs, submission_id))
    sys.stdout.flush()


@job.command("stop")
@_address_option
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting until it ended.")
@click.argument("submission_id")
def stop(address: str | None, submission_id: str, no_wait: bool) -> None:
    """Stop a job: SIGTERM to its process group, SIGKILL after a grace period."""
    client = _client(address)
    stopped = _call(client.stop_job, submission_id)
    if not stopped:
        info = _call(client.get_job_info, submission_id)
        click.echo(f"Job '{submission_id}' had already ended ({info.status.value})")
        return
    click.echo(f"Stopping job '{submission_id}'")
    if no_wait:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = _call(client.get_job_info, submission_id)
        if info.status.is_terminal():
            click.echo(f"Job '{submission_id}' {_verb(info.status.value)}")
            return
        time.sleep(0.2)
    raise click.ClickException(f"job '{submission_id}' has not ended 60 s after the stop")


@job.command("delete")
@_address_option
@click.argument("submission_id")
def delete(address: str | None, submission_id: str) -> None:
    """Forget an ended job."""
    _call(_client(address).delete_job, submission_id)
    click.echo(f"Job '{submission_id}' deleted")


@job.command("list")
@_address_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_jobs(address: str | None, as_json: bool) -> None:
    """List the cluster's jobs."""
    jobs = _call(_client(address).list_jobs)
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in jobs], indent=2))
        return
    from tabulate import tabulate
    rows = [(j.submission_id, j.status.value, _when(j.start_time), _when(j.end_time),
             j.entrypoint if len(j.entrypoint) <= 60 else j.entrypoint[:57] + "...")
            for j in jobs]
    click.echo(tabulate(rows, headers=["SUBMISSION ID", "STATUS", "START", "END", "ENTRYPOINT"])
               if rows else "(no jobs)")


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def register(cli: click.Group) -> None:
    """Add ``ember job ...`` to the ``ember`` command group."""
    cli.add_command(job)

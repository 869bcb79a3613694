"""The ``ember`` command line: start, stop and inspect clusters (as `ray start/stop/status`).

    ember start --head [--port 6379] [--num-cpus N] ...   # control service + node manager
    ember start --address HOST:PORT [--token T] ...        # join a node to a cluster
    ember status [--address HOST:PORT]
    ember stop [--force]

Without ``--block`` the started processes are detached (their own session, no
pipe to this command) and recorded under the session directory, which is how
``ember stop`` and ``ember.init(address="auto")`` find them later.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from .. import __version__
from .ids import TOKEN_ENV as _TOKEN_ENV


def _json_dict(kind: str, example: str, values: type) -> Any:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            raise click.BadParameter(f"{value!r} is not valid JSON ({e.msg}); pass a JSON "
                                     f"object of {kind}, e.g. {example}") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter(f"{value!r} must be a JSON object of {kind}, e.g. {example}")
        for k, v in parsed.items():
            if not k or (values is str and not isinstance(v, str)) or (
                    values is float and (isinstance(v, bool) or not isinstance(v, (int, float)))):
                raise click.BadParameter(f"entry {k!r}: {v!r} is invalid; pass a JSON object of "
                                         f"{kind}, e.g. {example}")
        return parsed
    return convert


def _node_options(f: Any) -> Any:
    options = [
        click.option("--node-ip-address", default=None, metavar="IP",
                     help="Address this node listens on and advertises. Default: 127.0.0.1 "
                          "for a head (local only); for a joining node, this machine's "
                          "address on the route to the head."),
        click.option("--num-cpus", type=click.IntRange(min=0), default=None,
                     help="CPUs this node offers (default: the CPUs this process may use)."),
        click.option("--num-gpus", type=click.IntRange(min=0), default=None,
                     help="GPUs this node offers (default: detected)."),
        click.option("--resources", default=None, metavar="JSON",
                     callback=_json_dict("resource name to quantity", "'{\"accel\": 2}'", float),
                     help="Custom resources as JSON, e.g. '{\"accel\": 2}'."),
        click.option("--labels", default=None, metavar="JSON",
                     callback=_json_dict("label name to string value", "'{\"zone\": \"a\"}'",
                                         str),
                     help="Node labels as JSON, e.g. '{\"zone\": \"a\"}'."),
        click.option("--object-store-memory", type=click.IntRange(min=1), default=None,
                     metavar="BYTES",
                     help="Shared-memory object store size in bytes (default: 30% of memory); "
                          "objects beyond it spill to disk."),
        click.option("--node-manager-port", type=click.IntRange(0, 65535), default=0,
                     help="Port of this node's node manager (default: any free port)."),
        click.option("--metrics-export-port", type=click.IntRange(0, 65535), default=0,
                     help="Port of this node's Prometheus metrics endpoint, on the node's "
                          "address; needs the cluster token (default: any free port, listed "
                          "by ember.nodes() as MetricsExportPort)."),
        click.option("--block", is_flag=True,
                     help="Stay in the foreground; Ctrl-C or SIGTERM stops this node."),
        click.option("--token", default=None, envvar=_TOKEN_ENV, show_envvar=True,
                     help="Cluster token. Head: use this token instead of a new one. Joining "
                          "node: needed from another machine (printed by `ember start --head`). "
                          f"Prefer {_TOKEN_ENV}: command lines are visible to all users."),
        click.option("--tls-cert", default=None, metavar="PEM",
                     help="TLS certificate for every connection of this node's processes "
                          "(sets EMBER_TLS_CERT for them; drivers set it themselves)."),
        click.option("--tls-key", default=None, metavar="PEM",
                     help="Private key of --tls-cert (EMBER_TLS_KEY)."),
        click.option("--tls-ca", default=None, metavar="PEM",
                     help="CA certificate: mutual TLS, only certificates it signed are "
                          "accepted (EMBER_TLS_CA)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ember")
def cli() -> None:
    """Ember command line: start, stop and inspect clusters."""


@cli.command()
@click.option("--head", is_flag=True, help="Start the head node (control service + node manager).")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="Join the cluster whose control service is at HOST:PORT.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Head only: port of the control service (default 6379; 0 = any free port).")
@click.option("--include-dashboard", type=bool, default=None, metavar="BOOLEAN",
              help="Head only: start the dashboard (default: when ember-core[dashboard] is "
                   "installed; true: always, or fail).")
@click.option("--dashboard-host", default="127.0.0.1", show_default=True, metavar="IP",
              help="Head only: address the dashboard listens on (0.0.0.0: every interface; "
                   "use TLS then).")
@click.option("--dashboard-port", type=click.IntRange(0, 65535), default=None,
              help="Head only: dashboard port (default 8265, or a free one when it is taken; "
                   "0 = any free port).")
@click.option("--job-server-port", type=click.IntRange(0, 65535), default=None,
              help="Head only: port of the job server (`ember job`; default 8265, 8266 next "
                   "to a dashboard, or a free one when it is taken; 0 = any free port).")
@_node_options
def start(head: bool, address: str | None, port: int | None, node_ip_address: str | None,
          num_cpus: int | None, num_gpus: int | None, resources: dict | None,
          labels: dict | None, object_store_memory: int | None, node_manager_port: int,
          block: bool, token: str | None, metrics_export_port: int = 0, tls_cert: str | None = None,
          tls_key: str | None = None, tls_ca: str | None = None,
          include_dashboard: bool | None = None, dashboard_host: str = "127.0.0.1",
          dashboard_port: int | None = None, job_server_port: int | None = None) -> None:
    """Start an Ember node on this machine: the head (--head) or one that joins (--address)."""
    from . import node as node_mod
    if head == bool(address):
        raise click.UsageError("pass exactly one of --head (start a new cluster) or "
                               "--address=HOST:PORT (join a running one)")
    if port is not None and not head:
        raise click.UsageError("--port is for the head; a joining node takes its control "
                               "service address from --address")
    if token is not None:
        token = token.strip()
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise click.BadParameter("the token must be non-empty printable ASCII without "
                                     "spaces", param_hint="--token")
    _apply_tls(tls_cert, tls_key, tls_ca)
    total, gpu_ids = _node_resources(num_cpus, num_gpus, resources, object_store_memory)
    prestart = max(0, min(int(total.get("CPU", 0)), 4))
    common: dict[str, Any] = dict(
        total=total, gpu_ids=gpu_ids, prestart=prestart, labels=labels or {},
        node_manager_port=node_manager_port, detached=not block, register=True,
        metrics_export_port=metrics_export_port)
    if head:
        ip = node_ip_address or "127.0.0.1"
        _check_local_ip(ip)
        port = node_mod.DEFAULT_PORT if port is None else port
        if _restore_control_service(ip, port, block):
            return
        if port and not node_mod.port_is_free(ip, port):
            raise click.ClickException(
                f"port {port} on {ip} is already in use (is a cluster already running? see "
                "`ember status`; stop it with `ember stop`, or pick another --port)")
        _check_nm_port(ip, node_manager_port)
        try:
            started = node_mod.start_head(ip=ip, port=port, token=token,
                                          include_dashboard=include_dashboard,
                                          dashboard_host=dashboard_host,
                                          dashboard_port=dashboard_port,
                                          include_job_server=True,
                                          job_server_port=job_server_port, **common)
        except (OSError, RuntimeError, TimeoutError, ImportError, ValueError) as e:
            raise click.ClickException(f"the head failed to start: {e}") from None
        node_mod.set_latest(started.session_dir)
        _print_head(started, dashboard_port)
    else:
        assert address is not None
        started = _join(address, token, node_ip_address, common)
        _print_joined(started)
    if block:
        _block(started)


def _apply_tls(cert: str | None, key: str | None, ca: str | None) -> None:
    """--tls-*: TLS for this command's own calls and every process it starts (they
    inherit EMBER_TLS_*; absolute paths, as workers may run in other directories)."""
    from . import tls
    for var, path in ((tls.CERT_ENV, cert), (tls.KEY_ENV, key), (tls.CA_ENV, ca)):
        if path:
            os.environ[var] = os.path.abspath(path)
    try:
        tls.load()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--tls-cert/--tls-key/--tls-ca") from None


def _node_resources(num_cpus: int | None, num_gpus: int | None, resources: dict | None,
                    object_store_memory: int | None) -> tuple[dict[str, float], list[str]]:
    from .resources import build_node_resources
    try:
        total, gpu_ids, _ = build_node_resources(num_cpus, num_gpus, resources, None,
                                                 object_store_memory)
    except ValueError as e:
        raise click.UsageError(str(e).replace("num_cpus=", "--num-cpus=")
                               .replace("num_gpus=", "--num-gpus=")) from None
    return total, gpu_ids


def _check_local_ip(ip: str) -> None:
    from .node import is_local_ip
    if ip in ("0.0.0.0", "::", "[::]"):
        raise click.BadParameter(f"{ip} is not an address other nodes can reach: pass one "
                                 "address of this machine", param_hint="--node-ip-address")
    if not is_local_ip(ip):
        raise click.BadParameter(f"{ip} is not an address of this machine",
                                 param_hint="--node-ip-address")


def _check_nm_port(ip: str, port: int) -> None:
    from .node import port_is_free
    if port and not port_is_free(ip, port):
        raise click.ClickException(f"--node-manager-port {port} on {ip} is already in use: "
                                   "pick another port or leave it out")


def _join(address: str, token: str | None, node_ip_address: str | None,
          common: dict) -> Any:
    from . import node as node_mod
    if address == "auto":
        found = node_mod.find_latest_cluster()
        if found is None:
            raise click.ClickException("--address=auto found no cluster started on this "
                                       "machine; pass --address=HOST:PORT of the head")
        address = found
    try:
        node_mod.split_address(address)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--address") from None
    local_session = node_mod.find_session(address)
    if token is None and local_session is not None:
        try:
            token = node_mod.read_token(local_session)
        except OSError:
            token = None
    if token is None:
        try:
            node_mod.query_nodes(address, "", timeout=5.0)
        except node_mod.ClusterTokenError:
            pass
        except ConnectionError as e:
            raise click.ClickException(str(e)) from None
        raise click.ClickException(
            f"no cluster token for {address}: this machine has no session for that cluster. "
            f"Pass --token=<token printed by `ember start --head`> or set {_TOKEN_ENV}")
    try:
        node_mod.query_nodes(address, token, timeout=5.0)
    except ConnectionError as e:
        raise click.ClickException(str(e)) from None
    try:
        ip = node_ip_address or node_mod.local_ip_towards(address)
    except OSError as e:
        raise click.ClickException(f"could not reach {address}: {e}") from None
    _check_local_ip(ip)
    _check_nm_port(ip, common["node_manager_port"])
    # Same machine as the head: share its session directory. Elsewhere: a
    # directory of the same name here, holding the token and the address.
    if local_session is not None and node_mod.read_token(local_session) == token:
        session_dir = local_session
    else:
        name = node_mod.cluster_kv(address, token, "session_name")
        if name and os.path.exists(os.path.join(node_mod.session_root(), name)):
            name = None
        session_dir, _ = node_mod.new_session(token, name)
        with open(os.path.join(session_dir, "gcs_address"), "w") as f:
            f.write(address)
    try:
        started = node_mod.start_node(gcs_address=address, token=token, session_dir=session_dir,
                                      ip=ip, **common)
    except (OSError, RuntimeError, TimeoutError) as e:
        raise click.ClickException(f"the node failed to start: {e}") from None
    node_mod.set_latest(session_dir)
    return started


def _summary(total: dict[str, float]) -> str:
    parts = [f"{_num(total.get('CPU', 0))} CPU", f"{_num(total.get('GPU', 0))} GPU"]
    if total.get("memory"):
        parts.append(f"{_bytes(total['memory'])} memory")
    if total.get("object_store_memory"):
        parts.append(f"{_bytes(total['object_store_memory'])} object store")
    for k, v in total.items():
        if k not in ("CPU", "GPU", "memory", "object_store_memory"):
            parts.append(f"{_num(v)} {k}")
    return ", ".join(parts)


def _restore_control_service(ip: str, port: int, block: bool) -> bool:
    """``ember start --head`` where a cluster's control service died but its nodes run on.

    Starting a new cluster there would strand those nodes (they keep calling
    this address with the old token), so the old control service is started
    again instead, on its session's address and token, reloading its state
    from ``control.sqlite``. False when that is not the situation here.
    """
    from . import gcs_supervisor
    from . import node as node_mod
    if not port:
        return False
    session = node_mod.find_session(f"{node_mod._bracket(ip)}:{port}")
    if session is None:
        return False
    alive = [r for r in node_mod.registered_processes(session) if r.alive()]
    if any(r.role == "gcs" for r in alive) or not any(
            r.role.startswith("node_manager") for r in alive):
        return False     # still supervised, or nothing left to restore: the usual checks
    if gcs_supervisor.is_listening(ip, port):
        return False
    if block:
        raise click.ClickException(
            f"the cluster at {ip}:{port} lost its control service while its nodes run on; "
            "`ember start --head` (without --block) restarts it with its saved state")
    try:
        gcs_supervisor.restart_control_service(session, detached=True, register=True)
    except (OSError, RuntimeError, TimeoutError) as e:
        raise click.ClickException(f"the control service failed to restart: {e}") from None
    node_mod.set_latest(session)
    click.echo("\n".join([
        f"Ember control service restarted for the running cluster at {node_mod._bracket(ip)}:{port}.",
        f"  session directory: {session}",
        "  Its state (nodes, actors, placement groups, KV) was reloaded from control.sqlite;",
        "  nodes and drivers reconnect on their own. Node options given here are ignored.",
        "  Show the cluster:   ember status",
    ]))
    return True


def _print_head(n: Any, dashboard_port: int | None = None) -> None:
    from . import tls
    from .dashboard import launch as dashboard_launch
    a = n.gcs_address
    token = n.token
    out = [
        "Ember head started.",
        f"  control service: {a}    node: {n.node_id[:8]} ({_summary(n.resources)})",
        f"  session directory: {n.session_dir}",
    ]
    if n.dashboard_url:
        url = dashboard_launch.http_url(n.dashboard_url, tls.load() is not None)
        out.append(f"  dashboard: {url}    (first visit: {url}/?token={token})")
        note = dashboard_launch.port_note(dashboard_port, n.dashboard_url)
        if note:
            out.append(f"  Note: {note}")
    if n.job_server_url:
        out.append(f"  job server: {n.job_server_url}    (ember job submit --address="
                   f"{n.job_server_url} -- python script.py)")
    out += [
        "",
        "Next steps",
        "  Connect a driver on this machine:",
        "    import ember",
        f'    ember.init(address="{a}")    # or address="auto", or EMBER_ADDRESS={a}',
        "  Add a node on this machine (the token is found in the session directory):",
        f"    ember start --address={a}",
        "  Add a node on another machine:",
        f"    ember start --address={a} --token={token}",
        "  Drivers on another machine need a node there first (the join command above),",
        "  then connect the same way.",
        "  Show the cluster:   ember status",
        "  Stop every Ember process started here:   ember stop",
    ]
    if n.ip.startswith("127.") or n.ip == "::1":
        out += ["",
                f"Note: the head listens on {n.ip} only, so only this machine can reach it. "
                "To let other machines join, start it with "
                "--node-ip-address=<an address of this machine>."]
    cfg = tls.load()
    if cfg is not None:
        env = [f"{tls.CERT_ENV}={cfg.cert_path}", f"{tls.KEY_ENV}={cfg.key_path}"]
        env += [f"{tls.CA_ENV}={cfg.ca_path}"] if cfg.ca_path else []
        out += ["", f"TLS is on{' (mutual)' if cfg.mutual else ''}: drivers and joining nodes "
                "need the same settings (their own certificate where it differs):",
                "    " + " ".join(env)]
    click.echo("\n".join(out))


def _print_joined(n: Any) -> None:
    click.echo("\n".join([
        f"Ember node started and joined the cluster at {n.gcs_address}.",
        f"  node: {n.node_id[:8]} at {n.address} ({_summary(n.resources)})",
        f"  session directory: {n.session_dir}",
        "  Show the cluster:   ember status",
        "  Stop every Ember process started here:   ember stop",
    ]))


def _block(started: Any) -> None:
    """Stay in the foreground until Ctrl-C/SIGTERM or one of the node's processes exits."""
    import threading

    from . import node as node_mod
    from .process_util import install_term_handler
    node_mod.register_process(started.session_dir, os.getpid(), "cli")
    stop = threading.Event()
    reason = ["stopped by signal"]
    install_term_handler(stop.set, sigint=True)    # Ctrl-C stops this node too
    click.echo("Running in the foreground (--block): Ctrl-C stops this node.")
    code = 0
    while not stop.wait(0.5):
        dead = [p for p in started.procs if p.poll() is not None]
        if dead:
            reason[0] = f"process {dead[0].pid} exited with code {dead[0].returncode}"
            code = 1
            break
    started.terminate(10.0)
    for p in started.procs:
        node_mod.unregister_process(started.session_dir, p.pid)
    node_mod.unregister_process(started.session_dir, os.getpid())
    click.echo(f"Ember node stopped ({reason[0]}).", err=code != 0)
    sys.exit(code)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="SIGKILL at once instead of SIGTERM first.")
@click.option("-g", "--grace-period", type=click.FloatRange(min=0), default=10.0,
              show_default=True, help="Seconds to wait after SIGTERM before SIGKILL.")
def stop(force: bool, grace_period: float) -> None:
    """Stop every Ember process started on this machine by `ember start`, workers included."""
    from . import node as node_mod
    result = node_mod.stop_registered(force=force, grace_period=grace_period)
    if not result.stopped:
        click.echo("No Ember processes started by `ember start` are running on this machine.")
        return
    how = "SIGKILL" if force else "SIGTERM"
    extra = "" if force or not result.killed else f", {len(result.killed)} needed SIGKILL"
    if result.left:
        raise click.ClickException(f"{len(result.left)} process(es) survived SIGKILL: "
                                   + " ".join(map(str, result.left)))
    click.echo(f"Stopped {len(result.stopped)} Ember process(es) with {how}{extra}.")


@cli.command()
@click.option("--address", default=None, metavar="HOST:PORT", envvar="EMBER_ADDRESS",
              show_envvar=True,
              help="Control service to ask (default: the cluster started on this machine).")
def status(address: str | None) -> None:
    """Show the cluster's nodes, resources used/total, and pending or infeasible demands."""
    from . import node as node_mod
    from .api import _find_token
    if not address or address == "auto":
        address = node_mod.find_latest_cluster()
        if address is None:
            raise click.ClickException("no running cluster started on this machine; pass "
                                       "--address=HOST:PORT (or start one: ember start --head)")
    token = _find_token(address)
    if token is None:
        raise click.ClickException(f"no cluster token for {address}: set {_TOKEN_ENV} to the "
                                   "token printed by `ember start --head`")
    try:
        nodes = node_mod.query_nodes(address, token, timeout=5.0)
    except ConnectionError as e:
        raise click.ClickException(str(e)) from None
    head_id = node_mod.cluster_kv(address, token, "head_node_id")
    click.echo(render_status(address, nodes, _node_statuses(nodes, token), head_id))


def _node_statuses(nodes: list, token: str) -> dict[str, Any]:
    """NodeManager.GetStatus of each live node, by node id (asked in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    from . import rpc
    from .protos import ember_pb2 as pb
    from .protos import ember_pb2_grpc as pbg

    def ask(n: Any) -> tuple[str, Any]:
        chan = rpc.channel(f"{n.ip}:{n.port}")
        try:
            stub = rpc.Stub(chan, pbg.NodeManagerStub, token)
            return n.node_id, stub.GetStatus(pb.Empty(), timeout=5)
        except Exception:  # noqa: BLE001 - shown as unreachable
            return n.node_id, None
        finally:
            chan.close()

    live = [n for n in nodes if n.alive]
    if not live:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(live))) as pool:
        return dict(pool.map(ask, live))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _used(total: dict, available: dict, key: str, fmt: Any = _num) -> str:
    # Resource maps leave zero quantities out: a resource missing from
    # `available` is fully used.
    t = total.get(key, 0.0)
    if not t:
        return "-"
    return f"{fmt(t - available.get(key, 0.0))}/{fmt(t)}"


_STANDARD = ("CPU", "GPU", "memory", "object_store_memory")


def render_status(address: str, nodes: list, statuses: dict[str, Any],
                  head_id: str | None = None) -> str:
    """The text of `ember status` (a pure function of the node table and node statuses)."""
    from tabulate import tabulate
    rows = []
    totals: dict[str, float] = {}
    avail: dict[str, float] = {}
    for n in sorted(nodes, key=lambda n: (not n.alive, n.node_id != head_id, n.start_time)):
        st = statuses.get(n.node_id)
        total, available = dict(n.total), dict(n.available)
        if st is not None:
            available = dict(st.node.available)
        if n.alive:
            for k, v in total.items():
                totals[k] = totals.get(k, 0.0) + v
                avail[k] = avail.get(k, 0.0) + available.get(k, 0.0)
        custom = ", ".join(f"{k} {_used(total, available, k)}" for k in sorted(total)
                           if k not in _STANDARD and not k.startswith("accelerator_type:"))
        state = "ALIVE" if n.alive else "DEAD"
        if n.alive and st is None:
            state = "ALIVE (unreachable)"
        rows.append([n.node_id[:8] + (" (head)" if n.node_id == head_id else ""),
                     f"{n.ip}:{n.port}", state,
                     _used(total, available, "CPU"), _used(total, available, "GPU"),
                     _used(total, available, "memory", _bytes),
                     _used(total, available, "object_store_memory", _bytes),
                     st.num_workers if st is not None else "-",
                     custom or "-",
                     ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items())) or "-"])
    alive = sum(1 for n in nodes if n.alive)
    out = [f"======== Ember cluster at {address} ========",
           f"Nodes: {alive} alive, {len(nodes) - alive} dead", "",
           tabulate(rows, headers=["node", "address", "state", "CPU used/total",
                                   "GPU used/total", "memory", "object store", "workers",
                                   "custom resources", "labels"]),
           ""]
    demand_rows = []
    for n in nodes:
        st = statuses.get(n.node_id)
        if st is None:
            continue
        infeasible = list(st.infeasible)
        if st.pending_leases or infeasible:
            demand_rows.append([n.node_id[:8], st.pending_leases,
                                "\n".join(infeasible) if infeasible else "-"])
    out.append("Demands:")
    if demand_rows:
        out.append(tabulate(demand_rows, headers=["node", "pending leases", "infeasible"]))
    else:
        out.append(" (no pending or infeasible resource demands)")
    out += ["", "Cluster totals (used/total):"]
    total_rows = [[k, _used(totals, avail, k, _bytes if "memory" in k else _num)]
                  for k in sorted(totals, key=lambda k: (k not in _STANDARD, k))]
    out.append(tabulate(total_rows, headers=["resource", "used/total"]))
    return "\n".join(out)


# ember list/get/summary/memory/timeline/logs (the state API's commands).
from .state_cli import register as _register_state_commands  # noqa: E402

_register_state_commands(cli)
# ember microbenchmark (issue #6): its own package.
from .microbenchmark.command import register as _register_bench  # noqa: E402

_register_bench(cli)
# ember job submit/status/logs/stop/list/delete (issue #8).
from .job_cli import register as _register_job_commands  # noqa: E402

_register_job_commands(cli)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``ember``)."""
    try:
        cli.main(args=argv, prog_name="ember", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

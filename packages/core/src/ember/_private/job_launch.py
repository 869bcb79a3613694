"""Whether, where and how the head starts its job server (node.start_head).

``ember start --head`` always starts one; ``ember.cluster_utils.Cluster`` only
with ``include_job_server=True`` (an embedded ``ember.init()`` cluster never
does, so start-up stays cheap). ``job_server_port`` None means Ray's 8265 when
no dashboard is started (8266 next to one), or any free port when that is taken;
0 any free port; anything else that port or an error. The job server binds the
port itself and reports it, so "a free port" is never raced for. It listens on
the head's address.

>>> plan(True, "127.0.0.1", None, dashboard=False, port_free=lambda h, p: True)
JobServerPlan(host='127.0.0.1', port=8265, explicit_port=False)
>>> plan(False, "127.0.0.1", None, dashboard=False, port_free=lambda h, p: True) is None
True
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger("ember")

DEFAULT_PORT = 8265        # Ray's (its dashboard serves the Jobs API)
LOG_NAME = "job_server"    # logs/job_server.log, and its role for `ember stop`
URL_FILE = "job_server_url"
KV_KEY = "job_server_url"  # in the control service's "cluster" KV namespace


@dataclass(frozen=True)
class JobServerPlan:
    host: str
    port: int
    explicit_port: bool


def plan(include: bool, host: str, port: int | None, *, dashboard: bool,
         port_free: Callable[[str, int], bool]) -> JobServerPlan | None:
    """The job server to start, or None (pure but for ``port_free``).

    >>> plan(True, "127.0.0.1", None, dashboard=True, port_free=lambda h, p: True).port
    8266
    """
    if not include:
        return None
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 <= port <= 65535):
        raise ValueError(f"job_server_port must be a port number 0-65535 (0: any free port), "
                         f"got {port!r}")
    explicit = port is not None and port != 0
    if explicit and not port_free(host, port):   # type: ignore[arg-type]
        raise OSError(f"the job server port {port} on {host} is already in use: pick another "
                      "(--job-server-port), 0 for any free port, or leave it out")
    default = DEFAULT_PORT + 1 if dashboard else DEFAULT_PORT
    return JobServerPlan(host=host, port=default if port is None else port,
                         explicit_port=explicit)


def command(p: JobServerPlan | None, gcs_address: str) -> list[tuple[str, str, list[str]]]:
    """The job server's (what, log name, argv) for node._spawn: none without a plan."""
    if p is None:
        return []
    from .http_listen import server_argv
    return [("job server", LOG_NAME, server_argv("ember._private.job_server", gcs_address,
                                                 p.host, p.port, p.explicit_port))]


def url(host: str, port: int, tls_on: bool) -> str:
    """The job server's address as clients use it (Ray's ``http://host:8265``).

    >>> url("127.0.0.1", 8265, False), url("0.0.0.0", 1, True), url("::1", 2, False)
    ('http://127.0.0.1:8265', 'https://127.0.0.1:1', 'http://[::1]:2')
    """
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    hostport = f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"
    return f"{'https' if tls_on else 'http'}://{hostport}"


def parse_ready(line: str) -> int:
    """The port the job server reported (RuntimeError with what it said otherwise).

    >>> parse_ready('{"port": 8265}')
    8265
    """
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    if isinstance(msg, dict) and isinstance(msg.get("port"), int):
        return msg["port"]
    raise RuntimeError(f"the job server did not start: {line!r}")


def settle(p: JobServerPlan | None, proc: subprocess.Popen | None, line: str | None,
           procs: list[subprocess.Popen], session_dir: str) -> str | None:
    """After node._spawn: the job server's URL (None without one). ``proc`` and
    ``line``: its process and start-up report, taken off node._spawn's lists; the
    process goes back in before the node manager (callers take ``procs[-1]`` as the
    node manager)."""
    if p is None or proc is None or line is None:
        return None
    port = parse_ready(line)
    procs.insert(len(procs) - 1, proc)
    from . import tls
    found = url(p.host, port, tls.load() is not None)
    with open(os.path.join(session_dir, URL_FILE), "w") as f:
        f.write(found)
    return found


def is_job_server(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` (one of a head's NodeProcesses.procs) is its job server."""
    args = proc.args if isinstance(proc.args, (list, tuple)) else [proc.args]
    return "ember._private.job_server" in [str(a) for a in args]


def restart(session_dir: str, gcs_address: str, job_server_url: str, *, detached: bool,
            timeout: float = 30.0, register: bool = False
            ) -> tuple[subprocess.Popen, int, str]:
    """Start a head's job server again on the address it had (``job_server_url``),
    after it died: (its process, its watchdog pipe's write end or -1, its URL).

    The new server settles the jobs the old one left (job_manager.reconcile).

    >>> proc, pipe_w, url = restart(head.session_dir, head.gcs_address,
    ...                             head.job_server_url, detached=False)  # doctest: +SKIP
    """
    from urllib.parse import urlsplit

    from . import node
    parts = urlsplit(job_server_url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"job server URL {job_server_url!r} has no host:port")
    p = JobServerPlan(host=parts.hostname, port=parts.port, explicit_port=True)
    procs, reported, pipe_w = node._spawn(command(p, gcs_address), session_dir,
                                          node.read_token(session_dir), detached, timeout,
                                          {} if register else None)
    found = settle(p, procs[0], reported[0], [], session_dir)
    return procs[0], pipe_w, found or job_server_url


def read_url(session_dir: str) -> str | None:
    """The job server's URL recorded in a session directory, if any."""
    try:
        with open(os.path.join(session_dir, URL_FILE)) as f:
            return f.read().strip() or None
    except OSError:
        return None

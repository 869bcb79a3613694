"""Whether, where and how the head starts its dashboard process (node.start_head).

Ray's rules: ``include_dashboard`` None starts it when its packages are
installed (and says so in one log line when they are not), True requires it
(an ImportError naming the install command otherwise), False never starts it.
``dashboard_port`` None means 8265, or any free port when 8265 is taken (the
head says which); 0 means any free port; any other port is that port or an
error. The dashboard process binds its port itself and reports it, so "a free
port" is never raced for.

:func:`plan` is the decision (pure but for the two probes it is given);
:func:`command` the process to start, :func:`settle` what to make of its
start-up report. Nothing here imports starlette or uvicorn.

>>> p = plan(None, "127.0.0.1", None, missing=[], port_free=lambda h, p: True)
>>> p.port, p.explicit_port
(8265, False)
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import DEFAULT_HOST, DEFAULT_PORT, INSTALL_HINT

logger = logging.getLogger("ember")

LOG_NAME = "dashboard"          # logs/dashboard.log, and its role for `ember stop`
URL_FILE = "dashboard_url"      # in the session directory
KV_KEY = "dashboard_url"        # in the control service's "cluster" KV namespace


@dataclass(frozen=True)
class DashboardPlan:
    """A dashboard to start: on ``host:port``; ``explicit_port``: that port or fail
    (else any free one when it is taken); ``required``: its failure to start fails
    the head (else the head runs on without it)."""

    host: str
    port: int
    explicit_port: bool
    required: bool


def plan(include_dashboard: bool | None, host: str | None, port: int | None, *,
         missing: Sequence[str], port_free: Callable[[str, int], bool]
         ) -> DashboardPlan | None:
    """The dashboard to start, or None. ``missing``: its packages not installed;
    ``port_free(host, port)``: whether a server could listen there now.

    >>> plan(None, None, None, missing=["uvicorn"], port_free=lambda h, p: True) is None
    True
    >>> plan(True, None, None, missing=["uvicorn"], port_free=lambda h, p: True)
    Traceback (most recent call last):
    ImportError: the dashboard needs uvicorn, which is not installed: pip install ...
    """
    if include_dashboard is not None and not isinstance(include_dashboard, bool):
        raise TypeError(f"include_dashboard must be None, True or False, got "
                        f"{include_dashboard!r}")
    if include_dashboard is False:
        return None
    host = DEFAULT_HOST if host is None else host
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"dashboard_host must be an IP address to listen on (e.g. "
                         f"\"127.0.0.1\", or \"0.0.0.0\" for every interface), got {host!r}")
    host = host.strip().strip("[]")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 <= port <= 65535):
        raise ValueError(f"dashboard_port must be a port number 0-65535 (0: any free port), "
                         f"got {port!r}")
    if missing:
        if include_dashboard:
            raise ImportError(f"the dashboard needs {', '.join(missing)}, which "
                              f"{'is' if len(missing) == 1 else 'are'} not installed: "
                              f"{INSTALL_HINT} (or pass include_dashboard=False / leave "
                              "out --include-dashboard)")
        return None
    explicit = port is not None and port != 0
    if explicit and not port_free(host, port):   # type: ignore[arg-type]
        raise OSError(f"the dashboard port {port} on {host} is already in use: pick another "
                      "dashboard_port (--dashboard-port), 0 for any free port, or leave it "
                      f"out ({DEFAULT_PORT}, or a free port when that is taken)")
    return DashboardPlan(host=host, port=DEFAULT_PORT if port is None else port,
                         explicit_port=explicit, required=include_dashboard is True)


def plan_here(include_dashboard: bool | None, host: str | None, port: int | None
              ) -> DashboardPlan | None:
    """:func:`plan` for this machine; logs one line when the dashboard is left out
    because its packages are missing."""
    from .. import node
    from . import missing_requirements
    missing = missing_requirements() if include_dashboard is not False else []
    chosen = plan(include_dashboard, host, port, missing=missing, port_free=node.port_is_free)
    if chosen is None and missing:
        logger.info("Ember dashboard not started: %s not installed (%s)",
                    " and ".join(missing), INSTALL_HINT)
    return chosen


def command(p: DashboardPlan | None, gcs_address: str) -> list[tuple[str, str, list[str]]]:
    """The dashboard's (what, log name, argv) for node._spawn: none without a plan."""
    if p is None:
        return []
    from ..http_listen import server_argv
    argv = server_argv("ember._private.dashboard.main", gcs_address, p.host, p.port,
                       p.explicit_port)
    if p.required:
        argv.append("--required")
    return [("dashboard", LOG_NAME, argv)]


def ready_message(port: int | None = None, error: str | None = None) -> str:
    """What the dashboard process reports on its ready pipe (one line of JSON)."""
    return json.dumps({"port": port} if error is None else {"error": error})


def parse_ready(line: str) -> tuple[int | None, str | None]:
    """(port, None) or (None, why it did not start), from :func:`ready_message`.

    >>> parse_ready(ready_message(port=8265)), parse_ready(ready_message(error="boom"))
    ((8265, None), (None, 'boom'))
    """
    try:
        msg = json.loads(line)
        if isinstance(msg, dict) and isinstance(msg.get("port"), int):
            return msg["port"], None
        if isinstance(msg, dict) and msg.get("error"):
            return None, str(msg["error"])
    except ValueError:
        pass
    return None, f"unexpected start-up report {line!r}"


def address(host: str, port: int) -> str:
    """Ray's ``dashboard_url``: ``host:port``, no scheme. ``0.0.0.0`` is shown as the
    loopback address a browser on this machine can open.

    >>> address("127.0.0.1", 8265), address("0.0.0.0", 8265), address("::1", 80)
    ('127.0.0.1:8265', '127.0.0.1:8265', '[::1]:80')
    """
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"


def http_url(dashboard_url: str, tls_on: bool) -> str:
    """The URL to open for a ``host:port`` dashboard address.

    >>> http_url("127.0.0.1:8265", False)
    'http://127.0.0.1:8265'
    """
    return f"{'https' if tls_on else 'http'}://{dashboard_url}"


def port_note(requested: int | None, dashboard_url: str | None) -> str | None:
    """What to tell the user when 8265 was taken and another port was picked.

    >>> port_note(None, "127.0.0.1:40123")
    'port 8265 was in use, so the dashboard listens on port 40123 instead'
    >>> port_note(None, "127.0.0.1:8265") is None
    True
    """
    if requested is not None or not dashboard_url:
        return None
    got = int(dashboard_url.rpartition(":")[2])
    if got == DEFAULT_PORT:
        return None
    return f"port {DEFAULT_PORT} was in use, so the dashboard listens on port {got} instead"


def exposure_warning(host: str, tls_on: bool) -> str | None:
    """The warning a dashboard on a network address without TLS deserves.

    >>> exposure_warning("127.0.0.1", False) is None
    True
    """
    from ..tls import is_loopback
    if tls_on or is_loopback(host):
        return None
    return (f"the dashboard listens on {host} without TLS: the cluster token in its "
            "cookie and everything it shows cross the network in the clear. Start the "
            "cluster with --tls-cert/--tls-key (EMBER_TLS_*), or keep --dashboard-host "
            "on 127.0.0.1 and reach it through an SSH tunnel")


def settle(p: DashboardPlan | None, procs: list[subprocess.Popen], reported: list[str],
           session_dir: str, registered: bool) -> str | None:
    """After node._spawn: the dashboard's ``host:port``, or None. A dashboard that
    was not required and reported that it could not start is taken out of
    ``procs`` (it exits on its own; its log says why) and left running without.
    One that runs is moved before the node manager, which stays the last of
    ``procs`` (callers take ``procs[-1]`` as the node manager, the parent of workers).
    """
    if p is None:
        return None
    proc, line = procs.pop(), reported[-1]
    port, error = parse_ready(line)
    if port is None:
        logger.warning("Ember dashboard not started: %s (see %s)", error,
                       os.path.join(session_dir, "logs", f"{LOG_NAME}.log"))
        _reap(proc)
        if registered:
            from ..node import unregister_process
            unregister_process(session_dir, proc.pid)
        return None
    procs.insert(len(procs) - 1, proc)
    url = address(p.host, port)
    from .. import tls
    tls_on = tls.load() is not None
    requested = None if (p.port == DEFAULT_PORT and not p.explicit_port) else p.port
    note = port_note(requested, url)
    if note:
        logger.info("Ember dashboard: %s", note)
    exposed = exposure_warning(p.host, tls_on)
    if exposed:
        logger.warning("Warning: %s", exposed)
    with open(os.path.join(session_dir, URL_FILE), "w") as f:
        f.write(url)
    logger.info("Ember dashboard: %s", http_url(url, tls_on))
    return url


def _reap(proc: Any) -> None:
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_url(session_dir: str) -> str | None:
    """The dashboard's ``host:port`` recorded in a session directory, if any."""
    try:
        with open(os.path.join(session_dir, URL_FILE)) as f:
            return f.read().strip() or None
    except OSError:
        return None

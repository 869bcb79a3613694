"""The job server: Ray's Jobs REST API over the standard library's HTTP server,
``python -m ember._private.job_server`` on the head (started by ``ember start
--head``, or a test ``Cluster`` with ``include_job_server=True``; see job_launch.py).

Routes (JSON in and out; every request needs the cluster token, http_auth.py):

    GET    /api/version
    GET    /api/jobs/                       list of JobDetails
    POST   /api/jobs/                       submit: {"entrypoint", "submission_id", "runtime_env",
                                            "metadata", "entrypoint_num_cpus", ...}
                                            -> {"submission_id", "job_id"}
    GET    /api/jobs/<id>                   JobDetails
    POST   /api/jobs/<id>/stop              {"stopped": bool}
    DELETE /api/jobs/<id>                   {"deleted": bool}
    GET    /api/jobs/<id>/logs              {"logs": str}
    GET    /api/jobs/<id>/logs/tail?offset=N&wait=S
                                            {"logs", "offset", "done"} (job_state.tail_frame);
                                            waits up to S s for output after byte N
    GET    /api/packages/<proto>/<name>     200 if that runtime_env package is stored, else 404
    PUT    /api/packages/<proto>/<name>     store one (the body is the zip)

Errors are ``{"error": "..."}`` with 400 (bad request), 401 (token), 404 (no such
job), 409 (submission id taken), 413 (package too large) or 500. HTTPS when
EMBER_TLS_* is set (tls.wrap_http_server). It binds its port itself, reports it
on the ready pipe, records its URL in the control service's KV
(``cluster``/``job_server_url``) and in ``session_*/job_server_url``, and serves
until its parent's watchdog pipe closes or it gets SIGTERM.

>>> route("POST", "/api/jobs/ember_submit_1/stop")
('stop', 'ember_submit_1')
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import job_launch

logger = logging.getLogger("ember.jobs")

_ROUTES: list[tuple[str, tuple[str, ...], str]] = [
    # (method, path pattern, name): "{}" matches one path segment, passed on.
    ("GET", ("api", "version"), "version"),
    ("GET", ("api", "jobs"), "list"),
    ("POST", ("api", "jobs"), "submit"),
    ("GET", ("api", "jobs", "{}"), "get"),
    ("DELETE", ("api", "jobs", "{}"), "delete"),
    ("POST", ("api", "jobs", "{}", "stop"), "stop"),
    ("GET", ("api", "jobs", "{}", "logs"), "logs"),
    ("GET", ("api", "jobs", "{}", "logs", "tail"), "tail"),
    ("GET", ("api", "packages", "{}", "{}"), "package_exists"),
    ("HEAD", ("api", "packages", "{}", "{}"), "package_exists"),
    ("PUT", ("api", "packages", "{}", "{}"), "put_package"),
]


def route(method: str, path: str) -> tuple[str, ...] | None:
    """(handler name, *path arguments) for a request, None if no route matches; a
    path that exists under another method gives ("method_not_allowed",).

    >>> route("GET", "/api/jobs/"), route("DELETE", "/api/jobs/a"), route("PUT", "/api/jobs/a")
    (('list',), ('delete', 'a'), ('method_not_allowed',))
    """
    parts = tuple(unquote(p) for p in urlsplit(path).path.split("/") if p)
    found_path = False
    for m, pattern, name in _ROUTES:
        if len(pattern) != len(parts):
            continue
        args = []
        for want, got in zip(pattern, parts):
            if want == "{}":
                args.append(got)
            elif want != got:
                break
        else:
            if m == method.upper():
                return (name, *args)
            found_path = True
    return ("method_not_allowed",) if found_path else None


def package_uri(protocol: str, name: str) -> str:
    """The runtime_env URI of ``/api/packages/<protocol>/<name>``.

    >>> package_uri("gcs", "_ember_pkg_ab.zip")
    'gcs://_ember_pkg_ab.zip'
    """
    if protocol != "gcs" or not name or "/" in name or name.startswith("."):
        raise ValueError(f"unsupported package {protocol}://{name}: only gcs://<name>.zip "
                         "packages are stored by the job server")
    return f"{protocol}://{name}"


def max_package_bytes() -> int:
    """The largest package body accepted (runtime_env's upload limit, plus room)."""
    limit = os.environ.get("EMBER_RUNTIME_ENV_MAX_PACKAGE_BYTES", "")
    base = int(limit) if limit.isdigit() else 100 << 20
    return base + (1 << 20)


class _Handler(BaseHTTPRequestHandler):
    server_version = "EmberJobServer"
    protocol_version = "HTTP/1.1"
    manager: Any = None
    token: str = ""

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 - stdlib's name
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _body(self, limit: int) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise OverflowError(f"the request body is {length} bytes; the limit is {limit}")
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        from .http_auth import cookie_header, decide
        split = urlsplit(self.path)
        d = decide(self.token, self.command, split.path, split.query.encode("latin-1"),
                   self.headers.items())
        if d.query_string is not None:
            self.path = split.path + ("?" + d.query_string.decode("latin-1")
                                      if d.query_string else "")
        if d.redirect is not None:
            secure = hasattr(self.connection, "getpeercert")     # an ssl.SSLSocket
            self._send(303, None, {"Location": d.redirect,
                                   "Set-Cookie": cookie_header(self.token, secure).decode()})
            return False
        if not d.allow:
            self._send(401, {"error": "this Ember job server needs the cluster token: send "
                                      "'Authorization: Bearer <token>' (the file `token` in "
                                      "the head's session directory, or EMBER_CLUSTER_TOKEN)"},
                       {"WWW-Authenticate": 'Bearer realm="ember"'})
            return False
        return True

    def _dispatch(self) -> None:
        if not self._authorized():
            return
        found = route(self.command, self.path)
        if found is None:
            return self._error(404, f"no such endpoint: {self.command} {urlsplit(self.path).path}")
        name, *args = found
        if name == "method_not_allowed":
            return self._error(405, f"{self.command} is not allowed on {self.path}")
        from .job_manager import JobExists, JobNotFound
        try:
            getattr(self, "_do_" + name)(*args)
        except JobNotFound as e:
            self._error(404, str(e.args[0] if e.args else e))
        except JobExists as e:
            self._error(409, str(e))
        except OverflowError as e:
            self._error(413, str(e))
        except ValueError as e:
            self._error(400, str(e))
        except Exception as e:  # noqa: BLE001 - the client gets the reason
            logger.exception("%s %s failed", self.command, self.path)
            self._error(500, f"{type(e).__name__}: {e}")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    # ---------------------------------------------------------------- routes
    def _do_version(self) -> None:
        from .. import __version__
        self._send(200, {"version": "1", "ember_version": __version__})

    def _do_list(self) -> None:
        self._send(200, self.manager.list())

    def _do_submit(self) -> None:
        try:
            body = json.loads(self._body(16 << 20) or b"null")
        except json.JSONDecodeError as e:
            raise ValueError(f"the submission is not valid JSON: {e}") from None
        sid = self.manager.submit(body)
        self._send(200, {"submission_id": sid, "job_id": None})

    def _do_get(self, sid: str) -> None:
        self._send(200, self.manager.get(sid))

    def _do_delete(self, sid: str) -> None:
        self._send(200, {"deleted": self.manager.delete(sid)})

    def _do_stop(self, sid: str) -> None:
        self._send(200, {"stopped": self.manager.stop(sid)})

    def _do_logs(self, sid: str) -> None:
        data, _ = self.manager.read_logs(sid, 0, limit=1 << 62)
        self._send(200, {"logs": data.decode("utf-8", "replace")})

    def _do_tail(self, sid: str) -> None:
        query = parse_qs(urlsplit(self.path).query)
        try:
            offset = int(query.get("offset", ["0"])[0])
            wait = float(query.get("wait", ["0"])[0])
        except ValueError:
            raise ValueError("offset must be a byte count and wait a number of seconds") \
                from None
        self._send(200, self.manager.tail(sid, max(0, offset), wait))

    def _do_package_exists(self, protocol: str, name: str) -> None:
        uri = package_uri(protocol, name)
        if self.manager.package_exists(uri):
            self._send(200, {"uri": uri})
        else:
            self._error(404, f"package {uri} is not stored")

    def _do_put_package(self, protocol: str, name: str) -> None:
        uri = package_uri(protocol, name)
        self.manager.put_package(uri, self._body(max_package_bytes()))
        self._send(200, {"uri": uri})


def make_server(sock: Any, manager: Any, token: str) -> ThreadingHTTPServer:
    """An HTTP(S) server on the bound socket ``sock`` answering with ``manager``."""
    from . import tls
    handler = type("JobHandler", (_Handler,), {"manager": manager, "token": token})
    server = ThreadingHTTPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True
    tls.wrap_http_server(server)
    return server


def main(argv: list[str] | None = None) -> int:
    from .http_listen import add_server_arguments, bind, publish
    parser = argparse.ArgumentParser(description="Ember job server")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from . import process_util, tls
    from .http_auth import TOKEN_ENV
    from .job_manager import JobManager
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise SystemExit(f"{TOKEN_ENV} is not set: the job server is started by the head")
    sock = bind(args.host, args.port, args.port_fallback)
    port = sock.getsockname()[1]      # before TLS wraps (and detaches) the socket
    manager = JobManager(args.gcs_address, token)
    server = make_server(sock, manager, token)
    url = job_launch.url(args.host, port, tls.load() is not None)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    if args.parent_fd >= 0:
        process_util.watch_parent(args.parent_fd, lambda: os._exit(0))
    if not publish(args.gcs_address, token, job_launch.KV_KEY, url,
                   deadline=time.monotonic() + 15.0):
        logger.warning("could not record the job server's address in the control service")
    # Jobs a job server before this one left unfinished: fail or watch them.
    manager.start_reconciling()
    if args.ready_fd >= 0:
        process_util.report_ready(args.ready_fd, json.dumps({"port": port}))
    logger.info("job server serving on %s (control service %s)", url, args.gcs_address)
    server.serve_forever(poll_interval=0.5)
    manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

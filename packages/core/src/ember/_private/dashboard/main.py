"""Entry point of the dashboard process: ``python -m ember._private.dashboard.main``.

Started by the head (launch.py, node._spawn) with the cluster token in
$EMBER_CLUSTER_TOKEN. It binds its port first (with ``--port-fallback``, any
free port when that one is taken), reports the port on the ready pipe, then
records ``host:port`` in the control service's KV (``cluster``/``dashboard_url``,
where drivers that connect later find it) and serves until its parent's
watchdog pipe closes or it gets SIGTERM. Served over HTTPS when EMBER_TLS_* is
set (with a CA: clients must present a certificate it signed).

Without ``--required``, a failure to start (say, a broken install) is
reported on the ready pipe as an error and the head runs on without a
dashboard; with it, the process exits with the error and the head fails.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from .. import process_util
from ..http_listen import add_server_arguments, bind, publish
from . import launch

logger = logging.getLogger("ember.dashboard")

SHUTDOWN_GRACE_S = 2.0
PUBLISH_WAIT_S = 15.0


def _server(app: Any, sock: socket.socket) -> Any:
    import uvicorn

    from .. import tls
    cfg = tls.load()
    ssl_args: dict[str, Any] = {}
    if cfg is not None:
        import ssl
        ssl_args = {"ssl_certfile": cfg.cert_path, "ssl_keyfile": cfg.key_path}
        if cfg.ca_path:
            ssl_args.update(ssl_ca_certs=cfg.ca_path, ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S), **ssl_args)
    return uvicorn.Server(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    parser.add_argument("--required", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..http_auth import TOKEN_ENV
    token = os.environ.get(TOKEN_ENV, "")
    try:
        if not token:
            raise RuntimeError(f"{TOKEN_ENV} is not set: the dashboard is started by the head")
        sock = bind(args.host, args.port, args.port_fallback)
        from .app import create_app
        from .source import ClusterSource
        server = _server(create_app(ClusterSource(args.gcs_address, token), token), sock)
    except Exception as e:
        if args.required or args.ready_fd < 0:
            raise
        logger.exception("the dashboard could not start")
        process_util.report_ready(args.ready_fd, launch.ready_message(error=str(e)))
        return 1
    port = sock.getsockname()[1]
    stop = threading.Event()

    def parent_gone() -> None:
        # The node is stopping (or its starter died): nothing to finish for the
        # pages still open, and shutdowns must not wait on them.
        stop.set()
        logger.info("dashboard stopped: its node is stopping")
        sys.stdout.flush()
        os._exit(0)

    if args.parent_fd >= 0:
        process_util.watch_parent(args.parent_fd, parent_gone)
    # Recorded before the head reports ready, so a driver connecting right after
    # `ember start` finds it; the control service starts alongside (seconds).
    url = launch.address(args.host, port)
    if not publish(args.gcs_address, token, launch.KV_KEY, url, stop=stop,
                   deadline=time.monotonic() + PUBLISH_WAIT_S):
        threading.Thread(target=publish, args=(args.gcs_address, token, launch.KV_KEY, url),
                         kwargs={"stop": stop},
                         name="ember-dashboard-publish", daemon=True).start()
    if args.ready_fd >= 0:
        process_util.report_ready(args.ready_fd, launch.ready_message(port=port))
    logger.info("dashboard serving on %s (control service %s)",
                launch.address(args.host, port), args.gcs_address)
    started = time.monotonic()
    server.run(sockets=[sock])     # SIGTERM/SIGINT: uvicorn stops it gracefully
    stop.set()
    logger.info("dashboard stopped after %.0fs", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

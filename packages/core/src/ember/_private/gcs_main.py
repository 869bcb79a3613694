"""Entry point of the control-service process: ``python -m ember._private.gcs_main``."""
from __future__ import annotations

import argparse
import os
import threading
import time

from . import process_util, rpc
from .gcs import ControlService
from .node import CLUSTER_KV_NS
from .protos import ember_pb2_grpc as pbg


def main(argv: list[str] | None = None) -> None:
    """``argv``: the arguments (default ``sys.argv[1:]``); the supervisor forks this
    process and passes them (gcs_supervisor.py)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-fd", type=int, default=-1)
    parser.add_argument("--session-name", default="")
    parser.add_argument("--head-node-id", default="")
    parser.add_argument("--bind-retry-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    token = os.environ.pop(rpc.TOKEN_ENV)

    service = ControlService(os.path.join(args.session_dir, "control.sqlite"), token)
    # What joining nodes and drivers ask for (node.cluster_kv): the session's
    # name, so another machine's node uses a session directory of the same
    # name, and which node is the head.
    for key, value in (("session_name", args.session_name),
                       ("head_node_id", args.head_node_id)):
        if value:
            service.kv.put(CLUSTER_KV_NS, key.encode(), value.encode(), True)
    # Long-polls (actor lookups) and one stream per driver each hold a thread.
    server = rpc.make_server(token, max_workers=128)
    pbg.add_ControlServiceServicer_to_server(service, server)
    pbg.add_StateServiceServicer_to_server(service.state, server)
    port = _bind(server, args.host, args.port, args.bind_retry_s)
    server.start()
    stop = threading.Event()
    if args.parent_fd >= 0:
        process_util.watch_parent(args.parent_fd, stop.set)
    process_util.install_term_handler(stop.set)
    if args.ready_fd >= 0:
        process_util.report_ready(args.ready_fd, str(port))
    stop.wait()
    service.actors.stop()
    server.stop(grace=0.5).wait()
    service.stop()
    # Placement threads may sit in a lease long-poll; do not wait for them.
    os._exit(0)


def _bind(server, host: str, port: int, retry_s: float) -> int:
    """Listen on ``host:port``, trying for ``retry_s`` seconds: a restarted control
    service must get its old port back, which a moment after the old one died
    can still be held (connections closing)."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            return rpc.bind(server, host, port)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    main()

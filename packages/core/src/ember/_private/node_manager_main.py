"""Entry point of the node-manager process: ``python -m ember._private.node_manager_main``."""
from __future__ import annotations

import argparse
import json
import os
import threading
import time

from . import process_util, worker_fork
from .ids import TOKEN_ENV


def main(argv: list[str] | None = None) -> None:
    """``argv``: the arguments (default ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--resources-json", required=True)
    parser.add_argument("--gpu-ids", default="")
    parser.add_argument("--shm-dir", required=True)
    parser.add_argument("--shm-prefix", required=True)
    parser.add_argument("--prestart", type=int, default=0)
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--parent-fd", type=int, default=-1)
    parser.add_argument("--labels-json", default="{}")
    parser.add_argument("--metrics-export-port", type=int,
                        default=int(os.environ.get("EMBER_METRICS_EXPORT_PORT", "0") or 0))
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV)

    # Workers watch this pipe: when this process dies, however, they exit.
    watch_r, watch_w = os.pipe()
    os.set_inheritable(watch_r, True)
    # Forked first, while this process has no thread yet (worker_fork.py): it
    # imports what only workers run on while this process imports its own.
    # `ember stop` finds it and its workers by this command line's session directory.
    forks = None
    if worker_fork.enabled():
        log_dir = os.path.join(args.session_dir, "logs")
        os.makedirs(log_dir, exist_ok=True)
        forks = worker_fork.ForkServer.fork(
            dict(os.environ, EMBER_SESSION_DIR=args.session_dir, PYTHONUNBUFFERED="1"),
            os.path.join(log_dir, f"worker_fork_server-{args.node_id[:12]}.err"), (watch_r,))
    # This process's own log (stdout/stderr) is size-capped like the workers'.
    from .log_rotation import install as rotate_logs
    rotate_logs()

    from . import rpc
    from .node_manager import NodeManager
    from .protos import ember_pb2_grpc as pbg
    nm = NodeManager(node_id=args.node_id, session_dir=args.session_dir, token=token,
                     gcs_address=args.gcs_address, total=json.loads(args.resources_json),
                     gpu_ids=[g for g in args.gpu_ids.split(",") if g], ip=args.host,
                     shm_dir=args.shm_dir, shm_prefix=args.shm_prefix, worker_watch_fd=watch_r,
                     labels=json.loads(args.labels_json), fork_server=forks)
    server = rpc.make_server(token, max_workers=64)
    pbg.add_NodeManagerServicer_to_server(nm, server)
    from .log_service import LogService
    pbg.add_LogServiceServicer_to_server(LogService(nm), server)   # `ember logs`
    server.add_generic_rpc_handlers((nm.transfer.generic_handler(),))
    nm.transfer.serve_ranges(token, args.host)
    pbg.add_MetricsServiceServicer_to_server(nm.metrics, server)
    from . import metrics_export
    metrics_sock = metrics_export.listen(args.host, args.metrics_export_port)
    nm.metrics_export_port = metrics_sock.getsockname()[1]
    nm.port = rpc.bind(server, args.host, args.port)
    server.start()
    nm.start_background()
    nm.prestart_workers(args.prestart)

    stop = threading.Event()
    if args.parent_fd >= 0:
        process_util.watch_parent(args.parent_fd, stop.set)
    process_util.install_term_handler(stop.set)

    # Calls wait out a restart of the control service (gcs_client.py).
    from .gcs_client import GcsClient
    gcs = nm._gcs = GcsClient(args.gcs_address, token)
    deadline = time.monotonic() + 30.0
    from .addresses import split_address, wait_listening
    wait_listening(*split_address(args.gcs_address), stop, deadline)   # started alongside
    gcs.RegisterNode(nm.node_info(), timeout=max(1.0, deadline - time.monotonic()),
                     wait_for_ready=True)
    if args.ready_fd >= 0:
        process_util.report_ready(args.ready_fd, str(nm.port))
    # Its HTTP server (and http.server's import) once the first scrape arrives.
    metrics_export.serve_when_asked(nm.metrics, token, metrics_sock)
    stop.wait()
    nm.stop()
    server.stop(grace=0.2)
    os.close(watch_w)
    # RPC threads may sit in a lease long-poll; exiting must not wait for them.
    os._exit(0)


if __name__ == "__main__":
    main()

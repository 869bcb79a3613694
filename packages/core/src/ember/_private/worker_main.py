"""Entry point of a worker process: ``python -m ember._private.worker_main``.

Started by the node manager with its address, the cluster token and a pipe to
watch in the environment; registers itself and then runs tasks on the main
thread until the node manager goes away or tells it to exit.

``--fork-server``: import what a worker runs on, then fork workers on the node
manager's request (worker_fork.py); each child runs ``main``.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> None:
    # First, before anything prints: stdout/stderr files are size-capped.
    from . import log_rotation, task_marks
    log_rotation.install()
    task_marks.install()
    from . import core_worker, metrics_registry, process_util, rpc
    from .protos import ember_pb2 as pb
    from .protos import ember_pb2_grpc as pbg
    from .task_executor import TaskExecutor
    from .transports.framed import FramedServer

    token = os.environ.pop(rpc.TOKEN_ENV)
    nm_address = os.environ["EMBER_NODE_MANAGER_ADDRESS"]
    watch_fd = int(os.environ.get("EMBER_WATCH_FD", "-1"))
    if watch_fd >= 0:
        process_util.watch_parent(watch_fd, lambda: os._exit(0))
    worker_id = os.urandom(14).hex()
    nm = rpc.Stub(rpc.channel(nm_address), pbg.NodeManagerStub, token)
    core = core_worker.CoreWorker(
        is_driver=False, token=token, node_id=os.environ["EMBER_NODE_ID"],
        gcs_address=os.environ["EMBER_GCS_ADDRESS"], node_manager_address=nm_address,
        shm_dir=os.environ["EMBER_SHM_DIR"], shm_prefix=os.environ["EMBER_SHM_PREFIX"],
        job_id=0, worker_id=worker_id, bind_ip=os.environ.get("EMBER_NODE_IP", "127.0.0.1"),
        # Started for a runtime_env: the tasks it submits inherit it (as in Ray).
        runtime_env=json.loads(os.environ.get("EMBER_RUNTIME_ENV") or "{}"))
    executor = TaskExecutor(core)
    core.executor = executor
    core.start()
    # PushTasks also over a framed socket on the same IP (transports/framed.py);
    # owners pick the transport, so every worker listens.
    push = FramedServer(token, core.address.rsplit(":", 1)[0], executor.serve_connection,
                        executor.exit_soon)
    core.push_port = push.start()
    core_worker.install(core)
    metrics_registry.start_reporting(core)
    nm.RegisterWorker(pb.RegisterWorkerRequest(
        worker_id=worker_id, pid=os.getpid(), port=int(core.address.rsplit(":", 1)[1]),
        push_port=push.port,
        runtime_env_hash=os.environ.get("EMBER_RUNTIME_ENV_HASH", "")), timeout=30)
    try:
        executor.run_forever()
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    os._exit(0)


# What a worker imports lazily on its way to registering and running its first task
# (its gRPC channel and server, the submitters, the clients). Imported once by the
# fork server, not by every worker as it starts: those imports cost each worker
# ~30 ms of CPU while the driver is still connecting (test_worker_fork checks that a
# forked worker imports none of these itself).
_LAZY_IMPORTS = (
    "grpc._channel", "grpc._server", "concurrent.futures.thread",
    "ember._private.actor_host", "ember._private.actor_submitter",
    "ember._private.gcs_client", "ember._private.object_recovery",
    "ember._private.rpc_chaos", "ember._private.store_client",
    "ember._private.task_state_counts", "ember._private.task_submitter",
)


def preload() -> None:
    """Import what ``main`` imports, so forked workers start with it loaded."""
    import importlib

    from . import core_worker, log_rotation, metrics_registry, process_util, rpc  # noqa: F401
    from . import task_marks  # noqa: F401
    from .protos import ember_pb2, ember_pb2_grpc  # noqa: F401
    from .task_executor import TaskExecutor  # noqa: F401
    from .transports.framed import FramedServer  # noqa: F401
    for name in _LAZY_IMPORTS:
        importlib.import_module(name)


if __name__ == "__main__":
    if sys.argv[1:] == ["--fork-server"]:
        from . import worker_fork
        preload()
        worker_fork.serve(main)
    else:
        main()

"""Starting and stopping the processes of an embedded one-node cluster.

``ember.init()`` with no address calls ``start_local_cluster``: it creates a
session directory and token, then starts the control service and the node
manager side by side (the node manager waits for the control service's port,
which the driver chose). Each child watches a pipe whose write end only the
driver holds, so if the driver dies in any way, they clean up and exit.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import ids, process_util, rpc
from .shm_store import ShmStore, default_shm_dir

SESSION_ROOT = os.path.join(os.environ.get("EMBER_TMPDIR", "/tmp"), "ember")


@dataclass
class LocalCluster:
    session_dir: str
    token: str
    gcs_address: str
    node_manager_address: str
    node_id: str
    shm_dir: str
    shm_prefix: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    parent_w: int = -1

    def stop(self, timeout: float = 5.0) -> None:
        """Close the watchdog pipe (children shut down), then make sure they did."""
        if self.parent_w >= 0:
            os.close(self.parent_w)
            self.parent_w = -1
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # The node manager removes shared-memory files; this is the backstop for
        # a node manager that was itself killed.
        ShmStore(self.shm_dir, self.shm_prefix).cleanup_all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_cluster(*, total: dict[str, float], gpu_ids: list[str],
                        prestart: int, timeout: float = 30.0) -> LocalCluster:
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    session = f"session_{stamp}_{os.getpid()}_{ids.new_unique_hex(3)}"
    session_dir = os.path.join(SESSION_ROOT, session)
    os.makedirs(os.path.join(session_dir, "logs"), mode=0o700, exist_ok=True)
    token = rpc.new_token()
    token_path = os.path.join(session_dir, "token")
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    node_id = ids.new_unique_hex(14)
    shm_dir = default_shm_dir()
    shm_prefix = f"ember_{ids.new_unique_hex(4)}_"
    gcs_port = _free_port()
    gcs_address = f"127.0.0.1:{gcs_port}"
    with open(os.path.join(session_dir, "gcs_address"), "w") as f:
        f.write(gcs_address)

    parent_r, parent_w = os.pipe()
    env = dict(os.environ)
    env[rpc.TOKEN_ENV] = token
    procs = []
    ready_fds = []
    commands = [
        ("control service", "gcs", ["-m", "ember._private.gcs_main", "--port", str(gcs_port)]),
        ("node manager", "node_manager", [
            "-m", "ember._private.node_manager_main", "--gcs-address", gcs_address,
            "--node-id", node_id, "--resources-json", json.dumps(total),
            "--gpu-ids", ",".join(gpu_ids), "--shm-dir", shm_dir, "--shm-prefix", shm_prefix,
            "--prestart", str(prestart)]),
    ]
    try:
        for what, name, argv in commands:
            ready_r, ready_w = os.pipe()
            log_path = os.path.join(session_dir, "logs", f"{name}.log")
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, *argv, "--session-dir", session_dir,
                     "--ready-fd", str(ready_w), "--parent-fd", str(parent_r)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=(ready_w, parent_r), start_new_session=True)
            os.close(ready_w)
            procs.append(proc)
            ready_fds.append((what, ready_r, log_path))
        ports = [process_util.read_ready(fd, timeout, what, log_path)
                 for what, fd, log_path in ready_fds]
    except BaseException:
        os.close(parent_w)
        for proc in procs:
            proc.kill()
            proc.wait()
        os.close(parent_r)
        raise
    os.close(parent_r)
    return LocalCluster(session_dir=session_dir, token=token, gcs_address=gcs_address,
                        node_manager_address=f"127.0.0.1:{ports[1]}", node_id=node_id,
                        shm_dir=shm_dir, shm_prefix=shm_prefix, procs=procs, parent_w=parent_w)

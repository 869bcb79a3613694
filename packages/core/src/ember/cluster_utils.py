"""A multi-node cluster on one machine, for tests and local experiments (Ray's ``cluster_utils``).

Every node is a real set of processes: the first ``add_node`` starts the head
(control service + node manager), each later one a node manager that joins it.
The processes are tied to the process that created the ``Cluster`` through a
watchdog pipe, so even if that process is SIGKILLed nothing is left running.

>>> from ember.cluster_utils import Cluster
>>> cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
>>> gpu_node = cluster.add_node(num_cpus=4, resources={"accel": 1}, labels={"zone": "b"})
>>> cluster.wait_for_nodes()
>>> cluster.connect()                     # ember.init(address=cluster.address)
>>> ember.cluster_resources()["CPU"]
6.0
>>> cluster.remove_node(gpu_node)
>>> cluster.shutdown()
"""
from __future__ import annotations

import atexit
import os
import time
from typing import Any

from ._private.node import NodeProcesses

__all__ = ["Cluster", "ClusterNode"]

ClusterNode = NodeProcesses
"""A node of a :class:`Cluster`: ``node_id`` (= ``unique_id``), ``ip``, ``address``
(its node manager's ``ip:port``), ``gcs_address``, ``resources``, ``labels``,
``is_head``, and ``all_processes()``."""

# Ray's defaults for a node of a test cluster: small, so many fit on one machine.
_DEFAULT_NODE_ARGS: dict[str, Any] = {
    "num_cpus": 1,
    "num_gpus": 0,
    "object_store_memory": 150 * 1024 * 1024,
}
_NODE_ARGS = {"num_cpus", "num_gpus", "resources", "labels", "object_store_memory", "memory",
              "node_ip_address", "node_manager_port", "port"}
# Head only, as in Ray; the dashboard is off unless asked for (include_dashboard=True),
# and so is the job server (include_job_server=True; its URL: head_node.job_server_url).
_HEAD_ARGS = {"port", "include_dashboard", "dashboard_host", "dashboard_port",
              "include_job_server", "job_server_port"}
_NODE_ARGS |= _HEAD_ARGS


class Cluster:
    """Start and stop the nodes of a cluster on this machine.

    Args:
        initialize_head: start the head node now, with ``head_node_args``.
        connect: also connect this process as a driver (``ember.init(address=...)``);
            needs ``initialize_head=True``.
        head_node_args: arguments of :meth:`add_node` for the head.
        shutdown_at_exit: stop every node when this process exits normally (if it
            dies otherwise, the nodes stop anyway: they watch a pipe it holds).

    >>> cluster = Cluster(initialize_head=True, connect=True,
    ...                   head_node_args={"num_cpus": 1})
    >>> worker = cluster.add_node(num_cpus=2, labels={"zone": "b"})
    >>> len(ember.nodes())
    2
    >>> cluster.shutdown()
    """

    def __init__(self, initialize_head: bool = False, connect: bool = False,
                 head_node_args: dict[str, Any] | None = None,
                 shutdown_at_exit: bool = True) -> None:
        if connect and not initialize_head:
            raise ValueError("Cluster(connect=True) needs initialize_head=True: there is no "
                             "head to connect to yet")
        self.head_node: ClusterNode | None = None
        self.worker_nodes: set[ClusterNode] = set()
        self.connected = False
        self._session_dir: str | None = None
        self._token: str | None = None
        self._connected_address: str | None = None
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    # ------------------------------------------------------------ addresses
    @property
    def address(self) -> str:
        """The control service's address, ``ip:port`` (what ``ember.init(address=...)`` takes).

        >>> ember.init(address=cluster.address)
        """
        if self.head_node is None:
            raise RuntimeError("the cluster has no head node yet: call add_node() first")
        return self.head_node.gcs_address

    @property
    def gcs_address(self) -> str:
        """Same as :attr:`address`."""
        return self.address

    @property
    def session_dir(self) -> str | None:
        """The session directory shared by the cluster's nodes (logs, token)."""
        return self._session_dir

    # ------------------------------------------------------------ nodes
    def add_node(self, wait: bool = True, **node_args: Any) -> ClusterNode:
        """Start a node; the first one is the head. Returns it once it has registered.

        Args:
            wait: accepted for Ray compatibility; the node has always registered
                with the control service when this returns.
            **node_args: ``num_cpus`` (default 1), ``num_gpus`` (default 0),
                ``resources`` (custom resources, ``{"name": quantity}``), ``labels``
                (``{"key": "value"}``), ``object_store_memory`` (bytes, default
                150 MiB), ``memory``, ``node_ip_address`` (default 127.0.0.1),
                ``node_manager_port``; for the head also ``port`` (control service)
                and ``include_dashboard``, ``dashboard_host``, ``dashboard_port``,
                ``include_job_server``, ``job_server_port``.

        >>> node = cluster.add_node(num_cpus=2, resources={"accel": 1}, labels={"zone": "a"})
        >>> node.node_id, node.address
        ('3f2a...', '127.0.0.1:41235')
        """
        from ._private import node as node_mod
        from ._private.resources import build_node_resources
        unknown = sorted(set(node_args) - _NODE_ARGS)
        if unknown:
            raise TypeError(f"add_node() got unknown argument(s) {', '.join(unknown)}; "
                            f"it takes {', '.join(sorted(_NODE_ARGS))}")
        args = {**_DEFAULT_NODE_ARGS, **node_args}
        labels = args.get("labels") or {}
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in labels.items()):
            raise ValueError(f"labels={labels!r} is invalid: pass a dict of non-empty string "
                             "keys to string values, e.g. labels={'zone': 'a'}")
        total, gpu_ids, _ = build_node_resources(
            args.get("num_cpus"), args.get("num_gpus"), args.get("resources"),
            args.get("memory"), args.get("object_store_memory"))
        ip = args.get("node_ip_address") or "127.0.0.1"
        if ip in ("0.0.0.0", "::") or not node_mod.is_local_ip(ip):
            raise ValueError(f"node_ip_address={ip!r} is not an address of this machine")
        prestart = max(0, min(int(total.get("CPU", 0)), 4))
        common: dict[str, Any] = dict(
            total=total, gpu_ids=gpu_ids, prestart=prestart, ip=ip, labels=labels,
            node_manager_port=int(args.get("node_manager_port") or 0))
        if self.head_node is None:
            session_dir, token = node_mod.new_session()
            node = node_mod.start_head(port=int(args.get("port") or 0), session_dir=session_dir,
                                       token=token,
                                       include_dashboard=args.get("include_dashboard", False),
                                       dashboard_host=args.get("dashboard_host"),
                                       dashboard_port=args.get("dashboard_port"),
                                       include_job_server=bool(args.get("include_job_server")),
                                       job_server_port=args.get("job_server_port"), **common)
            self._session_dir, self._token = session_dir, token
            self.head_node = node
        else:
            head_only = sorted(_HEAD_ARGS & set(node_args))
            if head_only:
                raise TypeError(f"add_node({', '.join(head_only)}=...) is for the head only; "
                                "other nodes join the head's control service")
            assert self._session_dir is not None and self._token is not None
            node = node_mod.start_node(gcs_address=self.head_node.gcs_address,
                                       token=self._token, session_dir=self._session_dir,
                                       **common)
            self.worker_nodes.add(node)
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stop a node's processes (its workers included).

        Graceful: SIGTERM, so the node manager stops its workers and frees its
        shared memory (SIGKILL if it takes over 10 s). Otherwise SIGKILL at once,
        as if the machine had failed. Removing the head stops the control service
        too.

        >>> cluster.remove_node(node, allow_graceful=False)
        """
        if node is not self.head_node and node not in self.worker_nodes:
            raise ValueError(f"node {node.node_id} is not a node of this cluster "
                             "(already removed?)")
        if allow_graceful:
            node.terminate(10.0)
        else:
            node.kill()
        if node is self.head_node:
            self.head_node = None
        else:
            self.worker_nodes.discard(node)

    def list_all_nodes(self) -> list[ClusterNode]:
        """The head (if running) followed by the other nodes.

        >>> [n.node_id for n in cluster.list_all_nodes()]
        """
        nodes = [self.head_node] if self.head_node is not None else []
        return nodes + sorted(self.worker_nodes, key=lambda n: n.node_id)

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Wait until the control service lists every node added (and not removed) as alive.

        Raises TimeoutError naming the nodes still missing.

        >>> cluster.wait_for_nodes(timeout=10)
        """
        from ._private import node as node_mod
        if self.head_node is None:
            return
        wanted = {n.node_id for n in self.list_all_nodes()}
        deadline = time.monotonic() + timeout
        missing = set(wanted)
        while True:
            try:
                left = deadline - time.monotonic()
                nodes = node_mod.query_nodes(self.address, self.head_node.token,
                                             timeout=max(0.5, min(5.0, left)))
                missing = wanted - {n.node_id for n in nodes if n.alive}
            except ConnectionError:
                pass
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(missing)} node(s) not alive in the control service "
                                   f"after {timeout}s: {', '.join(sorted(missing))}")
            time.sleep(0.05)

    # ------------------------------------------------------------ control service
    def kill_control_service(self, allow_restart: bool = True) -> int:
        """SIGKILL the control service, as a crash would; returns the pid killed.

        Its supervisor restarts it on the same address (state reloaded from the
        session's ``control.sqlite``). With ``allow_restart=False`` the supervisor
        is killed first, so it stays down until :meth:`restart_control_service`.

        >>> cluster.kill_control_service()
        >>> cluster.wait_for_control_service()
        """
        import signal

        from ._private import node as node_mod
        head = self._head()
        pid = head.control_service_pid()
        if pid is None:
            raise RuntimeError("the control service is not running (killed already, and not "
                               "restarted yet?): call wait_for_control_service() or "
                               "restart_control_service() first")
        if not allow_restart:
            supervisor = head.procs[0]
            supervisor.kill()
            supervisor.wait()
        os.kill(pid, signal.SIGKILL)
        if node_mod._wait_gone([pid], 10.0):
            raise RuntimeError(f"the control service (pid {pid}) survived SIGKILL")
        # A killed process shows as a zombie while its other threads still exit
        # (and hold its sockets): gone means its port no longer answers.
        from ._private.gcs_supervisor import is_listening
        ip, port = node_mod.split_address(self.address)
        deadline = time.monotonic() + 10.0
        while is_listening(ip, port) and time.monotonic() < deadline:
            time.sleep(0.05)
        return pid

    def restart_control_service(self, timeout: float = 30) -> None:
        """Start the control service again, on its address with its token and state,
        after :meth:`kill_control_service` with ``allow_restart=False`` (as
        ``ember start --head`` does for a CLI cluster).

        >>> cluster.restart_control_service()
        """
        from ._private import gcs_supervisor
        head = self._head()
        if head.control_service_pid() is not None or head.procs[0].poll() is None:
            raise RuntimeError("the control service (or its supervisor) is still running: "
                               "kill it with kill_control_service(allow_restart=False) first")
        proc, pipe_w = gcs_supervisor.restart_control_service(
            head.session_dir, detached=False, timeout=timeout)
        head.procs[0] = proc
        head.more_pipes.append(pipe_w)
        self.wait_for_control_service(timeout)

    def kill_job_server(self) -> int:
        """SIGKILL the head's job server (started with ``include_job_server``); its pid.

        >>> cluster.kill_job_server(); cluster.restart_job_server()
        """
        from ._private import job_launch
        from ._private import node as node_mod
        proc = next((p for p in self._head().procs if job_launch.is_job_server(p)), None)
        if proc is None or proc.poll() is not None:
            raise RuntimeError("the head has no running job server (include_job_server=True)")
        proc.kill()
        proc.wait()
        node_mod._kill_and_wait(node_mod.descendants(proc.pid), 5.0)
        return proc.pid

    def restart_job_server(self, timeout: float = 30) -> str:
        """Start the head's job server again on its address; returns its URL. It
        fails or watches again the jobs the dead one left (job_manager.reconcile)."""
        from ._private import job_launch
        head = self._head()
        if not head.job_server_url:
            raise RuntimeError("the head was started without a job server "
                               "(head_node_args={'include_job_server': True})")
        i = next((i for i, p in enumerate(head.procs) if job_launch.is_job_server(p)), None)
        if i is not None and head.procs[i].poll() is None:
            raise RuntimeError("the job server is still running: kill_job_server() first")
        proc, pipe_w, url = job_launch.restart(head.session_dir, head.gcs_address,
                                               head.job_server_url, detached=False,
                                               timeout=timeout)
        if i is None:
            head.procs.insert(len(head.procs) - 1, proc)
        else:
            head.procs[i] = proc
        head.more_pipes.append(pipe_w)
        head.job_server_url = url
        return url

    def wait_for_control_service(self, timeout: float = 30) -> None:
        """Wait until the control service answers (after a restart); TimeoutError if not.

        >>> cluster.wait_for_control_service(timeout=30)
        """
        from ._private import node as node_mod
        head = self._head()
        deadline = time.monotonic() + timeout
        while True:
            try:
                node_mod.query_nodes(self.address, head.token, timeout=2)
                return
            except ConnectionError as e:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the control service at {self.address} did not answer "
                                       f"within {timeout}s: {e}") from None
            time.sleep(0.05)

    def _head(self) -> ClusterNode:
        if self.head_node is None:
            raise RuntimeError("the cluster has no head node: call add_node() first")
        return self.head_node

    # ------------------------------------------------------------ drivers
    def connect(self, namespace: str | None = None) -> Any:
        """Connect this process as a driver: ``ember.init(address=cluster.address)``.

        >>> cluster.connect(namespace="test")
        """
        import ember
        from ._private import rpc
        # The token is this cluster's, whatever $EMBER_CLUSTER_TOKEN says.
        saved = os.environ.get(rpc.TOKEN_ENV)
        os.environ[rpc.TOKEN_ENV] = self.head_node.token if self.head_node else ""
        try:
            info = ember.init(address=self.address, namespace=namespace)
        finally:
            if saved is None:
                os.environ.pop(rpc.TOKEN_ENV, None)
            else:
                os.environ[rpc.TOKEN_ENV] = saved
        self.connected = True
        self._connected_address = self.address
        return info

    def shutdown(self) -> None:
        """Disconnect this process's driver (if :meth:`connect` connected it) and stop every
        node, the head last.

        >>> cluster.shutdown()
        """
        import ember
        from ._private import worker_state
        if self.connected:
            core = worker_state.core
            if core is not None and core.gcs_address == self._connected_address:
                ember.shutdown()
            self.connected = False
        for node in list(self.worker_nodes):
            self.remove_node(node)
        if self.head_node is not None:
            self.remove_node(self.head_node)

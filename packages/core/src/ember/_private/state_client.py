"""The state API's connection to a cluster, and its fan-out to nodes and processes.

A ``StateClient`` talks to the control service (ControlService for nodes,
actors and placement groups; StateService for tasks, jobs and worker deaths),
to every live node manager (GetStatus: its workers and store; LogService: its
log files) and, for objects, to every driver and worker (GetObjectsInfo). The
fan-outs run in parallel, each call bounded by ``timeout``; a node or process
that does not answer is left out and named in ``missing``.

Used by ``ember.util.state`` (inside a connected driver, or given an address)
and by the ``ember list/get/summary/memory/timeline/logs`` commands, which do
not connect as a driver.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from . import worker_state

MAX_FANOUT_THREADS = 16


def resolve_address(address: str | None) -> tuple[str, str]:
    """(control service address, token) for ``address``: "HOST:PORT", "auto" or None
    (the cluster ``ember start`` left running here, or $EMBER_ADDRESS)."""
    from . import node as node_mod
    from .api import _find_token
    address = (address or os.environ.get("EMBER_ADDRESS") or "auto").strip()
    if address == "auto":
        found = node_mod.find_latest_cluster()
        if found is None:
            raise ConnectionError(
                "no running Ember cluster found on this machine: pass address=\"HOST:PORT\" "
                "(--address on the command line), or start one with `ember start --head`")
        address = found
    try:
        node_mod.split_address(address)
    except ValueError as e:
        raise ValueError(f"{e}: pass the control service address as HOST:PORT") from None
    token = _find_token(address)
    if token is None:
        raise ConnectionError(f"no cluster token for {address}: set EMBER_CLUSTER_TOKEN to "
                              "the token printed by `ember start --head`")
    return address, token


class StateClient:
    """One connection to a cluster's state (see the module docstring).

    >>> with StateClient(timeout=10) as client:
    ...     nodes = client.nodes()
    """

    def __init__(self, address: str | None = None, timeout: float = 30.0, *,
                 channels: Callable[[str], Any] | None = None) -> None:
        """``channels``: the channel to use for an address, kept open by the caller
        (the dashboard's pool: closing a gRPC channel takes ~0.2 s); default: open
        channels here and close them in ``close()``."""
        from . import rpc
        from .protos import ember_pb2_grpc as pbg
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        core = worker_state.core
        self._core = core if address is None else None
        if self._core is not None:
            self.address, self.token = core.gcs_address, core.token
            self._chan = core.gcs.channel
            self._own_channel = False
        else:
            self.address, self.token = resolve_address(address)
            self._chan = channels(self.address) if channels else rpc.channel(self.address)
            self._own_channel = channels is None
            rpc.wait_ready(self._chan, min(self.timeout, 10.0),
                           f"the Ember control service at {self.address}")
        self.control = rpc.Stub(self._chan, pbg.ControlServiceStub, self.token)
        self.state = rpc.Stub(self._chan, pbg.StateServiceStub, self.token)
        self._channels: list[Any] = []
        self._channel_for = channels
        self.missing: list[str] = []     # what did not answer the last fan-out

    def close(self) -> None:
        for chan in self._channels:
            chan.close()
        self._channels.clear()
        if self._own_channel:
            self._chan.close()

    def __enter__(self) -> "StateClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _stub(self, address: str, kind: type) -> Any:
        from . import rpc
        if self._channel_for is not None:
            return rpc.Stub(self._channel_for(address), kind, self.token)
        chan = rpc.channel(address)
        self._channels.append(chan)
        return rpc.Stub(chan, kind, self.token)

    # ------------------------------------------------------------ control service
    def nodes(self) -> list:
        from .protos import ember_pb2 as pb
        return list(self.control.GetNodes(pb.Empty(), timeout=self.timeout).nodes)

    def head_node_id(self) -> str:
        from .node import CLUSTER_KV_NS
        from .protos import ember_pb2 as pb
        reply = self.control.KVGet(pb.KVRequest(ns=CLUSTER_KV_NS, key=b"head_node_id"),
                                   timeout=self.timeout)
        return reply.value.decode() if reply.found else ""

    def actors(self) -> list:
        from .protos import ember_pb2 as pb
        return list(self.control.ListActors(pb.Empty(), timeout=self.timeout).actors)

    def placement_groups(self) -> list:
        from .placement_group import flush_pending
        from .protos import ember_pb2 as pb
        flush_pending()         # this process's queued creates/removals show up
        return list(self.control.ListPlacementGroups(pb.Empty(), timeout=self.timeout).groups)

    def jobs(self) -> list:
        from .protos import ember_pb2 as pb
        return list(self.state.ListJobs(pb.Empty(), timeout=self.timeout).jobs)

    def worker_deaths(self) -> list:
        from .protos import ember_pb2 as pb
        return list(self.state.ListWorkerDeaths(pb.Empty(), timeout=self.timeout).deaths)

    def tasks(self, filters: Iterable[tuple] = (), limit: int = 0, newest_first: bool = False
              ) -> tuple[list[dict], int, int]:
        """(task attempt rows, matching before the limit, attempts dropped); with
        ``newest_first`` the latest attempts come first (and are the ones ``limit`` keeps)."""
        from .protos import ember_pb2 as pb
        if self._core is not None:
            # This driver's own recent events, so what it just ran shows at once.
            self._core.task_events.flush(timeout=self.timeout)
        query = pb.TaskEventQuery(limit=limit, newest_first=newest_first, filters=[
            pb.StateFilter(key=k, predicate=p, value=str(v)) for k, p, v in filters])
        reply = self.state.GetTaskEvents(query, timeout=self.timeout)
        return json.loads(reply.tasks), reply.total, reply.num_dropped

    def task_summary(self) -> tuple[dict, int]:
        """(TaskSummaries as a dict, attempts dropped), counted by the control service."""
        from .protos import ember_pb2 as pb
        if self._core is not None:
            self._core.task_events.flush(timeout=self.timeout)
        reply = self.state.GetTaskEvents(pb.TaskEventQuery(summarize=True),
                                         timeout=self.timeout)
        return json.loads(reply.summary), reply.num_dropped

    # ------------------------------------------------------------ fan-out
    def _fan_out(self, items: list, ask: Callable[[Any], Any], name: Callable[[Any], str]
                 ) -> list[tuple[Any, Any]]:
        """(item, answer) for each item that answered; the rest go to ``missing``."""
        self.missing = []
        if not items:
            return []

        def one(item: Any) -> tuple[Any, Any]:
            try:
                return item, ask(item)
            except Exception:  # noqa: BLE001 - reported as missing, never fatal
                return item, None

        with ThreadPoolExecutor(max_workers=min(MAX_FANOUT_THREADS, len(items))) as pool:
            answers = list(pool.map(one, items))
        self.missing = [name(item) for item, answer in answers if answer is None]
        return [(item, answer) for item, answer in answers if answer is not None]

    def node_statuses(self, nodes: list | None = None) -> dict[str, Any]:
        """NodeManager.GetStatus of each live node, by node id."""
        from .protos import ember_pb2 as pb
        from .protos import ember_pb2_grpc as pbg
        live = [n for n in (nodes if nodes is not None else self.nodes()) if n.alive]
        answers = self._fan_out(
            live, lambda n: self._stub(f"{n.ip}:{n.port}", pbg.NodeManagerStub).GetStatus(
                pb.Empty(), timeout=self.timeout), lambda n: f"node {n.node_id}")
        return {n.node_id: status for n, status in answers}

    def processes(self) -> list[tuple[str, str, str]]:
        """(CoreWorker address, kind, node id) of every live driver and worker."""
        nodes = self.nodes()
        out = [(j.driver.address, "DRIVER", j.driver.node_id) for j in self.jobs()
               if not j.end_time and j.driver.address]
        by_id = {n.node_id: n for n in nodes}
        for node_id, status in self.node_statuses(nodes).items():
            ip = by_id[node_id].ip
            out += [(f"{ip}:{w.port}", "WORKER", node_id) for w in status.workers
                    if w.worker_id and w.port]
        return out

    def objects(self, per_process_limit: int = 0) -> list[Any]:
        """Every live process's ObjectsInfoReply (drivers and workers)."""
        from .protos import ember_pb2 as pb
        from .protos import ember_pb2_grpc as pbg
        processes = self.processes()
        missing_nodes = list(self.missing)
        answers = self._fan_out(
            processes, lambda p: self._stub(p[0], pbg.CoreWorkerStub).GetObjectsInfo(
                pb.ObjectsInfoRequest(limit=per_process_limit), timeout=self.timeout),
            lambda p: f"{p[1].lower()} at {p[0]}")
        self.missing = missing_nodes + self.missing
        return [reply for _, reply in answers]

    def log_stub(self, node: Any) -> Any:
        from .protos import ember_pb2_grpc as pbg
        return self._stub(f"{node.ip}:{node.port}", pbg.LogServiceStub)

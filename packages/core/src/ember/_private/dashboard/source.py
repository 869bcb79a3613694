"""Where the dashboard's data comes from: the state API, node managers and their logs.

Each call makes its own ``StateClient`` (the control service, then the node
managers it fans out to), so concurrent page requests share no state; the
gRPC channels under them come from a pool kept open for the process (opening
is cheap, closing blocks for ~0.2 s), and a restarted control service is
simply reached again on the next poll. Rows are made by the state API's own
row functions (``ember.util.state.api``), then shaped by views.py; nothing
here decides what to show.

>>> source = ClusterSource("127.0.0.1:6379", timeout=5)
>>> source.cluster()["nodes"][0]["resources"]["CPU"]
{'used': 1.0, 'total': 2.0}
"""
from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import views

MAX_LOG_BYTES = 512 << 10        # what one log view carries at most (the end of the file)
MAX_TAIL_LINES = 5000
METRICS_TIMEOUT_S = 2.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def node_dict(n: Any) -> dict[str, Any]:
    """A NodeInfo message as a plain dict (views.node_view's input)."""
    return {"node_id": n.node_id, "ip": n.ip, "port": n.port, "alive": n.alive,
            "total": dict(n.total), "available": dict(n.available),
            "labels": dict(n.labels), "start_time": n.start_time,
            "metrics_export_port": n.metrics_export_port}


def status_dict(s: Any) -> dict[str, Any]:
    """A NodeStatus message as a plain dict (views.node_view's input)."""
    return {"available": dict(s.node.available), "num_workers": s.num_workers,
            "num_idle_workers": s.num_idle_workers, "pending_leases": s.pending_leases,
            "infeasible": list(s.infeasible), "store_used_bytes": s.store_used_bytes,
            "store_capacity_bytes": s.store_capacity_bytes,
            "store_num_objects": s.store_num_objects,
            "store_spilled_bytes": s.store_spilled_bytes,
            "workers": [{"worker_id": w.worker_id, "pid": w.pid, "start_time": w.start_time}
                        for w in s.workers]}


def parse_machine_memory(text: str) -> dict[str, int] | None:
    """``mem_used``/``mem_total`` from a node's Prometheus text (metrics_export.py).

    >>> parse_machine_memory("ember_node_mem_used 5.0\\nember_node_mem_total 8e+09\\n")
    {'mem_used': 5, 'mem_total': 8000000000}
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        for key in ("mem_used", "mem_total"):
            prefix = f"ember_node_{key} "
            if line.startswith(prefix):
                try:
                    out[key] = int(float(line[len(prefix):].split()[0]))
                except (ValueError, IndexError):
                    pass
    return out if "mem_total" in out else None


class ChannelPool:
    """gRPC channels by address, opened once and shared by every request (they are
    thread-safe); ``retain`` closes those of addresses no longer in use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, Any] = {}

    def __call__(self, address: str) -> Any:
        from .. import rpc
        with self._lock:
            chan = self._channels.get(address)
            if chan is None:
                chan = self._channels[address] = rpc.channel(address)
            return chan

    def retain(self, addresses: set[str]) -> None:
        with self._lock:
            gone = [self._channels.pop(a) for a in list(self._channels) if a not in addresses]
        for chan in gone:     # closing blocks: not on a request's time
            threading.Thread(target=chan.close, daemon=True).start()

    def close(self) -> None:
        self.retain(set())


class ClusterSource:
    """The dashboard's view of one cluster, at the control service ``address``.

    The token is the cluster's ($EMBER_CLUSTER_TOKEN in the dashboard process).
    """

    def __init__(self, address: str, token: str, timeout: float = 5.0) -> None:
        self.address = address
        self.token = token
        self.timeout = timeout
        self.channels = ChannelPool()

    def _client(self) -> Any:
        from ..state_client import StateClient
        return StateClient(self.address, self.timeout, channels=self.channels)

    # ------------------------------------------------------------ overview
    def nodes(self) -> list[dict[str, Any]]:
        """Every node (views.node_view), the head first, dead ones last."""
        with self._client() as client:
            nodes = client.nodes()
            head = client.head_node_id()
            statuses = client.node_statuses(nodes)
        self.channels.retain({self.address} | {f"{n.ip}:{n.port}" for n in nodes if n.alive})
        plain = [node_dict(n) for n in nodes]
        machine = self._machine_memory([n for n in plain if n["alive"]])
        out = [views.node_view(n, status_dict(statuses[n["node_id"]])
                               if n["node_id"] in statuses else None, head,
                               machine.get(n["node_id"])) for n in plain]
        return sorted(out, key=lambda v: (v["state"] == "DEAD", not v["is_head"],
                                          v["start_time_ms"] or 0))

    def cluster(self) -> dict[str, Any]:
        """The Overview (views.cluster_view)."""
        from ...util.state.api import _actor_row, _job_row
        nodes = self.nodes()
        with self._client() as client:
            actors = [_actor_row(a) for a in client.actors()]
            jobs = [_job_row(j) for j in client.jobs()]
            summary, _ = client.task_summary()
        return views.cluster_view(nodes, actors, summary, jobs, self.address, _now_ms())

    def _machine_memory(self, nodes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """Each node's physical memory, read from its metrics endpoint (those that answer)."""
        from .. import http_auth, tls
        cfg = tls.load()
        ctx = tls.client_ssl_context(cfg) if cfg is not None else None
        scheme = "https" if cfg is not None else "http"

        def scrape(n: dict[str, Any]) -> tuple[str, dict[str, int] | None]:
            port = n.get("metrics_export_port")
            if not port:
                return n["node_id"], None
            host = f"[{n['ip']}]" if ":" in n["ip"] else n["ip"]
            request = urllib.request.Request(f"{scheme}://{host}:{port}/metrics",
                                             headers=http_auth.auth_headers(self.token))
            try:
                with urllib.request.urlopen(request, timeout=METRICS_TIMEOUT_S,
                                            context=ctx) as reply:
                    return n["node_id"], parse_machine_memory(reply.read().decode())
            except (OSError, ValueError):
                return n["node_id"], None

        if not nodes:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
            return {k: v for k, v in pool.map(scrape, nodes) if v}

    # ------------------------------------------------------------ tables
    def actors(self, limit: int) -> list[dict[str, Any]]:
        """Actors, live ones first (views.actor_view)."""
        from ...util.state.api import _actor_row
        with self._client() as client:
            rows = [_actor_row(a) for a in client.actors()]
        return views.sort_actors([views.actor_view(a) for a in rows])[:limit]

    def tasks(self, limit: int) -> dict[str, Any]:
        """The newest task attempts (views.task_view), with how many there are."""
        with self._client() as client:
            rows, total, dropped = client.tasks(limit=limit, newest_first=True)
        now = _now_ms()
        return {"tasks": [views.task_view(r, now) for r in rows], "total": total,
                "dropped": dropped}

    def jobs(self) -> list[dict[str, Any]]:
        """Jobs (one per driver), newest first."""
        from ...util.state.api import _job_row
        with self._client() as client:
            rows = [_job_row(j) for j in client.jobs()]
        now = _now_ms()
        return sorted((views.job_view(j, now) for j in rows),
                      key=lambda j: -(j.get("start_time") or 0))

    def placement_groups(self) -> list[dict[str, Any]]:
        """Placement groups (views.placement_group_view), removed ones included."""
        from ...util.state.api import _pg_row
        with self._client() as client:
            rows = [_pg_row(g) for g in client.placement_groups()]
        return [views.placement_group_view(g) for g in rows]

    # ------------------------------------------------------------ logs
    def log_sources(self) -> list[dict[str, Any]]:
        """The logs of every live node (views.log_sources)."""
        from ..protos import ember_pb2 as pb
        files = []
        with self._client() as client:
            for node in client.nodes():
                if not node.alive:
                    continue
                try:
                    listing = client.log_stub(node).ListLogs(pb.Empty(), timeout=self.timeout)
                except Exception:  # noqa: BLE001 - an unreachable node lists nothing
                    continue
                for f in listing.files:
                    files.append((node.node_id, node.ip, {"name": f.name, "size": f.size,
                                                          "pid": f.pid, "is_err": f.is_err}))
        return views.log_sources(files)

    def log_tail(self, node_id: str, *, pid: int = 0, name: str = "", err: bool = False,
                 tail: int = 200) -> dict[str, Any]:
        """The last ``tail`` lines of one log: a worker's (``pid``; stderr with
        ``err``) or a file by ``name``. LookupError when there is no such log."""
        from ..log_service import strip_markers
        from ..protos import ember_pb2 as pb
        tail = max(1, min(int(tail), MAX_TAIL_LINES))
        with self._client() as client:
            matches = [n for n in client.nodes() if n.alive and n.node_id.startswith(node_id)]
            if len(matches) != 1 or not node_id:
                raise LookupError(f"no live node with id {node_id!r}")
            node = matches[0]
            request = pb.LogRequest(name="" if pid else name, pid=pid, is_err=err, tail=tail)
            data = b""
            for chunk in client.log_stub(node).GetLog(request, timeout=self.timeout):
                if chunk.error:
                    raise LookupError(chunk.error)
                data = (data + chunk.data)[-MAX_LOG_BYTES:]
        text = data.decode("utf-8", "replace")
        return {"node_id": node.node_id, "pid": pid or None, "name": name or None, "err": err,
                "text": strip_markers(text) if pid else text}

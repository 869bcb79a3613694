"""Which node should serve a lease request: a pure function over the cluster view.

The node manager that receives a request consults this before its own
scheduler: the answer is "here" (queue it locally), "there" (reply with a
spillback address; the owner asks that node), or "nowhere yet" (no live node
can ever fit it: wait and warn). Tested without processes
(tests/core/test_cluster_policy.py).

Policies (Ray's):

* DEFAULT, hybrid: stay on the local node while it is under half used and the
  request fits now; otherwise go to the least-used node where it fits now
  (the local node wins ties); if it fits nowhere now, queue locally when the
  local node could ever hold it, else at the least-used node that could.
* SPREAD: round-robin over the nodes that could ever hold it.
* Node affinity: that node, if alive and able to hold it; ``soft`` falls back
  to DEFAULT, hard fails with a message.
* ``label_selector``: only nodes whose labels match (``"!v"`` excludes a
  value, ``"in(a,b)"`` / ``"!in(a,b)"`` test sets) are candidates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# A node is "busy" for the hybrid policy once this share of its most-used
# resource is taken (Ray's scheduler_spread_threshold).
SPREAD_THRESHOLD = 0.5


@dataclass
class NodeView:
    node_id: str
    address: str                      # node manager host:port
    total: dict[str, float]
    available: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)
    alive: bool = True


@dataclass(frozen=True)
class Ask:
    shape: dict[str, float]           # what must be free to place it
    strategy: str = "DEFAULT"         # or "SPREAD"
    affinity_node_id: str = ""
    affinity_soft: bool = False
    label_selector: Mapping[str, str] = field(default_factory=dict)
    spilled: bool = False


@dataclass(frozen=True)
class Decision:
    kind: str                         # "local" | "spill" | "infeasible" | "fail"
    node_id: str = ""
    message: str = ""


def _fits(shape: Mapping[str, float], pool: Mapping[str, float]) -> bool:
    return all(pool.get(k, 0.0) >= v - 1e-9 for k, v in shape.items() if v > 0)


def utilization(node: NodeView) -> float:
    """The used share of the node's most-used resource (0 idle, 1 full)."""
    worst = 0.0
    for name, total in node.total.items():
        if total <= 0 or name.startswith("accelerator_type:") or name == "memory":
            continue
        used = 1.0 - node.available.get(name, 0.0) / total
        worst = max(worst, used)
    return worst


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    for key, want in selector.items():
        have = labels.get(key)
        if want.startswith("!in(") and want.endswith(")"):
            if have in _set(want[4:-1]):
                return False
        elif want.startswith("in(") and want.endswith(")"):
            if have not in _set(want[3:-1]):
                return False
        elif want.startswith("!"):
            if have == want[1:]:
                return False
        elif have != want:
            return False
    return True


def _set(body: str) -> set[str]:
    return {v.strip() for v in body.split(",") if v.strip()}


def choose(ask: Ask, local_id: str, nodes: Mapping[str, NodeView], spread_turn: int = 0
           ) -> Decision:
    """Decide where ``ask`` should be served; ``spread_turn`` rotates SPREAD."""
    live = {nid: n for nid, n in nodes.items() if n.alive}
    if ask.affinity_node_id:
        target = live.get(ask.affinity_node_id)
        if target is not None and _fits(ask.shape, target.total):
            return _at(target.node_id, local_id)
        if not ask.affinity_soft:
            state = "is not alive" if target is None else f"cannot hold {ask.shape}"
            return Decision("fail", message=(
                f"NodeAffinitySchedulingStrategy(node_id={ask.affinity_node_id!r}, soft=False): "
                f"that node {state}. Use soft=True to fall back to other nodes, or pick a live "
                "node from ember.nodes()"))
    candidates = [n for n in live.values()
                  if labels_match(ask.label_selector, n.labels) and _fits(ask.shape, n.total)]
    if not candidates:
        where = f" with labels {dict(ask.label_selector)}" if ask.label_selector else ""
        return Decision("infeasible", message=(
            f"no live node{where} can ever hold {ask.shape}; it waits until one joins"))
    local = live.get(local_id)
    local_ok = local is not None and local in candidates
    if ask.spilled and local_ok:
        return Decision("local", local_id)
    fit_now = [n for n in candidates if _fits(ask.shape, n.available)]
    if ask.strategy == "SPREAD":
        # Round-robin over every node that can hold it, busy or not: the view of
        # other nodes' free resources lags, and filtering on it herds requests
        # onto whichever node last looked idle.
        pool = sorted(candidates, key=lambda n: n.node_id)
        return _at(pool[spread_turn % len(pool)].node_id, local_id)
    if local_ok and local in fit_now and utilization(local) < SPREAD_THRESHOLD:
        return Decision("local", local_id)
    if fit_now:
        best = min(fit_now, key=lambda n: (utilization(n), n.node_id != local_id, n.node_id))
        return _at(best.node_id, local_id)
    if local_ok:
        return Decision("local", local_id)
    best = min(candidates, key=lambda n: (utilization(n), n.node_id))
    return _at(best.node_id, local_id)


def _at(node_id: str, local_id: str) -> Decision:
    return Decision("local", node_id) if node_id == local_id else Decision("spill", node_id)

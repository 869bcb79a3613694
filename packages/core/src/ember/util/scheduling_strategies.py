"""Scheduling strategies (Ray's ``ray.util.scheduling_strategies``).

Pass one as ``scheduling_strategy=`` to ``@ember.remote`` or ``.options()``;
the strings ``"DEFAULT"`` (pack onto the local node until it is half used, then
spread) and ``"SPREAD"`` (round-robin over nodes) work too.

>>> from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy
>>> node = ember.nodes()[0]["NodeID"]
>>> f.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
"""
from __future__ import annotations

__all__ = ["NodeAffinitySchedulingStrategy"]


class NodeAffinitySchedulingStrategy:
    """Run on the node with ``node_id``.

    ``soft=False``: only there; if that node is dead or can never fit the
    request, the task fails with TaskUnschedulableError. ``soft=True``: there
    if possible, else wherever the default policy puts it.

    >>> NodeAffinitySchedulingStrategy(node_id=ember.get_runtime_context().get_node_id(),
    ...                                soft=True)
    """

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"NodeAffinitySchedulingStrategy needs a node id string (from "
                             f"ember.nodes()[i]['NodeID']), got {node_id!r}")
        self.node_id = node_id
        self.soft = bool(soft)
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"

"""Inspect a running cluster: its nodes, actors, tasks, objects, jobs and workers.

Ray's ``ray.util.state``, with the same functions, parameters and record
types (in ``ember.util.state.common``). The same views are on the command line:
``ember list tasks --filter state=FAILED``, ``ember get actors ID``,
``ember summary tasks``, ``ember memory``, ``ember timeline``, ``ember logs``.

>>> import ember
>>> from ember.util.state import list_tasks, summarize_tasks
>>> ember.init()
>>> ember.get([f.remote() for _ in range(3)])
>>> [t.state for t in list_tasks(filters=[("name", "=", "f")])]
['FINISHED', 'FINISHED', 'FINISHED']
>>> summarize_tasks()["cluster"]["summary"]["f"]["state_counts"]
{'FINISHED': 3}

Parameters common to all functions: ``address`` (None: the cluster this
process is connected to, else the one ``ember start`` left running on this
machine; or "HOST:PORT"), ``timeout`` (seconds per request). The ``list_*``
functions take ``filters`` (``[("key", "=" or "!=", value)]``), ``limit``
(default 100) and ``detail``. ``raise_on_missing_output`` is accepted for
Ray compatibility: a node or process that does not answer is left out with a
``RuntimeWarning``, never an error.
"""
from __future__ import annotations

from .api import (get_actor, get_node, get_objects, get_placement_group, get_task,
                  get_worker, list_actors, list_jobs, list_nodes, list_objects,
                  list_placement_groups, list_tasks, list_workers, summarize_actors,
                  summarize_objects, summarize_tasks)

__all__ = ["get_actor", "get_node", "get_objects", "get_placement_group", "get_task",
           "get_worker", "list_actors", "list_jobs", "list_nodes", "list_objects",
           "list_placement_groups", "list_tasks", "list_workers", "summarize_actors",
           "summarize_objects", "summarize_tasks"]

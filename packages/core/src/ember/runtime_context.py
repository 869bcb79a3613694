"""``ember.get_runtime_context()``: who and where the caller is."""
from __future__ import annotations

import os
from typing import Any

from ._private import worker_state

__all__ = ["RuntimeContext", "get_runtime_context"]


class RuntimeContext:
    """Ids and resources of the current job, node, worker and task.

    >>> ctx = ember.get_runtime_context()
    >>> ctx.get_job_id(), ctx.get_node_id()
    """

    def __init__(self, core: Any) -> None:
        self._core = core

    def _task(self) -> Any:
        return getattr(self._core.current, "task", None)

    def get_job_id(self) -> str:
        task = self._task()
        job = task.spec.job_id if task is not None else self._core.job_id
        return f"{job:08x}"

    def get_node_id(self) -> str:
        return self._core.node_id

    def get_worker_id(self) -> str:
        return self._core.worker_id

    def get_task_id(self) -> str | None:
        task = self._task()
        return task.spec.task_id.hex() if task is not None else None

    def get_task_name(self) -> str | None:
        task = self._task()
        return task.spec.name if task is not None else None

    def get_actor_id(self) -> str | None:
        """The current actor's id in hex, or None outside an actor."""
        actor_id = self._core.actor_id
        return actor_id.hex() if actor_id is not None else None

    def get_actor_name(self) -> str | None:
        """The current actor's name ("" if unnamed), or None outside an actor."""
        if self._core.actor_id is None:
            return None
        return getattr(self._core, "actor_name", "")

    def get_assigned_resources(self) -> dict[str, float]:
        task = self._task()
        return dict(task.spec.resources) if task is not None else {}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        task = self._task()
        return {"GPU": list(task.spec.gpu_ids) if task is not None else []}

    @property
    def namespace(self) -> str:
        return self._core.namespace

    def get_runtime_env_string(self) -> str:
        import json
        return json.dumps(self._core.runtime_env)

    @property
    def gcs_address(self) -> str:
        return self._core.gcs_address

    def get_pid(self) -> int:
        return os.getpid()

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this code runs in (for passing ``self`` to others)."""
        core = self._core
        if core.actor_id is None or core.actor_handle_meta is None:
            raise RuntimeError("get_runtime_context().current_actor is only valid inside an "
                               "actor method")
        from ._private.actor_class import ActorHandle
        return ActorHandle(core.actor_id, core.actor_handle_meta, None)


def get_runtime_context() -> RuntimeContext:
    """The current process's runtime context (requires ``ember.init()``).

    >>> ember.get_runtime_context().get_node_id()
    """
    return RuntimeContext(worker_state.require_core())

"""runtime_env beyond env_vars: code and packages shipped to every node (issue #8).

- ``packaging``: the driver/job-client side. Local ``working_dir`` and
  ``py_modules`` are packed into deterministic zips named by content hash and
  uploaded once to the control service's KV.
- ``validation``: field checks with messages that name the fix, and the key
  that pools workers (``env_key``/``env_hash``).
- ``pip_env``: cached virtualenvs per requirement set.
- ``setup``: ``prepare()``, the node side: fetch + unpack + install, cached.
- ``cache``: LRU-by-size eviction of unpacked packages and venvs.
- ``node_envs``: the node manager's per-env state (setup off the lease path).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Set by the job supervisor (JSON, packages already uploaded): the job-level
# runtime_env of a driver started as a job's entrypoint. Here, in this light
# module, so ember.init() can check it without loading the packaging code.
JOB_RUNTIME_ENV_ENV = "EMBER_JOB_RUNTIME_ENV"
# Set by the node manager in a worker started for a runtime_env (JSON, env_key):
# tasks it submits inherit it. Here too, so the node manager names it without
# loading the packaging code.
WORKER_RUNTIME_ENV_ENV = "EMBER_RUNTIME_ENV"


def resolve(core: Any, task_env: Mapping[str, Any] | None) -> tuple[str, bytes]:
    """(env hash, lease bytes) for work submitted with ``task_env`` under ``core``'s job
    env (``driver.resolve``). The default environment resolves here, without loading
    the packaging code (zipfile, hashlib): a first task does not pay for it.

    >>> class Core: runtime_env = {}
    >>> resolve(Core(), None)
    ('', b'')
    """
    if not task_env and not core.runtime_env:
        return "", b""
    from .driver import resolve as resolve_env
    return resolve_env(core, task_env)

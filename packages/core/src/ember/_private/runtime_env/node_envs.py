"""The node manager's runtime_env states: one setup per env, off the lease path.

A lease request for env X asks ``ensure(X)``: the first asker starts X's setup
in a thread; every asker waits at most a poll interval and, while X is not
ready, is told "not yet" (the owner asks again), so other leases keep flowing
and no worker for X starts before X is ready. A failure is remembered for
``FAILURE_MEMORY_SECONDS`` so a burst of requests shares one failed attempt
(each gets the same RuntimeEnvSetupError) while a later retry tries again; it
never affects other envs.

>>> envs = NodeRuntimeEnvs("/tmp/session", kv_get)
>>> envs.ensure("ab12", b'{"pip": ...}', wait=2.0)
('pending', None)
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ...exceptions import RuntimeEnvSetupError
from . import cache
from .setup import KvGet, PreparedEnv, prepare, resources_root

logger = logging.getLogger("ember")

FAILURE_MEMORY_SECONDS = 5.0
# An env set up this recently is kept by eviction even with no live worker yet.
RECENT_SECONDS = 60.0


@dataclass
class _State:
    env: dict
    done: threading.Event = field(default_factory=threading.Event)
    prepared: PreparedEnv | None = None
    error: str = ""
    failed_at: float = 0.0


class NodeRuntimeEnvs:
    """Per-env setup state of one node (thread-safe)."""

    def __init__(self, session_dir: str, kv_get: KvGet,
                 in_use: Callable[[], Iterable[str]] = tuple, node_id: str = "") -> None:
        self.session_dir = session_dir
        # Per node: nodes of one machine may share a session directory.
        self.root = os.path.join(resources_root(session_dir), f"node_{node_id[:12]}")
        self._kv_get = kv_get
        self._in_use = in_use          # env hashes live workers run in
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def ensure(self, env_hash: str, env_bytes: bytes, wait: float
               ) -> tuple[str, PreparedEnv | str | None]:
        """('ready', PreparedEnv) | ('pending', None) | ('failed', message)."""
        now = time.monotonic()
        with self._lock:
            state = self._states.get(env_hash)
            if state is None or (state.error and now - state.failed_at > FAILURE_MEMORY_SECONDS):
                try:
                    env = json.loads(env_bytes or b"{}")
                except ValueError:
                    return "failed", "the lease request's runtime_env is not valid JSON"
                state = self._states[env_hash] = _State(env)
                threading.Thread(target=self._setup, args=(env_hash, state), daemon=True,
                                 name=f"ember-runtime-env-{env_hash[:8]}").start()
        state.done.wait(wait)
        if not state.done.is_set():
            return "pending", None
        if state.error:
            return "failed", state.error
        return "ready", state.prepared

    def prepared(self, env_hash: str) -> PreparedEnv | None:
        """The ready env a worker for ``env_hash`` starts in (None: not ready)."""
        with self._lock:
            state = self._states.get(env_hash)
        return state.prepared if state is not None and state.done.is_set() else None

    def _setup(self, env_hash: str, state: _State) -> None:
        try:
            state.prepared = prepare(state.env, session_dir=self.session_dir,
                                     kv_get=self._kv_get, resources_dir=self.root)
        except RuntimeEnvSetupError as e:
            state.error = e.message
        except Exception as e:  # noqa: BLE001 - any failure is this env's, not the node's
            logger.exception("runtime_env setup failed")
            state.error = f"{type(e).__name__}: {e}"
        state.failed_at = time.monotonic()
        state.done.set()
        if state.error:
            logger.warning("runtime_env %s setup failed: %s", env_hash, state.error[-500:])
            return
        self.evict()

    def evict(self) -> list[str]:
        """Trim the caches to their bound, keeping what live or recent envs use."""
        with self._lock:
            live = set(self._in_use())
            now = time.monotonic()
            keep: list[str] = []
            for env_hash, state in self._states.items():
                # Live workers' envs, and ones just set up (a worker may be starting).
                if state.prepared is not None and (
                        env_hash in live or now - state.failed_at < RECENT_SECONDS):
                    keep += state.prepared.resource_dirs
        try:
            removed = cache.enforce(self.root, keep)
        except OSError:
            logger.exception("runtime_env cache cleanup failed")
            return []
        if removed:
            with self._lock:
                gone = set(removed)
                for env_hash, state in list(self._states.items()):
                    if state.prepared is not None and gone & set(state.prepared.resource_dirs):
                        del self._states[env_hash]    # set up again on next use
        return removed


__all__ = ["FAILURE_MEMORY_SECONDS", "NodeRuntimeEnvs"]

"""The node's memory monitor (Ray's OOM killer): decisions, memory reading, and the loop.

When the node's memory use passes a threshold the node manager kills one
worker running leased work, so the operating system's OOM killer never picks
the node manager, the control service or a driver at random. Only leased
workers are candidates: the driver and Ember's own services never are, and an
idle worker holds too little to matter.

Which worker (``choose_victim``, pure): retriable work first (a task with
``max_retries != 0``, an actor with ``max_restarts != 0``), because it loses
only time; among those the owner with the most leased workers here pays first
(as Ray groups by owner: one owner's fan-out must not starve everyone else);
within it, the most recently started lease, which has made the least progress.

Configured like Ray: ``EMBER_MEMORY_USAGE_THRESHOLD`` (fraction of the node's
memory, default 0.95) and ``EMBER_MEMORY_MONITOR_REFRESH_MS`` (how often to
look, default 250; 0 turns the monitor off). The node's memory is its cgroup's
limit and usage when one is set (v2, then v1), else ``/proc/meminfo``
(MemTotal - MemAvailable).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("ember")

THRESHOLD_ENV = "EMBER_MEMORY_USAGE_THRESHOLD"
REFRESH_ENV = "EMBER_MEMORY_MONITOR_REFRESH_MS"
DEFAULT_THRESHOLD = 0.95
DEFAULT_REFRESH_MS = 250
# cgroup v1 reports "no limit" as a huge number (page-rounded 2**63).
_NO_LIMIT = 1 << 60


@dataclass(frozen=True)
class MemoryConfig:
    threshold: float = DEFAULT_THRESHOLD
    refresh_ms: int = DEFAULT_REFRESH_MS

    @property
    def enabled(self) -> bool:
        return self.refresh_ms > 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> MemoryConfig:
        """Read the two variables; bad values raise naming the variable and the fix.

        >>> MemoryConfig.from_env({"EMBER_MEMORY_USAGE_THRESHOLD": "0.9"}).threshold
        0.9
        """
        env = os.environ if environ is None else environ
        raw_t = env.get(THRESHOLD_ENV, "")
        raw_r = env.get(REFRESH_ENV, "")
        try:
            threshold = float(raw_t) if raw_t else DEFAULT_THRESHOLD
        except ValueError:
            threshold = -1.0
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"{THRESHOLD_ENV}={raw_t!r}: give a fraction of the node's memory "
                             "between 0 and 1, e.g. 0.95")
        try:
            refresh = int(raw_r) if raw_r else DEFAULT_REFRESH_MS
        except ValueError:
            refresh = -1
        if refresh < 0:
            raise ValueError(f"{REFRESH_ENV}={raw_r!r}: give milliseconds between checks "
                             "(e.g. 250), or 0 to turn the memory monitor off")
        return cls(threshold, refresh)


@dataclass(frozen=True)
class Usage:
    used: int
    total: int

    @property
    def fraction(self) -> float:
        return self.used / self.total if self.total else 0.0


# ---------------------------------------------------------------- reading memory
def parse_meminfo(text: str) -> Usage:
    """MemTotal - MemAvailable from /proc/meminfo.

    >>> parse_meminfo("MemTotal: 100 kB\\nMemAvailable: 25 kB\\n")
    Usage(used=76800, total=102400)
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            try:
                fields[name.strip()] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
            except ValueError:
                continue
    total = fields.get("MemTotal", 0)
    available = fields.get("MemAvailable")
    if available is None:  # very old kernels
        available = fields.get("MemFree", 0) + fields.get("Cached", 0) + fields.get("Buffers", 0)
    return Usage(max(0, total - available), total)


def _stat_value(stat_text: str, key: str) -> int:
    for line in stat_text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value.strip())
            except ValueError:
                return 0
    return 0


def parse_cgroup(limit_text: str, usage_text: str, stat_text: str,
                 inactive_key: str) -> Usage | None:
    """A cgroup's usage, not counting reclaimable page cache; None without a limit.

    >>> parse_cgroup("1000", "600", "inactive_file 100", "inactive_file")
    Usage(used=500, total=1000)
    """
    limit_s = limit_text.strip()
    if not limit_s or limit_s == "max":
        return None
    try:
        limit, usage = int(limit_s), int(usage_text.strip())
    except ValueError:
        return None
    if limit <= 0 or limit >= _NO_LIMIT:
        return None
    used = max(0, usage - _stat_value(stat_text, inactive_key))
    return Usage(used, limit)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def read_usage(root: str = "/") -> Usage:
    """The node's memory: its cgroup (v2, then v1) when limited, else the whole machine."""
    def path(*parts: str) -> str:
        return os.path.join(root, *parts)

    for limit_f, usage_f, stat_f, key in (
            (("sys/fs/cgroup/memory.max"), "sys/fs/cgroup/memory.current",
             "sys/fs/cgroup/memory.stat", "inactive_file"),
            ("sys/fs/cgroup/memory/memory.limit_in_bytes",
             "sys/fs/cgroup/memory/memory.usage_in_bytes",
             "sys/fs/cgroup/memory/memory.stat", "total_inactive_file")):
        limit = _read(path(limit_f))
        usage = _read(path(usage_f))
        if limit is None or usage is None:
            continue
        found = parse_cgroup(limit, usage, _read(path(stat_f)) or "", key)
        if found is not None:
            return found
    return parse_meminfo(_read(path("proc/meminfo")) or "")


# ---------------------------------------------------------------- choosing a victim
@dataclass(frozen=True)
class Candidate:
    worker_id: str
    pid: int
    owner: str               # the lease's owner (worker id); actors: their own group
    retriable: bool
    started: float           # when the lease was granted (any increasing clock)
    is_actor: bool = False
    name: str = ""


def choose_victim(candidates: list[Candidate]) -> Candidate | None:
    """The worker to kill to free memory, or None when there is none.

    >>> a = Candidate("a", 1, "o", True, 1.0); b = Candidate("b", 2, "o", True, 2.0)
    >>> choose_victim([a, b]).worker_id
    'b'
    """
    if not candidates:
        return None

    def group(c: Candidate) -> str:
        return f"actor:{c.worker_id}" if c.is_actor else f"owner:{c.owner}"

    sizes: dict[str, int] = {}
    for c in candidates:
        sizes[group(c)] = sizes.get(group(c), 0) + 1
    return max(candidates, key=lambda c: (c.retriable, sizes[group(c)], c.started))


def oom_message(node: str, usage: Usage, threshold: float, victim: Candidate) -> str:
    """What the owner of the killed work is told (ends up in OutOfMemoryError)."""
    gib = 1 << 30
    if victim.is_actor:
        what = victim.name or "an actor"     # actor leases are named "actor <Class>"
    else:
        what = f"task {victim.name}" if victim.name else "a task"
    return (f"the memory monitor of node {node} killed the worker (pid {victim.pid}) running "
            f"{what}: the node's memory use {usage.used / gib:.2f} GiB of "
            f"{usage.total / gib:.2f} GiB ({usage.fraction:.0%}) passed the threshold "
            f"{threshold:.0%} ({THRESHOLD_ENV})")


class MemoryMonitor:
    """Checks memory every ``refresh_ms`` and kills one candidate while it is too high.

    ``candidates()`` lists the leased workers (called on the monitor's thread);
    ``kill(victim, message)`` records why and kills it. After a kill it waits
    until that worker is no longer a candidate (its memory is back) before
    choosing again, so one spike never costs several workers.
    """

    def __init__(self, config: MemoryConfig, node: str,
                 candidates: Callable[[], list[Candidate]],
                 kill: Callable[[Candidate, str], None],
                 read: Callable[[], Usage] = read_usage) -> None:
        self.config = config
        self._node = node
        self._candidates = candidates
        self._kill = kill
        self._read = read
        self._stop = threading.Event()
        self._last_victim: str | None = None
        self._last_kill = 0.0
        self._warned_nothing = False

    def start(self) -> None:
        if self.config.enabled:
            threading.Thread(target=self._loop, name="ember-memory-monitor", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.refresh_ms / 1000):
            try:
                self.check_once()
            except Exception:
                logger.exception("memory monitor check failed")

    def check_once(self, now: float | None = None) -> Candidate | None:
        usage = self._read()
        if usage.total <= 0 or usage.fraction < self.config.threshold:
            self._warned_nothing = False
            return None
        candidates = self._candidates()
        now = time.monotonic() if now is None else now
        if self._last_victim is not None:
            # Still dying (or just reaped and its memory not yet returned).
            if any(c.worker_id == self._last_victim for c in candidates) \
                    or now - self._last_kill < 0.5:
                return None
            self._last_victim = None
        victim = choose_victim(candidates)
        if victim is None:
            if not self._warned_nothing:
                self._warned_nothing = True
                logger.warning("node %s memory at %.0f%% (threshold %.0f%%) but no worker "
                               "runs leased work to kill", self._node, usage.fraction * 100,
                               self.config.threshold * 100)
            return None
        message = oom_message(self._node, usage, self.config.threshold, victim)
        logger.warning("%s", message)
        self._last_victim = victim.worker_id
        self._last_kill = now
        self._kill(victim, message)
        return victim

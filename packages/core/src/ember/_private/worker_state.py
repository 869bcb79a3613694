"""The process-wide CoreWorker (driver or worker), if connected."""
from __future__ import annotations

from typing import Any

core: Any = None  # ember._private.core_worker.CoreWorker when connected


def require_core() -> Any:
    if core is None:
        raise RuntimeError(
            "Ember is not initialized in this process: call ember.init() first "
            "(or ember.init(address=...) to connect to a running cluster)")
    return core

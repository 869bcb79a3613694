"""Which Ember session a dataset belongs to, so a dataset used after ``ember.shutdown()``
fails with a clear error instead of a lost-object error deep in a task."""
from __future__ import annotations

import ember

from ..exceptions import DatasetSessionError

__all__ = ["check_session", "current_session", "ensure_initialized"]


def ensure_initialized() -> None:
    """Start an embedded cluster if none is connected (Ray Data does the same)."""
    if not ember.is_initialized():
        ember.init()


def current_session() -> str | None:
    """An id of the connected cluster, or None when not connected."""
    if not ember.is_initialized():
        return None
    # The control service's address names the cluster, and is the same in the driver and
    # in every task or actor (which may run a dataset, e.g. streaming_split's coordinator).
    return str(ember.get_runtime_context().gcs_address)


def check_session(session: str | None) -> None:
    """Raise if the dataset was made in a session that is no longer the current one."""
    if session is None:
        ensure_initialized()
        return
    now = current_session()
    if now == session:
        return
    if now is None:
        raise DatasetSessionError(
            "this Dataset was created in an Ember session that has ended (ember.shutdown() "
            "was called): its blocks and plan belong to that session. Call ember.init() "
            "and create the dataset again.")
    raise DatasetSessionError(
        "this Dataset was created in another Ember session (the cluster it was made on was "
        "shut down and a new one started): its blocks are gone. Create the dataset again "
        "in the current session.")

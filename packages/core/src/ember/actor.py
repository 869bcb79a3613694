"""``ember.actor``: actor classes, handles and methods (Ray's ``ray.actor``).

>>> from ember.actor import ActorHandle, exit_actor
"""
from __future__ import annotations

from ._private import worker_state
from ._private.actor_class import ActorClass, ActorHandle, ActorID, ActorMethod, method

__all__ = ["ActorClass", "ActorHandle", "ActorID", "ActorMethod", "exit_actor", "method"]


def exit_actor() -> None:
    """Stop the current actor for good after the current call.

    The call that invokes it fails with ActorDiedError (saying the actor exited
    on purpose), calls queued behind it fail too, the actor is not restarted,
    and its resources are freed.

    >>> @ember.remote
    ... class Job:
    ...     def finish(self):
    ...         ember.actor.exit_actor()
    """
    from ._private.actor_host import ActorExit
    core = worker_state.core
    if core is None or core.actor_id is None:
        raise TypeError("exit_actor() was called outside an actor: call it from inside an "
                        "actor method (to stop an actor from outside, use ember.kill(handle))")
    raise ActorExit(0)

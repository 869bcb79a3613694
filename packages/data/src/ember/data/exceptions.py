"""Errors raised by Ember Data.

>>> try:
...     ember.data.range(3).map(lambda r: 1 / 0).take_all()
... except ember.data.exceptions.UserCodeException as e:
...     print(e)            # names the operator, shows the UDF's traceback
"""
from __future__ import annotations

__all__ = ["DatasetSessionError", "UserCodeException"]


class UserCodeException(Exception):
    """A user function (UDF) raised while an operator processed a block.

    ``operator`` names the operator; ``__cause__`` is the task error (which is also
    an instance of the UDF's exception type, e.g. ``ValueError``).
    """

    def __init__(self, message: str, operator: str = "") -> None:
        super().__init__(message)
        self.operator = operator


class DatasetSessionError(RuntimeError):
    """The dataset refers to blocks of an Ember session that has ended (``ember.shutdown()``)."""

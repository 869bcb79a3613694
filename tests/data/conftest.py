"""Fixtures for the ember-data tests."""
from __future__ import annotations

import cloudpickle
import pytest


@pytest.fixture(autouse=True, scope="module")
def _udfs_by_value(request):
    # Workers cannot import test modules, so functions and classes defined at module
    # level in a test file are shipped by value, as if they were defined in a script.
    module = request.module
    try:
        cloudpickle.register_pickle_by_value(module)
    except ValueError:
        pass  # already registered
    yield


@pytest.fixture
def ctx():
    """The current DataContext, restored after the test."""
    import ember.data as ed

    context = ed.DataContext.get_current()
    saved = context.copy()
    yield context
    ed.DataContext._set_current(saved)

"""Shared fixtures: one embedded cluster per test module, torn down after it."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    import ember

    ember.init(num_cpus=2, log_to_driver=True)
    yield ember
    ember.shutdown()


@pytest.fixture
def fresh():
    """A cluster private to one test (for lifecycle and bad-init tests)."""
    import ember

    if ember.is_initialized():
        ember.shutdown()
    yield ember
    ember.shutdown()

"""Bad input gets a clear error (issue #2 section 6)."""
from __future__ import annotations

import pytest

import ember


@ember.remote
def f(x):
    return x


def test_direct_call_says_use_remote():
    with pytest.raises(TypeError, match=r"f\.remote\("):
        f(1)


def test_unknown_and_invalid_options():
    with pytest.raises(ValueError, match="num_cpu.*num_cpus"):
        f.options(num_cpu=1)
    with pytest.raises(ValueError, match="num_cpus"):
        f.options(num_cpus=-1)
    with pytest.raises(ValueError, match="max_retries"):
        ember.remote(max_retries="x")
    with pytest.raises(ValueError, match="resources"):
        f.options(resources={"CPU": 1})


def test_get_of_non_ref(cluster):
    with pytest.raises(TypeError, match="ObjectRef"):
        ember.get(1)
    with pytest.raises(TypeError, match="ObjectRef"):
        ember.get([f.remote(1), 2])
    with pytest.raises(TypeError):
        ember.wait([3])


def test_wait_arguments(cluster):
    r = f.remote(1)
    with pytest.raises(ValueError, match="num_returns"):
        ember.wait([r], num_returns=2)
    with pytest.raises(ValueError, match="more than once"):
        ember.wait([r, r])


def test_infeasible_request_warns_once(cluster, capfd):
    ref = f.options(num_cpus=64).remote(1)
    from ember.testing import wait_for_condition

    acc = []

    def warned():
        acc.append(capfd.readouterr().out)
        return "64" in "".join(acc) and "warning" in "".join(acc)

    wait_for_condition(warned, timeout=10)
    text = "".join(acc)
    assert "CPU" in text
    # `ember status` lists the demand while its owner keeps asking for it.
    from ember._private import worker_state
    from ember._private.protos import ember_pb2 as pb
    status = worker_state.core.node_manager.GetStatus(pb.Empty(), timeout=10)
    assert any("f {CPU: 64}" in demand for demand in status.infeasible), status.infeasible
    ember.cancel(ref)

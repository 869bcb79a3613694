"""Actor lifetimes across drivers (issue #3): detached, owned, and after shutdown."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import ember
from ember.testing import wait_for_condition


def _driver(address: str, body: str) -> str:
    """Run a second driver process against this cluster; return its stdout."""
    code = "import ember\nember.init(address=%r, namespace='lifetimes')\n" % address
    code += textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


_CLASS = """
@ember.remote
class Box:
    def __init__(self, v):
        self.v = v
    def get(self):
        return self.v
"""


def test_detached_actor_outlives_its_driver(cluster):
    address = ember.get_runtime_context().gcs_address
    _driver(address, _CLASS + """
b = Box.options(name="keeper", lifetime="detached").remote("kept")
print(ember.get(b.get.remote()))
""")
    # The first driver has exited; a second one finds the actor by name.
    out = _driver(address, """
h = ember.get_actor("keeper")
print(ember.get(h.get.remote()))
ember.kill(h)
""")
    assert out.strip() == "kept"


def test_owned_actor_dies_with_its_driver(cluster):
    address = ember.get_runtime_context().gcs_address
    _driver(address, _CLASS + """
b = Box.options(name="short-lived").remote("x")
print(ember.get(b.get.remote()))
""")

    def gone() -> bool:
        try:
            ember.get_actor("short-lived", namespace="lifetimes")
            return False
        except ValueError:
            return True

    wait_for_condition(gone, timeout=10, message="owned actor outlived its driver")


def test_placement_group_is_removed_when_its_driver_exits(cluster):
    address = ember.get_runtime_context().gcs_address
    out = _driver(address, """
from ember.util import placement_group
pg = placement_group([{"CPU": 1}], name="owned-by-driver")
assert pg.wait(30)
print(pg.id.hex())
""")
    pg_hex = out.strip().splitlines()[-1]
    from ember.util import placement_group_table
    wait_for_condition(lambda: placement_group_table()[pg_hex]["state"] == "REMOVED",
                       timeout=10, message="a dead driver's placement group was kept")
    wait_for_condition(lambda: ember.available_resources().get("CPU") == 2.0, timeout=10)


def test_handle_used_after_shutdown_fails_clearly(fresh):
    ember.init(num_cpus=1)

    @ember.remote
    class A:
        def f(self):
            return 1

    a = A.remote()
    assert ember.get(a.f.remote()) == 1
    ember.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        a.f.remote()
    ember.init(num_cpus=1)
    with pytest.raises(RuntimeError, match="shut down"):
        a.f.remote()

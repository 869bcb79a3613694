"""node: starting the processes of a node (embedded cluster paths, in subprocesses)."""
from __future__ import annotations

from ember.testing import run_driver

_EARLY = r"""
import ember
from ember._private import api, node
calls = []
real_connect = api._connect_to_control
def connect(**where):
    calls.append(("control ready", where["node_manager_address"]))
    return real_connect(**where)
api._connect_to_control = connect
real_start = node.start_local_cluster
def start(**kw):
    info = real_start(**kw)
    calls.append(("started", info.node_manager_address))
    return info
node.start_local_cluster = start
ember.init(num_cpus=1, include_dashboard=False)
@ember.remote
def f():
    return 7
assert ember.get(f.remote(), timeout=60) == 7
print("CALLS", calls, flush=True)
ember.shutdown()
"""


def test_the_driver_connects_while_the_node_manager_registers():
    # The node manager's port is chosen before it starts, so the driver connects to
    # the control service as soon as that is ready, instead of after both are.
    calls = eval(run_driver(_EARLY, "CALLS"))  # noqa: S307 - our own probe's printed list
    assert [c[0] for c in calls] == ["control ready", "started"]
    assert calls[0][1] == calls[1][1]           # the address it was told is the real one


_TAKEN = r"""
import socket, ember
from ember._private import node
taken = socket.socket()
taken.bind(("127.0.0.1", 0))
taken.listen(1)
port = taken.getsockname()[1]
real = node.free_port
picks = []
def free_port(ip="127.0.0.1"):
    picks.append(real(ip) if len(picks) != 1 else port)   # the node manager's first pick
    return picks[-1]
node.free_port = free_port
info = ember.init(num_cpus=1, include_dashboard=False)
@ember.remote
def f():
    return 7
assert ember.get(f.remote(), timeout=60) == 7
from ember._private import worker_state
print("NM", worker_state.require_core().node_manager_address, "TAKEN", port, flush=True)
ember.shutdown()
"""


def test_a_node_manager_port_taken_before_it_binds_is_chosen_again():
    address, _, taken = run_driver(_TAKEN, "NM", timeout=180).split()
    assert not address.endswith(f":{taken}")

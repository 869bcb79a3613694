"""The memory monitor end to end: a worker that pushes the node past the threshold is
killed, its owner retries with backoff and raises OutOfMemoryError when out of retries.

The threshold is set at run time a little above this machine's current use, so a
task allocating in steps crosses it within a few hundred MiB (the machine is
shared: other processes' memory moves it, which only makes the kill come sooner).
"""
from __future__ import annotations

import json
import os
import time

import ember
import pytest
from ember._private.memory_monitor import read_usage
from ember.exceptions import ActorDiedError, OutOfMemoryError

MARGIN = 1 << 30          # the threshold sits this far above current use
STEP = 64 << 20


@pytest.fixture(scope="module")
def oom_cluster():
    usage = read_usage()
    threshold = (usage.used + MARGIN) / usage.total
    if threshold > 0.9:
        pytest.skip("this machine has too little free memory for the OOM tests")
    if ember.is_initialized():
        ember.shutdown()
    # Module-scoped, so no monkeypatch fixture; the context restores the variables.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMBER_MEMORY_USAGE_THRESHOLD", f"{threshold:.4f}")
        mp.setenv("EMBER_MEMORY_MONITOR_REFRESH_MS", "50")
        try:
            ember.init(num_cpus=2)
            yield threshold
        finally:
            ember.shutdown()


# Never more than the margin plus 2 GiB, even if the monitor failed to act.
LIMIT = MARGIN + (2 << 30)

# The workers cannot import this test module, so the allocation loop is spelled
# out in each remote function (module-level helpers are pickled by reference).


@ember.remote
def hog(limit=LIMIT, step=STEP):
    import numpy as np
    held = []
    while len(held) * step < limit:           # allocate and touch, until killed
        held.append(np.ones(step, dtype=np.uint8))
        time.sleep(0.01)
    return "survived"


@ember.remote
def hog_on_first_attempt(marker: str, limit=LIMIT, step=STEP):
    import numpy as np
    attempts = []
    if os.path.exists(marker):
        with open(marker) as f:
            attempts = json.load(f)
    attempts.append(time.time())
    with open(marker, "w") as f:
        json.dump(attempts, f)
    held = []
    while len(attempts) == 1 and len(held) * step < limit:
        held.append(np.ones(step, dtype=np.uint8))
        time.sleep(0.01)
    return attempts


@ember.remote
def small():
    return "ok"


def test_a_task_past_the_threshold_is_killed_and_raises_out_of_memory(oom_cluster):
    with pytest.raises(OutOfMemoryError) as info:
        ember.get(hog.options(max_retries=0).remote(), timeout=120)
    message = str(info.value)
    assert "memory monitor" in message and "EMBER_MEMORY_USAGE_THRESHOLD" in message
    assert "127.0.0.1" in message and "task hog" in message
    assert "max_retries" in message or "memory=" in message   # what to do about it
    # The driver, the node manager and the rest of the cluster are fine.
    assert ember.get(small.remote(), timeout=60) == "ok"


def test_an_oom_killed_task_is_retried_after_a_backoff_and_succeeds(oom_cluster, tmp_path):
    marker = str(tmp_path / "attempts.json")
    attempts = ember.get(hog_on_first_attempt.options(max_retries=2).remote(marker),
                         timeout=120)
    assert len(attempts) == 2
    # Ray waits about a second before retrying an OOM-killed task.
    assert attempts[1] - attempts[0] >= 0.9


def test_out_of_memory_error_once_retries_run_out(oom_cluster):
    with pytest.raises(OutOfMemoryError, match=r"killed 2 time"):
        ember.get(hog.options(max_retries=1).remote(), timeout=180)


def test_an_oom_killed_actor_dies_with_the_cause(oom_cluster):
    @ember.remote
    class Hog:
        def eat(self, limit=LIMIT, step=STEP):
            import numpy as np
            held = []
            while len(held) * step < limit:
                held.append(np.ones(step, dtype=np.uint8))
                time.sleep(0.01)
            return "survived"

    h = Hog.remote()
    with pytest.raises(ActorDiedError, match="memory monitor"):
        ember.get(h.eat.remote(), timeout=120)
    assert ember.get(small.remote(), timeout=60) == "ok"

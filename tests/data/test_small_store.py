"""A dataset five times larger than a real (small) object store streams through
read -> map_batches -> write with the store's use under the executor's budget, and
nothing spilled: backpressure, not the spiller, keeps memory bounded."""
from __future__ import annotations

import glob
import os
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

import ember
import ember.data as ed
from ember.testing import session_dir, shm_files

MiB = 1024 * 1024
STORE = 64 * MiB


@pytest.fixture(scope="module")
def small_store():
    if ember.is_initialized():
        ember.shutdown()
    ember.init(num_cpus=2, object_store_memory=STORE)
    yield
    ember.shutdown()


def _store_bytes() -> int:
    total = 0
    for path in shm_files():
        try:
            total += os.stat(path).st_blocks * 512
        except FileNotFoundError:
            pass
    return total


def _spilled_files() -> list[str]:
    return glob.glob(os.path.join(session_dir() or "/nonexistent", "spill", "*", "*"))


def _slow_total(batch):
    time.sleep(0.01)
    return {"total": batch["data"].sum(axis=1)}


@pytest.mark.timeout(180)
def test_five_times_the_store_streams_through_under_the_budget(small_store, tmp_path):
    assert ember.cluster_resources()["object_store_memory"] == STORE
    budget = STORE * ed.DataContext.get_current().object_store_memory_limit_fraction
    rows, width = 41_000, 1024                     # 320 MiB of int64 tensors: 5x the store
    assert rows * width * 8 >= 5 * STORE
    peak, spilled = [0], [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _store_bytes())
            spilled[0] = max(spilled[0], len(_spilled_files()))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        (ed.range_tensor(rows, shape=(width,), override_num_blocks=160)
         # Slower than the reads: without backpressure the reads would pile 320 MiB up
         # in front of it (and spill), with it they wait.
         .map_batches(_slow_total, batch_size=256, num_cpus=0.5)
         .write_parquet(str(tmp_path)))
    finally:
        stop.set()
        sampler.join()
    written = pq.read_table(str(tmp_path)).column("total").to_numpy()
    expected = np.arange(rows, dtype=np.int64) * width
    assert np.array_equal(np.sort(written), expected)
    assert 0 < peak[0] <= budget, f"peak store use {peak[0] / MiB:.1f} MiB, budget " \
                                  f"{budget / MiB:.0f} MiB"
    assert spilled[0] == 0, f"{spilled[0]} objects spilled"

"""Ember's end-to-end demo on an embedded local cluster.

Runs today's core features: tasks, large NumPy data through shared memory
without copies, nested tasks, streaming generators, error propagation, actors
(sync and async, named, in a pool) and placement groups.
(The seed notebook's Data/Train/Serve pipeline joins this demo as those
libraries land.)

    python tools/demo.py
"""
from __future__ import annotations

import time

import numpy as np

import ember


@ember.remote
def partial_sum(block: np.ndarray) -> float:
    return float(block.sum())


@ember.remote
def normalize(block: np.ndarray, mean: float) -> np.ndarray:
    return block - mean


@ember.remote
def tree_sum(values: list[float]) -> float:
    if len(values) <= 2:
        return float(sum(values))
    mid = len(values) // 2
    return sum(ember.get([tree_sum.remote(values[:mid]), tree_sum.remote(values[mid:])]))


@ember.remote(num_returns="streaming")
def batches(n: int):
    for i in range(n):
        yield np.full(1000, i)


@ember.remote
class RunningMean:
    """A stateful actor: calls from one caller run in order."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, value: float) -> float:
        self.n += 1
        self.total += value
        return self.total / self.n


@ember.remote
class Fetcher:
    """An async actor: many calls wait concurrently on one event loop."""

    async def fetch(self, i: int) -> int:
        import asyncio
        await asyncio.sleep(0.2)
        return i * i


def actors_and_groups() -> None:
    from ember.util import ActorPool, placement_group, remove_placement_group
    from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    mean = RunningMean.options(name="running-mean").remote()
    print("running means:", ember.get([mean.add.remote(v) for v in (2.0, 4.0, 9.0)]))
    print("found by name:", ember.get(ember.get_actor("running-mean").add.remote(5.0)))
    fetcher = Fetcher.remote()
    t = time.perf_counter()
    squares = ember.get([fetcher.fetch.remote(i) for i in range(20)])
    print(f"20 async calls of 0.2 s each in {time.perf_counter() - t:.2f}s: {squares[:5]}...")
    pool = ActorPool([RunningMean.remote() for _ in range(2)])
    print("actor pool:", list(pool.map(lambda a, v: a.add.remote(v), [1.0, 3.0, 5.0, 7.0])))
    pg = placement_group([{"CPU": 1}], strategy="PACK")
    ember.get(pg.ready())
    in_group = partial_sum.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(np.ones(10))
    print("task in a placement group:", ember.get(in_group))
    remove_placement_group(pg)
    ember.kill(mean)


def main() -> None:
    t0 = time.perf_counter()
    ember.init()
    print(f"cluster up in {time.perf_counter() - t0:.2f}s: {ember.cluster_resources()}")

    data = np.random.default_rng(0).normal(5.0, 2.0, size=(8, 2_000_000))
    blocks = [ember.put(row) for row in data]   # 16 MB each, in shared memory
    sums = ember.get([partial_sum.remote(b) for b in blocks])
    mean = sum(sums) / data.size
    centered = ember.get([normalize.remote(b, mean) for b in blocks])
    print(f"mean {mean:.4f} (numpy says {data.mean():.4f}); centered blocks are read-only "
          f"views: {not centered[0].flags.writeable}")
    print(f"tree sum of 1..32 via nested tasks: {ember.get(tree_sum.remote(list(range(1, 33))))}")
    print("streamed batch means:", [float(ember.get(r).mean()) for r in batches.remote(4)])

    @ember.remote
    def fails():
        raise ValueError("bad row")

    try:
        ember.get(fails.remote())
    except ValueError as e:
        print("remote error caught as ValueError:", str(e).splitlines()[-1])
    actors_and_groups()
    ember.shutdown()
    print(f"demo finished in {time.perf_counter() - t0:.2f}s")


if __name__ == "__main__":
    main()

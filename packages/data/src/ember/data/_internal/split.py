"""Splitting a dataset: ``split``, ``split_at_indices``, ``train_test_split``, and
``streaming_split`` (n iterators fed by one execution running in a coordinator actor).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

import ember

from .bundle import RefBundle
from .exchange import _blocks, assemble_ranges
from .locality import block_nodes, choose_bundle, plan_local_split, resolve_hints
from .logical import InputData

if TYPE_CHECKING:
    from ..dataset import Dataset, MaterializedDataset
    from ..iterator import DataIterator

__all__ = ["SplitCoordinator", "split", "split_at_indices", "split_proportionately",
           "streaming_split", "train_test_split"]


def _parts(ds: "Dataset", bounds: list[int]) -> list["MaterializedDataset"]:
    from ..dataset import MaterializedDataset
    materialized = ds.materialize()
    pairs = _blocks(list(materialized._bundles()))
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        bundles = assemble_ranges(pairs, [lo, hi]) if hi > lo else []
        out.append(MaterializedDataset(InputData(bundles=tuple(bundles), label="Split"),
                                       ds._session))
    return out


def split_at_indices(ds: "Dataset", indices: Sequence[int]) -> list["MaterializedDataset"]:
    """Parts [0, i0), [i0, i1), ..., [ik, end) (indices past the end give empty parts)."""
    indices = list(indices)
    if any(not isinstance(i, (int, np.integer)) or i < 0 for i in indices):
        raise ValueError(f"split_at_indices: indices must be ints >= 0, got {indices}")
    if indices != sorted(indices):
        raise ValueError(f"split_at_indices: indices must be sorted, got {indices}")
    total = ds.count()
    bounds = [0] + [min(int(i), total) for i in indices] + [total]
    return _parts(ds, bounds)


def split(ds: "Dataset", n: int, *, equal: bool,
          locality_hints: Any = None) -> list["MaterializedDataset"]:
    """``n`` contiguous parts of (nearly) equal size; ``equal`` drops the remainder.

    With ``locality_hints`` (one node id or actor per part) parts keep the same sizes but
    are no longer contiguous: blocks already on a part's node go to it whole.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"split: n must be an int >= 1, got {n!r}")
    hints = None if locality_hints is None else resolve_hints(locality_hints, n, "split")
    total = ds.count()
    if equal:
        each = total // n
        bounds = [each * i for i in range(n + 1)]
    else:
        bounds = np.linspace(0, total, n + 1).astype(int).tolist()
    if hints is None:
        return _parts(ds, bounds)
    return _local_parts(ds, hints, [hi - lo for lo, hi in zip(bounds[:-1], bounds[1:])])


def _local_parts(ds: "Dataset", hints: list[str],
                 targets: list[int]) -> list["MaterializedDataset"]:
    from ..dataset import MaterializedDataset
    pairs = _blocks(list(ds.materialize()._bundles()))
    rows = [meta.num_rows or 0 for _, meta in pairs]
    kept, rest, room = plan_local_split(rows, block_nodes([r for r, _ in pairs]), hints,
                                        targets)
    rest_pairs = [pairs[k] for k in rest]
    bounds = np.concatenate([[0], np.cumsum(room)]).astype(int).tolist()
    filled = assemble_ranges(rest_pairs, bounds) if rest_pairs else []
    out = []
    for i, keep in enumerate(kept):
        bundles = [RefBundle([pairs[k]]) for k in keep]
        if room[i] and filled:
            bundles.append(filled[i])
        bundles = [RefBundle(b.blocks, (j,)) for j, b in enumerate(bundles)]
        out.append(MaterializedDataset(InputData(bundles=tuple(bundles), label="Split"),
                                       ds._session))
    return out


def split_proportionately(ds: "Dataset",
                          proportions: Sequence[float]) -> list["MaterializedDataset"]:
    """Parts of the given fractions of the rows, plus one with the rest."""
    if not proportions or any(p <= 0 for p in proportions) or sum(proportions) >= 1:
        raise ValueError(f"split_proportionately: proportions must be > 0 and sum to less "
                         f"than 1, got {list(proportions)}")
    total = ds.count()
    indices, cumulative = [], 0.0
    for p in proportions:
        cumulative += p
        indices.append(int(round(total * cumulative, 9)))
    return split_at_indices(ds, indices)


def train_test_split(ds: "Dataset", test_size: float | int, *, shuffle: bool,
                     seed: int | None) -> tuple["MaterializedDataset", "MaterializedDataset"]:
    """(train, test): ``test_size`` a fraction in (0, 1) or a row count."""
    if shuffle:
        ds = ds.random_shuffle(seed=seed)
    if isinstance(test_size, float):
        if not 0 < test_size < 1:
            raise ValueError(f"train_test_split: a float test_size must be in (0, 1), got "
                             f"{test_size}")
        train, test = split_proportionately(ds, [1 - test_size])
        return train, test
    if not isinstance(test_size, (int, np.integer)) or test_size < 0:
        raise ValueError(f"train_test_split: test_size must be a float in (0, 1) or an int "
                         f">= 0, got {test_size!r}")
    total = ds.count()
    if test_size > total:
        raise ValueError(f"train_test_split: test_size={test_size} is more than the "
                         f"{total} rows of the dataset")
    train, test = split_at_indices(ds, [total - int(test_size)])
    return train, test


# -- streaming_split ---------------------------------------------------------------------------
# With locality hints, how many bundles per consumer may wait in the coordinator while a
# consumer looks for one on its own node.
_LOOKAHEAD = 2

class SplitCoordinator:
    """An actor that runs the dataset once per epoch and hands blocks to ``n`` consumers.

    Consumers call ``start_epoch(i)`` (a barrier: the execution starts when all ``n``
    have), then ``get(i, epoch)`` until it returns None. With ``equal``, a block goes to
    a consumer only while the rows handed out can still be evened out; at the end,
    what is left is sliced so that every consumer gets exactly the same number of rows.
    """

    def __init__(self, dataset: "Dataset", n: int, equal: bool,
                 hints: list[str] | None = None) -> None:
        self._dataset = dataset
        self._n = n
        self._equal = equal
        # Node of each consumer (locality_hints): a consumer takes blocks already on its
        # node first, looking up to _LOOKAHEAD bundles down the stream for one.
        self._hints = hints
        self._nodes: list[frozenset[str]] = []  # beside _buffer: where each bundle is
        self._cond = threading.Condition()
        self._epoch = -1
        self._split_epoch = [-1] * n
        self._arrived: dict[int, set[int]] = {}
        self._stream: Any = None
        self._pulling = False
        self._exhausted = False
        self._buffer: list[RefBundle] = []
        self._given = [0] * n
        self._final: list[list[RefBundle]] | None = None
        self._error: BaseException | None = None

    def start_epoch(self, split_idx: int) -> int:
        with self._cond:
            target = self._split_epoch[split_idx] + 1
            self._split_epoch[split_idx] = target
            self._arrived.setdefault(target, set()).add(split_idx)
            if len(self._arrived[target]) == self._n:
                self._begin(target)
            while self._epoch < target:
                self._cond.wait(1.0)
            return target

    def _begin(self, epoch: int) -> None:
        if self._stream is not None:
            self._stream.stop()
        self._stream = None
        self._error = None
        try:
            self._stream = self._dataset._iter_bundles()
        except BaseException as e:  # noqa: BLE001 - every consumer's get() raises it
            self._error = e
        self._epoch = epoch
        self._exhausted = False
        self._buffer = []
        self._nodes = []
        self._given = [0] * self._n
        self._final = None
        self._arrived.pop(epoch, None)
        self._cond.notify_all()

    def get(self, split_idx: int, epoch: int) -> list[tuple[Any, Any]] | None:
        """The next blocks for consumer ``split_idx``, or None when its part is done."""
        with self._cond:
            while True:
                if epoch != self._epoch:
                    return None
                if self._error is not None:
                    raise self._error
                bundle = self._take(split_idx)
                if bundle is not None:
                    return bundle.blocks
                if self._exhausted:
                    return None
                if self._pulling:
                    self._cond.wait(1.0)
                    continue
                self._pulling = True
                stream = self._stream
                pulled: RefBundle | None = None
                error: BaseException | None = None
                self._cond.release()  # pull without blocking the other consumers
                try:
                    pulled = next(stream)
                except StopIteration:
                    pulled = None
                except BaseException as e:  # noqa: BLE001 - every consumer sees it
                    error = e
                finally:
                    self._cond.acquire()
                self._pulling = False
                self._cond.notify_all()
                if error is not None:
                    self._error = error
                    continue
                if stream is not self._stream:
                    continue
                if pulled is None:
                    self._exhausted = True
                elif pulled.num_rows:
                    self._buffer.append(pulled)
                    if self._hints is not None:
                        self._nodes.append(_bundle_nodes(pulled))

    def _take(self, i: int) -> RefBundle | None:
        if self._final is not None:
            return self._final[i].pop(0) if self._final[i] else None
        if not self._equal:
            k = self._pick(i, list(range(len(self._buffer))))
            return self._pop(k) if k is not None else None
        buffered = sum(b.num_rows for b in self._buffer)
        if self._exhausted:
            self._final = self._even_out(buffered)
            return self._take(i)
        # Give block k to i only if every consumer could still reach i's new total.
        fair = (sum(self._given) + buffered) / self._n
        fitting = [k for k, bundle in enumerate(self._buffer)
                   if self._given[i] + bundle.num_rows <= fair]
        k = self._pick(i, fitting)
        if k is None and fitting and (self._exhausted or len(self._buffer) >= _LOOKAHEAD):
            k = fitting[0]
        if k is None:
            return None
        self._given[i] += self._buffer[k].num_rows
        return self._pop(k)

    def _pick(self, i: int, ks: list[int]) -> int | None:
        """Which of the buffered bundles ``ks`` consumer ``i`` takes (None: pull more)."""
        if not ks:
            return None
        if self._hints is None:
            return ks[0]
        others = self._hints[:i] + self._hints[i + 1:]
        choice = choose_bundle([self._nodes[k] for k in ks], self._hints[i], others)
        if choice is not None:
            return ks[choice]
        # Nothing for i here yet: look further down the stream, within bounds.
        if self._exhausted or len(self._buffer) >= _LOOKAHEAD * self._n:
            return ks[0]
        return None

    def _pop(self, k: int) -> RefBundle:
        if self._hints is not None:
            self._nodes.pop(k)
        return self._buffer.pop(k)

    def _even_out(self, buffered: int) -> list[list[RefBundle]]:
        """At the end: slice what is buffered so every consumer ends with the same rows."""
        target = (sum(self._given) + buffered) // self._n
        pairs = _blocks(self._buffer)
        self._buffer = []
        self._nodes = []
        out: list[list[RefBundle]] = []
        offset = 0
        for i in range(self._n):
            need = max(0, target - self._given[i])
            if need and pairs:
                out.append(assemble_ranges(pairs, [offset, offset + need]))
            else:
                out.append([])
            offset += need
            self._given[i] += need
        return out


class _SplitIterator:
    """The bundle source behind one ``streaming_split`` DataIterator (picklable)."""

    def __init__(self, coordinator: Any, split_idx: int) -> None:
        self._coordinator = coordinator
        self._split_idx = split_idx

    def __call__(self) -> Iterator[RefBundle]:
        epoch = ember.get(self._coordinator.start_epoch.remote(self._split_idx))
        # Ask for the next blocks while the current ones are consumed.
        pending = self._coordinator.get.remote(self._split_idx, epoch)
        while True:
            blocks = ember.get(pending)
            if blocks is None:
                return
            pending = self._coordinator.get.remote(self._split_idx, epoch)
            yield RefBundle(list(blocks))


def _bundle_nodes(bundle: RefBundle) -> frozenset[str]:
    return frozenset().union(*block_nodes(bundle.refs))


def streaming_split(ds: "Dataset", n: int, *, equal: bool,
                    locality_hints: Any = None) -> list["DataIterator"]:
    from ..iterator import DataIterator
    from .session import check_session
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"streaming_split: n must be an int >= 1, got {n!r}")
    check_session(ds._session)
    hints = (None if locality_hints is None
             else resolve_hints(locality_hints, n, "streaming_split"))
    # Threaded so every consumer's get() can wait at once; holds no CPU so it never
    # takes a slot from the tasks it launches.
    coordinator = ember.remote(SplitCoordinator).options(
        num_cpus=0, max_concurrency=2 * n + 4).remote(ds, n, equal, hints)
    return [DataIterator(_SplitIterator(coordinator, i), name=f"StreamSplit[{i}/{n}]")
            for i in range(n)]

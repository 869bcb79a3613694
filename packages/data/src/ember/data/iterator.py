"""``DataIterator``: batches and rows of a dataset (or of one ``streaming_split`` part).

>>> it = ds.iterator()
>>> for batch in it.iter_batches(batch_size=64, local_shuffle_buffer_size=1000): ...
>>> for batch in it.iter_torch_batches(batch_size=64, dtypes=torch.float32): ...

Each call to ``iter_*`` is one pass (epoch) over the data.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

__all__ = ["DataIterator"]


class DataIterator:
    """Iterates a stream of blocks as batches or rows; picklable when it comes from
    ``streaming_split`` (so it can be handed to a training actor)."""

    def __init__(self, bundles_fn: Callable[[], Iterator[Any]], *, name: str = "Dataset",
                 stats_fn: Callable[[], str] | None = None) -> None:
        self._bundles_fn = bundles_fn
        self._name = name
        self._stats_fn = stats_fn

    def __repr__(self) -> str:
        return f"DataIterator({self._name})"

    def _bundles(self) -> Iterator[Any]:
        return self._bundles_fn()

    def iter_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None,
                     _collate_fn: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """Batches of ``batch_size`` rows (``None``: one per block).

        ``batch_format``: "default"/"numpy" (dict of arrays), "pandas", "pyarrow".
        ``prefetch_batches``: blocks fetched ahead on a thread while you work on a batch.
        ``local_shuffle_buffer_size``: draw rows at random from a buffer this large.
        ``drop_last``: skip a final batch smaller than ``batch_size``.

        >>> [len(b["id"]) for b in ember.data.range(10).iter_batches(batch_size=4)]
        [4, 4, 2]
        """
        from ._internal.batch import check_batch_format
        from ._internal.batching import batch_blocks, format_batches, prefetch_blocks
        fmt = check_batch_format(batch_format)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
        if local_shuffle_buffer_size is not None and local_shuffle_buffer_size < 1:
            raise ValueError("local_shuffle_buffer_size must be >= 1")
        blocks = prefetch_blocks(self._bundles(), max(0, prefetch_batches))
        batches = batch_blocks(blocks, batch_size=batch_size, drop_last=drop_last,
                               shuffle_buffer=local_shuffle_buffer_size,
                               shuffle_seed=local_shuffle_seed)
        return format_batches(batches, fmt, _collate_fn)

    def iter_rows(self, *, prefetch_batches: int = 1, **_ignored: Any) -> Iterator[dict[str, Any]]:
        """Rows as dicts. >>> next(iter(ember.data.range(3).iter_rows()))
        {'id': 0}
        """
        from ._internal.batching import prefetch_blocks
        from ._internal.block import rows_of
        for block in prefetch_blocks(self._bundles(), max(0, prefetch_batches)):
            yield from rows_of(block)

    def iter_torch_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                           dtypes: Any = None, device: str = "auto",
                           collate_fn: Callable[[Any], Any] | None = None,
                           drop_last: bool = False,
                           local_shuffle_buffer_size: int | None = None,
                           local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """Batches as dicts of ``torch.Tensor`` (or whatever ``collate_fn`` makes of a
        dict of NumPy arrays). ``dtypes``: one torch dtype or ``{column: dtype}``.
        ``device``: "auto" puts tensors on the GPU when this worker was given one.

        >>> next(iter(ds.iter_torch_batches(batch_size=8, dtypes=torch.float32)))
        """
        try:
            import torch
        except ImportError as e:
            raise ImportError("iter_torch_batches needs PyTorch: pip install "
                              "'ember-data[torch]' (or torch)") from e
        target = _torch_device(device, torch)

        def to_tensors(batch: dict[str, Any]) -> Any:
            if collate_fn is not None:
                out = collate_fn(batch)
                return _move(out, target, torch)
            tensors = {}
            for name, values in batch.items():
                dtype = dtypes.get(name) if isinstance(dtypes, dict) else dtypes
                if values.dtype == object:
                    raise TypeError(f"column {name!r} holds Python objects (e.g. strings or "
                                    "ragged lists), which torch cannot hold: drop it or pass "
                                    "a collate_fn")
                tensor = torch.as_tensor(values if values.flags.writeable else values.copy(),
                                         dtype=dtype)
                tensors[name] = tensor.to(target) if target is not None else tensor
            return tensors

        return self.iter_batches(prefetch_batches=prefetch_batches, batch_size=batch_size,
                                 batch_format="numpy", drop_last=drop_last,
                                 local_shuffle_buffer_size=local_shuffle_buffer_size,
                                 local_shuffle_seed=local_shuffle_seed, _collate_fn=to_tensors)

    def materialize(self) -> Any:
        """The blocks of one pass, as a ``MaterializedDataset``."""
        from ._internal.logical import InputData
        from ._internal.session import current_session
        from .dataset import MaterializedDataset
        bundles = tuple(self._bundles())
        return MaterializedDataset(InputData(bundles=bundles, label="FromIterator"),
                                   current_session())

    def stats(self) -> str:
        return self._stats_fn() if self._stats_fn is not None else ""


def _torch_device(device: str | None, torch: Any) -> Any:
    if device is None:
        return None
    if device != "auto":
        return torch.device(device)
    import ember
    try:
        gpus = ember.get_gpu_ids() if ember.is_initialized() else []
    except Exception:  # noqa: BLE001 - the driver has no task context
        gpus = []
    if gpus and torch.cuda.is_available():
        return torch.device("cuda")
    return None


def _move(value: Any, device: Any, torch: Any) -> Any:
    if device is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _move(v, device, torch) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_move(v, device, torch) for v in value)
    return value

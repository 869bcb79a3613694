"""Ember Data: scalable datasets on Arrow blocks, streamed through the cluster.

Ray Data's API on Ember (``import ember as ray; ray.data.range(10)`` works):

>>> import ember
>>> import ember.data
>>> ds = ember.data.range(1000).map_batches(lambda b: {"y": b["id"] * 2})
>>> ds.filter(lambda r: r["y"] % 3 == 0).count()
334
>>> train, test = ds.train_test_split(test_size=0.3)

A ``Dataset`` is lazy: transformations build a plan, which an optimizer rewrites
(fusing maps, pushing column selection and limits into reads) and a streaming
executor runs as Ember tasks and actor pools when the data is consumed.

Importing ``ember.data`` is cheap: pyarrow, pandas and the executor load on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ActorPoolStrategy",
    "AggregateFn",
    "BlockMetadata",
    "DataContext",
    "DataIterator",
    "Dataset",
    "Datasink",
    "Datasource",
    "ExecutionOptions",
    "ExecutionResources",
    "GroupedData",
    "MaterializedDataset",
    "ReadTask",
    "Schema",
    "aggregate",
    "datasource",
    "from_arrow",
    "from_arrow_refs",
    "from_items",
    "from_numpy",
    "from_numpy_refs",
    "from_pandas",
    "from_pandas_refs",
    "range",
    "range_tensor",
    "read_binary_files",
    "read_csv",
    "read_datasource",
    "read_json",
    "read_numpy",
    "read_parquet",
    "read_text",
]

if TYPE_CHECKING:
    from . import aggregate, datasource
    from ._internal.create import (from_arrow, from_arrow_refs, from_items, from_numpy,
                                   from_numpy_refs, from_pandas, from_pandas_refs, range,
                                   range_tensor, read_datasource)
    from ._internal.read_api import (read_binary_files, read_csv, read_json, read_numpy,
                                     read_parquet, read_text)
    from .aggregate import AggregateFn
    from .context import DataContext, ExecutionOptions, ExecutionResources
    from .dataset import Dataset, MaterializedDataset, Schema
    from .datasource import BlockMetadata, Datasink, Datasource, ReadTask
    from .grouped_data import GroupedData
    from .iterator import DataIterator
    from .strategy import ActorPoolStrategy

# name -> module (relative to this package) that defines it.
_LAZY = {
    "ActorPoolStrategy": ".strategy",
    "AggregateFn": ".aggregate",
    "BlockMetadata": ".datasource",
    "DataContext": ".context",
    "ExecutionOptions": ".context",
    "ExecutionResources": ".context",
    "DataIterator": ".iterator",
    "Dataset": ".dataset",
    "MaterializedDataset": ".dataset",
    "Schema": ".dataset",
    "Datasink": ".datasource",
    "Datasource": ".datasource",
    "GroupedData": ".grouped_data",
    "ReadTask": ".datasource",
    "from_arrow": "._internal.create",
    "from_arrow_refs": "._internal.create",
    "from_items": "._internal.create",
    "from_numpy": "._internal.create",
    "from_numpy_refs": "._internal.create",
    "from_pandas": "._internal.create",
    "from_pandas_refs": "._internal.create",
    "range": "._internal.create",
    "range_tensor": "._internal.create",
    "read_datasource": "._internal.create",
    # File formats: written in _internal/read_api.py on top of read_datasource.
    "read_binary_files": "._internal.read_api",
    "read_csv": "._internal.read_api",
    "read_json": "._internal.read_api",
    "read_numpy": "._internal.read_api",
    "read_parquet": "._internal.read_api",
    "read_text": "._internal.read_api",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import ember.data` does not import pyarrow/pandas.
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in ("aggregate", "datasource"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ember.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

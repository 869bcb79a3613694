"""Write a dataset as JSON Lines files (one object per row), one file per write task.

As Ray's ``write_json``, rows are written by pandas ``DataFrame.to_json`` with
``orient="records", lines=True`` unless ``pandas_json_args`` say otherwise.

>>> ds.write_json("/out/events", date_format="iso")                   # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Any, Callable

import pyarrow as pa

from ..batch import block_to_batch
from .file_datasink import SINK_ARGS, FileDatasink, args_with_fn

__all__ = ["JSONDatasink"]


class JSONDatasink(FileDatasink):
    """``pandas_json_args`` go to ``pandas.DataFrame.to_json``; ``pandas_json_args_fn``
    returns more of them, in the worker."""

    _FILE_EXTENSION = "json"
    _FORMAT = "JSON"

    def __init__(self, path: str | os.PathLike[str], *,
                 pandas_json_args_fn: Callable[[], dict[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        sink_args = {k: kwargs.pop(k) for k in list(kwargs) if k in SINK_ARGS}
        super().__init__(path, **sink_args)
        if "path_or_buf" in kwargs:
            raise TypeError("write_json writes into `path`; path_or_buf cannot be given")
        self._args = {"orient": "records", "lines": True, **kwargs}
        self._args_fn = pandas_json_args_fn

    def _write_table(self, table: pa.Table, f: pa.NativeFile) -> None:
        args = args_with_fn(self._args, self._args_fn)
        text = block_to_batch(table, "pandas").to_json(None, **args)
        if args.get("lines") and text and not text.endswith("\n"):
            text += "\n"  # so files can be concatenated line by line
        f.write(text.encode("utf-8"))

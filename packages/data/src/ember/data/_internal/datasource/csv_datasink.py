"""Write a dataset as CSV files (``pyarrow.csv``), one per write task.

>>> import pyarrow.csv as pacsv
>>> ds.write_csv("/out/trips",                                        # doctest: +SKIP
...              write_options=pacsv.WriteOptions(delimiter=";"))
"""
from __future__ import annotations

import os
from typing import Any, Callable

import pyarrow as pa
import pyarrow.csv as pacsv

from .file_datasink import SINK_ARGS, FileDatasink, args_with_fn

__all__ = ["CSVDatasink"]

_CSV_WRITE_ARGS = ("write_options", "memory_pool")


class CSVDatasink(FileDatasink):
    """``arrow_csv_args`` (``write_options``) go to ``pyarrow.csv.write_csv``;
    ``arrow_csv_args_fn`` returns more of them, in the worker."""

    _FILE_EXTENSION = "csv"
    _FORMAT = "CSV"

    def __init__(self, path: str | os.PathLike[str], *,
                 arrow_csv_args_fn: Callable[[], dict[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        sink_args = {k: kwargs.pop(k) for k in list(kwargs) if k in SINK_ARGS}
        unknown = sorted(set(kwargs) - set(_CSV_WRITE_ARGS))
        if unknown:
            raise TypeError(f"write_csv got unexpected arguments {unknown}; pyarrow CSV "
                            f"options go in {list(_CSV_WRITE_ARGS)}")
        super().__init__(path, **sink_args)
        self._args = kwargs
        self._args_fn = arrow_csv_args_fn

    def _write_table(self, table: pa.Table, f: pa.NativeFile) -> None:
        pacsv.write_csv(table, f, **args_with_fn(self._args, self._args_fn))

    # pyarrow.csv.WriteOptions cannot be pickled, and the sink travels to the write
    # tasks: ship its settings as a dict and rebuild it there.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        options = self._args.get("write_options")
        if isinstance(options, pacsv.WriteOptions):
            state["_args"] = {**self._args, "write_options": _WriteOptionsState(
                {k: getattr(options, k) for k in _WRITE_OPTION_FIELDS if hasattr(options, k)})}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        options = state["_args"].get("write_options")
        if isinstance(options, _WriteOptionsState):
            rebuilt = pacsv.WriteOptions()
            for key, value in options.fields.items():
                setattr(rebuilt, key, value)
            state["_args"] = {**state["_args"], "write_options": rebuilt}
        self.__dict__.update(state)


_WRITE_OPTION_FIELDS = ("include_header", "batch_size", "delimiter", "quoting_style",
                        "quoting_header", "eol", "null_string")


class _WriteOptionsState:
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

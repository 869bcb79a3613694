"""Text files, one row per line in a ``text`` column (Ray's ``read_text``).

>>> ds = TextDatasource("/logs/app.log", drop_empty_lines=True, encoding="utf-8")
"""
from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa

from .file_based_datasource import FileBasedDatasource
from .file_utils import PathsArg

__all__ = ["TextDatasource"]


class TextDatasource(FileBasedDatasource):
    """One row per line; ``drop_empty_lines`` drops lines that are only whitespace.

    Lines end at ``\\n`` (a ``\\r`` before it is removed too, for Windows files), and a
    final newline ends the last line rather than starting an empty one.
    """

    _FORMAT = "text"
    _COLUMN_NAME = "text"

    def __init__(self, paths: PathsArg, *, drop_empty_lines: bool = True,
                 encoding: str = "utf-8", **file_based_kwargs: Any) -> None:
        "".encode(encoding)  # an unknown encoding fails here, not in every read task
        self._drop_empty_lines = drop_empty_lines
        self._encoding = encoding
        super().__init__(paths, **file_based_kwargs)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        text = f.readall().decode(self._encoding)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        if self._drop_empty_lines:
            lines = [line for line in lines if line.strip()]
        yield pa.table({self._COLUMN_NAME: pa.array(lines, type=pa.string())})

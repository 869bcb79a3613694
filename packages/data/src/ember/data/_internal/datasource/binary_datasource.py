"""Whole files as bytes, one row per file in a ``bytes`` column (Ray's ``read_binary_files``).

>>> ds = BinaryDatasource("/images/", include_paths=True)  # columns: bytes, path
"""
from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from .file_based_datasource import FileBasedDatasource

__all__ = ["BinaryDatasource"]

# Arrow's binary type addresses at most 2 GiB per array: bigger files need large_binary.
_MAX_BINARY = 2**31 - 1


class BinaryDatasource(FileBasedDatasource):
    """One row per file: its bytes (decompressed if the extension says so, as in Ray)."""

    _FORMAT = "binary"
    _COLUMN_NAME = "bytes"

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        data = f.readall()
        kind = pa.binary() if len(data) <= _MAX_BINARY else pa.large_binary()
        yield pa.table({self._COLUMN_NAME: pa.array([data], type=kind)})

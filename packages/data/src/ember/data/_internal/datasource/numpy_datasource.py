"""NumPy ``.npy`` files, the array's rows in a ``data`` column (Ray's ``read_numpy``).

A 1-D array gives a plain column; an N-D array gives one (N-1)-D tensor per row
(Arrow's fixed-shape tensor type, as ``from_numpy`` makes).

>>> ds = NumpyDatasource("/features/", numpy_load_args={"allow_pickle": True})
"""
from __future__ import annotations

import io
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from ..block import to_arrow_column
from .file_based_datasource import FileBasedDatasource
from .file_utils import PathsArg

__all__ = ["NumpyDatasource"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


class NumpyDatasource(FileBasedDatasource):
    """Reads ``.npy`` files; ``numpy_load_args`` go to ``numpy.load``.

    ``allow_pickle`` is False unless passed: loading a pickled (object) array runs
    code from the file, so it must be asked for.
    """

    _FORMAT = "NumPy .npy"
    _FILE_EXTENSIONS = ["npy"]
    _COLUMN_NAME = "data"

    def __init__(self, paths: PathsArg, *, numpy_load_args: dict[str, Any] | None = None,
                 **file_based_kwargs: Any) -> None:
        self._load_args = dict(numpy_load_args or {})
        super().__init__(paths, **file_based_kwargs)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        data = f.readall()
        if data.startswith(_ZIP_MAGIC):
            raise ValueError("this is an .npz archive; read_numpy reads .npy files "
                             "(save each array with numpy.save)")
        if not data.startswith(_NPY_MAGIC):
            raise ValueError("not a .npy file (it does not start with NumPy's header)")
        args = {"allow_pickle": False, **self._load_args}
        array = np.load(io.BytesIO(data), **args)
        if array.ndim == 0:
            array = array.reshape(1)  # a scalar file is one row
        yield pa.table({self._COLUMN_NAME: to_arrow_column(array)})

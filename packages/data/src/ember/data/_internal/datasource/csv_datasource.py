"""CSV files via ``pyarrow.csv``: ``read_options``, ``parse_options`` and
``convert_options`` pass straight through.

>>> import pyarrow.csv as pacsv
>>> ds = CSVDatasource("/data/trips.csv",
...                    arrow_csv_args={"parse_options": pacsv.ParseOptions(delimiter=";")})
"""
from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from .file_based_datasource import FileBasedDatasource, checked_arrow_args, coalesce_batches
from .file_utils import FileInfo, PathsArg

__all__ = ["CSVDatasource"]

_CSV_ARGS = ("read_options", "parse_options", "convert_options")


class CSVDatasource(FileBasedDatasource):
    """Reads CSV files (compressed ones too: ``.csv.gz`` is detected) into Arrow tables.

    Files up to ``DataContext.target_max_block_size`` are parsed in one go, so type
    inference sees the whole file; larger ones are streamed in blocks of about that
    size, with types inferred from the first megabyte (pass
    ``convert_options=pyarrow.csv.ConvertOptions(column_types=...)`` when a column
    changes its look further down).
    """

    _FORMAT = "CSV"
    _ENCODING_RATIO = 1.0

    def __init__(self, paths: PathsArg, *, arrow_csv_args: dict[str, Any] | None = None,
                 **file_based_kwargs: Any) -> None:
        self._csv_args = checked_arrow_args(arrow_csv_args, _CSV_ARGS,
                                            reader="read_csv", fmt="CSV")
        super().__init__(paths, **file_based_kwargs)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        return self._read_file(f, FileInfo(path, None))

    def _read_file(self, f: pa.NativeFile, info: FileInfo) -> Iterator[pa.Table]:
        try:
            if info.size is not None and info.size <= self._target_block_size:
                yield pacsv.read_csv(f, **self._csv_args)
                return
            reader = pacsv.open_csv(f, **self._csv_args)
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):
                return  # a 0-byte file has no header and no rows: nothing to read
            raise
        yield from coalesce_batches(reader, reader.schema, self._target_block_size)

"""JSON files via ``pyarrow.json``: JSON Lines (one object per line), as Ray's
``read_json``; a file holding one JSON array of objects is read too.

>>> import pyarrow.json as pajson
>>> ds = JSONDatasource("/events/", arrow_json_args={
...     "parse_options": pajson.ParseOptions(newlines_in_values=True)})
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.json as pajson

from .file_based_datasource import FileBasedDatasource, checked_arrow_args
from .file_utils import PathsArg

__all__ = ["JSON_FILE_EXTENSIONS", "JSONDatasource"]

JSON_FILE_EXTENSIONS = [f"{ext}{comp}" for ext in ("json", "jsonl")
                        for comp in ("", ".gz", ".bz2", ".zst", ".lz4", ".br")]

_JSON_ARGS = ("read_options", "parse_options")


class JSONDatasource(FileBasedDatasource):
    """Reads JSON Lines files (compressed ones too) into Arrow tables.

    ``read_options`` and ``parse_options`` (``pyarrow.json``) pass through. A record
    longer than ``read_options.block_size`` is handled by retrying with a bigger
    block, as Ray does, instead of failing with pyarrow's "straddling object".
    """

    _FORMAT = "JSON"
    _FILE_EXTENSIONS = JSON_FILE_EXTENSIONS
    # Parsed JSON drops the key names and quotes repeated on every line.
    _ENCODING_RATIO = 0.5

    def __init__(self, paths: PathsArg, *, arrow_json_args: dict[str, Any] | None = None,
                 **file_based_kwargs: Any) -> None:
        self._json_args = checked_arrow_args(arrow_json_args, _JSON_ARGS,
                                             reader="read_json", fmt="JSON")
        super().__init__(paths, **file_based_kwargs)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        buffer = f.read_buffer()
        head = bytes(buffer[: min(len(buffer), 256)]).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head:
            return  # an empty file holds no records
        if head.startswith(b"["):
            yield _read_json_array(buffer)
            return
        read_options = self._json_args.get("read_options") or pajson.ReadOptions()
        block_size = read_options.block_size
        while True:
            try:
                yield pajson.read_json(
                    pa.BufferReader(buffer),
                    read_options=pajson.ReadOptions(use_threads=read_options.use_threads,
                                                    block_size=block_size),
                    parse_options=self._json_args.get("parse_options"))
                return
            except pa.ArrowInvalid as e:
                if "straddling" not in str(e) or block_size >= len(buffer):
                    raise
                block_size = min(block_size * 2, len(buffer))


def _read_json_array(buffer: pa.Buffer) -> pa.Table:
    records = json.loads(buffer.to_pybytes())
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("a JSON array file must hold objects ({...}), one per row")
    return pa.Table.from_pylist(records)

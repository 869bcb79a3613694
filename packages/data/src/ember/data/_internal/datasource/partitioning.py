"""Partition columns encoded in paths: ``year=2024/month=01/part.parquet`` (hive) or
``dog/1.png`` under a base directory (dir), as Ray's ``Partitioning``.

>>> Partitioning("hive").parse("/data/year=2024/month=01/part.parquet")
{'year': '2024', 'month': '01'}
>>> Partitioning("dir", base_dir="/imgs", field_names=["label"]).parse("/imgs/dog/1.png")
{'label': 'dog'}
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence, Union

import pyarrow as pa

__all__ = ["HIVE_NULL", "Partitioning", "PartitioningArg", "add_partition_columns",
           "normalize_partitioning"]

# Spark's and pyarrow's spelling of a null partition value.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

_PY_TO_ARROW: dict[Any, pa.DataType] = {
    str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(),
}


@dataclass(frozen=True)
class Partitioning:
    """How partition values are laid out in paths.

    ``style="hive"`` reads every ``key=value`` directory in a path (under ``base_dir``
    when given); ``style="dir"`` maps the directories under ``base_dir`` to
    ``field_names`` in order. Values are strings unless ``field_types`` maps a field to
    ``int``, ``float``, ``bool`` or a ``pyarrow.DataType``.

    >>> Partitioning("hive", field_types={"year": int}).arrow_type("year")
    DataType(int64)
    """

    style: Literal["hive", "dir"] = "hive"
    base_dir: str | None = None
    field_names: Sequence[str] | None = None
    field_types: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.style not in ("hive", "dir"):
            raise ValueError(f"partitioning style must be 'hive' or 'dir', got {self.style!r}")
        if self.style == "dir" and (not self.field_names or self.base_dir is None):
            raise ValueError("'dir' partitioning needs base_dir and field_names")

    def parse(self, path: str) -> dict[str, str | None]:
        """The partition values (strings; None for a null) encoded in ``path``."""
        directory = path.rsplit("/", 1)[0] if "/" in path else ""
        if self.base_dir is not None:
            base = self.base_dir.rstrip("/")
            if directory != base and not directory.startswith(base + "/"):
                return {}
            directory = directory[len(base):]
        parts = [p for p in directory.split("/") if p]
        if self.style == "dir":
            names = list(self.field_names or [])
            return {name: _unquote(v) for name, v in zip(names, parts)}
        out: dict[str, str | None] = {}
        for part in parts:
            key, sep, value = part.partition("=")
            if sep and key:
                out[urllib.parse.unquote(key)] = _unquote(value)
        return out

    def arrow_type(self, name: str) -> pa.DataType:
        """The Arrow type of partition field ``name`` (string unless ``field_types`` says)."""
        wanted = (self.field_types or {}).get(name, str)
        if isinstance(wanted, pa.DataType):
            return wanted
        if wanted in _PY_TO_ARROW:
            return _PY_TO_ARROW[wanted]
        raise TypeError(f"field_types[{name!r}] must be str, int, float, bool or a "
                        f"pyarrow.DataType, got {wanted!r}")

    def scalar(self, name: str, value: str | None) -> pa.Scalar:
        """``value`` as a scalar of the field's type (an error naming the field if not)."""
        arrow_type = self.arrow_type(name)
        if value is None:
            return pa.scalar(None, arrow_type)
        try:
            if pa.types.is_boolean(arrow_type):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return pa.scalar(value.lower() in ("true", "1"), arrow_type)
            return pa.scalar(value, pa.string()).cast(arrow_type)
        except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"partition value {value!r} of {name!r} is not a valid "
                             f"{arrow_type}") from e


def _unquote(value: str) -> str | None:
    return None if value == HIVE_NULL else urllib.parse.unquote(value)


PartitioningArg = Union[Partitioning, Literal["hive"], None]


def normalize_partitioning(partitioning: Any) -> Partitioning | None:
    """Ray accepts a ``Partitioning`` or None; "hive"/"dir" strings are a shorthand."""
    if partitioning is None or isinstance(partitioning, Partitioning):
        return partitioning
    if isinstance(partitioning, str):
        return Partitioning(partitioning)  # type: ignore[arg-type]
    style = getattr(partitioning, "style", None)  # Ray's own Partitioning object
    if style in ("hive", "dir"):
        return Partitioning(style, base_dir=getattr(partitioning, "base_dir", None) or None,
                            field_names=getattr(partitioning, "field_names", None),
                            field_types=getattr(partitioning, "field_types", None))
    raise TypeError(f"partitioning must be a Partitioning, 'hive' or None, got {partitioning!r}")


def add_partition_columns(table: pa.Table, values: Mapping[str, pa.Scalar]) -> pa.Table:
    """Append one constant column per partition field not already in ``table``."""
    for name, scalar in values.items():
        if name in table.column_names:
            continue  # a column in the file wins over the one in its path
        table = table.append_column(pa.field(name, scalar.type),
                                    pa.repeat(scalar, table.num_rows))
    return table

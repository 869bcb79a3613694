"""``RefBundle``: blocks in the object store plus their metadata, as passed between operators.

The executor only ever holds references: block values stay in the object store
until a task or the consumer reads them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..datasource.datasource import BlockMetadata

__all__ = ["RefBundle"]


@dataclass
class RefBundle:
    """One or more (block ref, metadata) pairs moved as a unit.

    ``seq`` orders bundles when ``preserve_order`` is on: a tuple that sorts in
    input order (a map keeps its input's; a read uses its task index).
    """

    blocks: list[tuple[Any, BlockMetadata]]
    seq: tuple = field(default=(0,))

    @property
    def num_rows(self) -> int:
        return sum(m.num_rows or 0 for _, m in self.blocks)

    @property
    def size_bytes(self) -> int:
        return sum(m.size_bytes or 0 for _, m in self.blocks)

    @property
    def refs(self) -> list[Any]:
        return [r for r, _ in self.blocks]

    @property
    def metadata(self) -> list[BlockMetadata]:
        return [m for _, m in self.blocks]

    def input_files(self) -> list[str]:
        files: dict[str, None] = {}
        for _, m in self.blocks:
            for f in m.input_files or ():
                files.setdefault(f, None)
        return list(files)

    def schema(self) -> Any:
        for _, m in self.blocks:
            if m.schema is not None and (m.num_rows or len(m.schema.names)):
                return m.schema
        return None

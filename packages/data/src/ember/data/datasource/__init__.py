"""Plug-in interface for reading and writing: subclass ``Datasource`` or ``Datasink``.

>>> from ember.data.datasource import Datasource, ReadTask, BlockMetadata
"""
from __future__ import annotations

from .datasource import BlockMetadata, Datasink, Datasource, ReadTask, TaskContext

__all__ = ["BlockMetadata", "Datasink", "Datasource", "ReadTask", "TaskContext"]

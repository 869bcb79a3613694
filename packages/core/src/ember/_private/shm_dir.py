"""Where a node keeps its shared-memory object files.

Apart from shm_store.py (which re-exports it) so that starting a node, which
only needs the directory, does not load the serialization stack.
"""
from __future__ import annotations

import os
import tempfile


def default_shm_dir() -> str:
    """Return ``/dev/shm`` when usable, else the system temp directory.

    >>> os.path.isdir(default_shm_dir())
    True
    """
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()

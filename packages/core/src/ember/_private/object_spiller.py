"""Spill files: one node's objects moved from shared memory to local disk.

One file per object, ``{directory}/{object_id_hex}``, in the node's spill
directory (``session_*/spill/<node_id>/``). A file is written under a temporary
name and renamed into place, so a complete file is all a reader ever sees. The
whole directory goes when the node stops (and ``NodeProcesses`` removes it
after a crash, as it does the shared-memory files).

>>> import tempfile
>>> spiller = ObjectSpiller(tempfile.mkdtemp())
>>> spiller.write("ab12", memoryview(b"payload"))
7
>>> buf = bytearray(7); spiller.read_into("ab12", memoryview(buf)); bytes(buf)
b'payload'
>>> spiller.delete_all()
"""
from __future__ import annotations

import mmap
import os
import re
import secrets
import shutil

__all__ = ["ObjectSpiller", "spill_dir"]

_VALID_ID = re.compile(r"[0-9A-Za-z_-]+")
# Bigger writes gain nothing and a single os.write is capped near 2 GiB.
_IO_CHUNK = 64 << 20


def spill_dir(session_dir: str, node_id: str) -> str:
    """Where a node spills: ``session_dir/spill/<node_id>``.

    >>> spill_dir("/tmp/ember/session_x", "ab12")
    '/tmp/ember/session_x/spill/ab12'
    """
    return os.path.join(session_dir, "spill", node_id)


class ObjectSpiller:
    """Write, read and delete the spill files of one node."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"ObjectSpiller({self.directory!r})"

    def path(self, object_id_hex: str) -> str:
        if not _VALID_ID.fullmatch(object_id_hex):
            raise ValueError(f"invalid object id {object_id_hex!r}")
        return os.path.join(self.directory, object_id_hex)

    def write(self, object_id_hex: str, data: memoryview) -> int:
        """Copy ``data`` (an object's shared-memory bytes) to disk; return its size.

        Raises OSError (disk full, no permission): the object stays in memory.
        """
        final = self.path(object_id_hex)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        tmp = f"{final}.tmp.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            try:
                mv = data.cast("B") if data.format != "B" or data.ndim != 1 else data
                done = 0
                while done < len(mv):
                    done += os.write(fd, mv[done:done + _IO_CHUNK])
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except BaseException:
            _unlink_quiet(tmp)
            raise
        return len(mv)

    def read_into(self, object_id_hex: str, dest: memoryview) -> None:
        """Fill ``dest`` (a new shared-memory file) from the spill file.

        Raises FileNotFoundError if there is no spill file, OSError on a short read.
        """
        with open(self.path(object_id_hex), "rb", buffering=0) as f:
            done = 0
            while done < len(dest):
                n = f.readinto(dest[done:done + _IO_CHUNK])
                if not n:
                    raise OSError(f"spill file of {object_id_hex} is truncated: "
                                  f"{done} of {len(dest)} bytes")
                done += n

    def view(self, object_id_hex: str) -> memoryview | None:
        """A read-only view of a spill file (to serve it to another node), or None."""
        try:
            fd = os.open(self.path(object_id_hex), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(fd, size, access=mmap.ACCESS_READ))
        finally:
            os.close(fd)

    def open(self, object_id_hex: str) -> tuple[int, int] | None:
        """(fd, size) of a spill file opened for reading (to send it to another node),
        or None; the caller closes the fd."""
        try:
            fd = os.open(self.path(object_id_hex), os.O_RDONLY)
        except FileNotFoundError:
            return None
        return fd, os.fstat(fd).st_size

    def size(self, object_id_hex: str) -> int | None:
        try:
            return os.stat(self.path(object_id_hex)).st_size
        except FileNotFoundError:
            return None

    def delete(self, object_id_hex: str) -> None:
        _unlink_quiet(self.path(object_id_hex))

    def delete_all(self) -> None:
        """Remove the directory and every spill file in it (missing is fine)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

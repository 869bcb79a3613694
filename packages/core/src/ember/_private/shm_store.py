"""Node-local store of immutable objects in shared memory.

Each object is one file ``{prefix}{object_id_hex}`` in a tmpfs directory
(``/dev/shm`` by default). Writers fill a uniquely named temporary file and
then link it into place, so a reader either sees a complete object or none
("sealing"). Readers map files read-only; the mapping, not the file, keeps the
memory alive, so an object may be deleted (or spilled to disk) while arrays
still view it.

A process keeps a file mapped only while something views it: the cache of
mappings holds them weakly, so once the last array read from an object is
gone, so is the mapping (with ``keep_recent_s``, the most recently read object
stays mapped that much longer, so reading one object over and over, as tasks
that share an argument do, does not fault its pages in each time). The node
manager relies on that: an object some process has mapped is in use
("pinned", see :func:`mapped_ids`) and is not worth spilling, since unlinking
it would free no memory.

Freed files are recycled (:meth:`ShmStore.recycle`, called by the node
manager): a large one that no process maps moves into the ``{prefix}pool``
directory instead of being unlinked, and the next large write takes it over
(:meth:`ShmStore.create_and_write`), writing into pages tmpfs already holds
instead of having the kernel allocate and zero each one (an 80 MB write ~1.5x
faster), through a mapping the writer keeps for its next write into the same
file (``shm_write_maps.py``). Readers hold a shared ``flock`` on every file they
map (the lock lives as long as the mapping, which holds the open file), so "no
process maps it" is one non-blocking exclusive ``flock``; only files a write
covers completely (positioned writes of the whole layout) are reused.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import secrets
import tempfile
import threading
import time
import weakref
from collections.abc import Callable

from ember._private import serialization
from ember._private.serialization import SerializedObject
from ember._private.shm_dir import default_shm_dir
from ember._private.shm_write_maps import WriteMaps

__all__ = ["ShmStore", "default_shm_dir", "mapped_ids"]

_TMP_MARKER = ".tmp."
# Smaller files are not worth recycling: allocating their pages costs less than
# taking a pooled file (list and stat the pool, rename, open, map). A shuffle of
# ~1 MiB parts ran at 9.3-10.4M rows/s with a 1 MiB minimum, 11.1-11.6M with 8 MiB
# and 11.7-12.0M with no pool at all.
POOL_MIN_BYTES = 8 << 20
# At most this many files wait in the pool: every large write lists the pool (and
# stats each file) to pick one, and every free trims it. The pool may hold a quarter
# of the store (1.75 GiB of a 7 GiB store): up to ~1700 files of 1 MiB, and a write
# or free cost milliseconds (a shuffle of ~1 MiB parts ran at 6-8M rows/s from its
# second run on, 11M with no pool).
POOL_MAX_FILES = 64
_VALID_ID = re.compile(r"[0-9A-Za-z_-]+")


class ShmStore:
    """Immutable objects in shared-memory files named ``{prefix}{object_id_hex}``.

    >>> import tempfile
    >>> store = ShmStore(tempfile.mkdtemp(), "ember_doc_")
    >>> size = store.create_and_write("ab12", serialization.serialize([1, 2]))
    >>> serialization.deserialize(store.get("ab12"))
    [1, 2]
    >>> store.cleanup_all()
    """

    def __init__(self, directory: str, prefix: str, keep_recent_s: float = 0.0) -> None:
        if not prefix or os.sep in prefix or "\0" in prefix:
            raise ValueError(f"invalid shm file prefix {prefix!r}")
        self.directory = directory
        self.prefix = prefix
        self._keep_recent_s = keep_recent_s
        self._recent: tuple[str, mmap.mmap, float] | None = None   # id, mapping, until
        self._recent_timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False    # after cleanup_all nothing is recycled (no pool left behind)
        # Weak: a mapping lives exactly as long as some view of it does.
        self._maps: weakref.WeakValueDictionary[str, mmap.mmap] = weakref.WeakValueDictionary()
        # Mappings of recycled files this process filled, for its next large writes.
        self._write_maps = WriteMaps()

    def __repr__(self) -> str:
        return f"ShmStore(directory={self.directory!r}, prefix={self.prefix!r})"

    def _path(self, object_id_hex: str) -> str:
        # Ids become file names: refuse anything that could escape the directory.
        if not _VALID_ID.fullmatch(object_id_hex):
            raise ValueError(f"invalid object id {object_id_hex!r}")
        return os.path.join(self.directory, self.prefix + object_id_hex)

    # ------------------------------------------------------------------ write

    def create_and_write(self, object_id_hex: str, obj: SerializedObject) -> int:
        """Write ``obj`` as object ``object_id_hex``; return its size in bytes.

        An already sealed object is kept as is (objects are immutable, so a
        retried task's second write is redundant) and its size returned.

        >>> store = ShmStore(tempfile.mkdtemp(), "ember_doc_")
        >>> store.create_and_write("01", serialization.serialize("x")) > 0
        True
        """
        return self._create(object_id_hex, obj.total_size,
                            lambda mv: serialization.write_to(obj, mv),
                            lambda fd: serialization.write_to_file(obj, fd), reuse=True)

    def put_bytes(self, object_id_hex: str, data: bytes | bytearray | memoryview) -> int:
        """Store an already laid-out object (e.g. ``serialization.to_bytes``).

        >>> store = ShmStore(tempfile.mkdtemp(), "ember_doc_")
        >>> data = serialization.to_bytes(serialization.serialize(7))
        >>> store.put_bytes("02", data) == len(data)
        True
        """
        src = data if isinstance(data, memoryview) else memoryview(data)
        if src.format != "B" or src.ndim != 1:
            src = src.cast("B")

        def fill(mv: memoryview) -> None:
            mv[:] = src

        return self._create(object_id_hex, src.nbytes, fill)

    def create_with(self, object_id_hex: str, size: int,
                    fill: Callable[[memoryview], None]) -> int:
        """Create an object of ``size`` bytes that ``fill`` writes in place, then seal it."""
        return self._create(object_id_hex, size, fill)

    def create_with_file(self, object_id_hex: str, size: int,
                         write: Callable[[int], None]) -> int:
        """Create an object of ``size`` bytes that ``write(fd)`` fills with positioned
        writes (os.pwrite; threads may write ranges at once), then seal it."""
        return self._create(object_id_hex, size, None, write)

    def _create(self, object_id_hex: str, size: int, fill: Callable[[memoryview], None] | None,
                write: Callable[[int], None] | None = None, reuse: bool = False) -> int:
        """Write a new object through a mapping (``fill``) or the file (``write(fd)``).

        ``reuse``: ``write`` (and ``fill``) cover every byte, so a recycled file may be
        taken over; it is then filled through a mapping populated up front (its pages
        exist already: one call maps them all, and the copy runs at memcpy speed,
        ~1.5x a pwrite), a new file with ``write``.
        """
        final = self._path(object_id_hex)
        existing = self._file_size(final)
        if existing is not None:
            return existing
        # The temp name keeps the prefix so cleanup_all reclaims it after a
        # crash, and is unique so concurrent writers never share a file.
        tmp = f"{final}{_TMP_MARKER}{os.getpid()}.{secrets.token_hex(4)}"
        fd = self._take_pooled(tmp, size) if reuse and size >= POOL_MIN_BYTES else None
        pooled = fd is not None and fill is not None
        if fd is None:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        elif fill is not None:
            write = None
        try:
            try:
                os.ftruncate(fd, size)
                if write is not None:
                    write(fd)
                elif pooled:
                    # Through a mapping kept from an earlier write into this file,
                    # or a new one kept for the next (shm_write_maps.py).
                    assert fill is not None
                    mm = self._write_maps.take(fd, size)
                    try:
                        _fill(mm, size, fill)
                    except BaseException:
                        mm.close()
                        raise
                    self._write_maps.keep(fd, mm)
                elif size:
                    assert fill is not None
                    with mmap.mmap(fd, size, flags=mmap.MAP_SHARED) as mm:
                        _fill(mm, size, fill)
            finally:
                os.close(fd)
            return self._seal(tmp, final, size)
        except BaseException:
            _unlink_quiet(tmp)
            raise

    def _seal(self, tmp: str, final: str, size: int) -> int:
        # link() fails if the target exists, unlike rename(), which would
        # silently replace an object another writer sealed meanwhile (and
        # that readers may already have mapped).
        try:
            os.link(tmp, final)
        except FileExistsError:
            existing = self._file_size(final)
            size = existing if existing is not None else size
        except OSError:
            # Filesystems without hard links: fall back to an atomic rename.
            os.rename(tmp, final)
            return size
        _unlink_quiet(tmp)
        return size

    # ------------------------------------------------------------------- read

    def get(self, object_id_hex: str) -> memoryview | None:
        """Return a read-only view of the whole object, or ``None`` if absent.

        The mapping is shared by every live view of the object and unmapped
        when the last of them (and anything deserialized from them) is gone;
        views stay valid even after :meth:`release` or :meth:`delete`.

        >>> store = ShmStore(tempfile.mkdtemp(), "ember_doc_")
        >>> store.get("ff") is None
        True
        """
        # Views are taken under the lock so a concurrent release() sees them
        # as exports and cannot close the mapping underneath us.
        with self._lock:
            mm = self._maps.get(object_id_hex)
            if mm is not None:
                self._hold_recent(object_id_hex, mm)
                return _view(mm)
        fresh = self._map(object_id_hex)
        if fresh is None:
            return None
        if fresh is _EMPTY:
            return _view(fresh)
        with self._lock:
            # Another thread may have mapped it meanwhile: keep one mapping.
            mm = self._maps.setdefault(object_id_hex, fresh)
            view = _view(mm)
            self._hold_recent(object_id_hex, mm)
        if mm is not fresh:
            _close_if_unused(fresh)
        return view

    def _hold_recent(self, object_id_hex: str, mm: mmap.mmap) -> None:
        """Keep the last object read mapped a little longer (lock held)."""
        if not self._keep_recent_s:
            return
        self._recent = (object_id_hex, mm, time.monotonic() + self._keep_recent_s)
        if self._recent_timer is None:
            self._schedule_expiry(self._keep_recent_s)

    def _schedule_expiry(self, delay: float) -> None:
        timer = threading.Timer(delay, self._expire_recent)
        timer.daemon = True
        self._recent_timer = timer
        timer.start()

    def _expire_recent(self) -> None:
        with self._lock:
            self._recent_timer = None
            if self._recent is None:
                return
            left = self._recent[2] - time.monotonic()
            if left > 0:
                self._schedule_expiry(left)
                return
            dropped, self._recent = self._recent, None
        del dropped     # unmapped here if nothing else views it

    def _map(self, object_id_hex: str) -> mmap.mmap | None:
        try:
            fd = os.open(self._path(object_id_hex), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return _EMPTY  # mmap refuses zero-length files
            # Held until the mapping goes (it keeps the open file): recycle()
            # must not hand these pages to a writer while anything views them.
            fcntl.flock(fd, fcntl.LOCK_SH)
            # ACCESS_READ maps PROT_READ and makes exported buffers read-only.
            return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    def open_sealed(self, object_id_hex: str) -> tuple[int, int] | None:
        """(fd, size) of the sealed object's file, opened read-only and shared-locked
        (so :meth:`recycle` leaves its pages alone until the fd is closed), or None.
        The caller closes the fd.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").open_sealed("ab") is None
        True
        """
        try:
            fd = os.open(self._path(object_id_hex), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return fd, os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise

    def release(self, object_id_hex: str) -> None:
        """Drop the cached mapping; live views keep their memory valid.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").release("ab")
        """
        with self._lock:
            mm = self._maps.pop(object_id_hex, None)
            if self._recent is not None and self._recent[0] == object_id_hex:
                self._recent = None
        _close_if_unused(mm)

    def contains(self, object_id_hex: str) -> bool:
        """True if a sealed object with this id exists.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").contains("ab")
        False
        """
        return os.path.exists(self._path(object_id_hex))

    def size(self, object_id_hex: str) -> int | None:
        """Size in bytes of the sealed object, or ``None`` if absent.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").size("ab") is None
        True
        """
        return self._file_size(self._path(object_id_hex))

    @staticmethod
    def _file_size(path: str) -> int | None:
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    # ----------------------------------------------------------------- delete

    # ------------------------------------------------------------------ pool

    def pool_files(self) -> list[tuple[int, str]]:
        """(size, path) of every recycled file waiting for a writer.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").pool_files()
        []
        """
        return [(size, path) for size, path, _ in self._pool_entries()]

    def _pool_entries(self) -> list[tuple[int, str, tuple[int, int]]]:
        found = []
        try:
            with os.scandir(self._pool_dir()) as it:
                for entry in it:
                    size, _, _ = entry.name.partition(".")
                    if size.isdigit():
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue        # taken by a writer meanwhile
                        found.append((int(size), entry.path, (st.st_dev, st.st_ino)))
        except FileNotFoundError:
            pass
        return found

    def recycle(self, object_id_hex: str, room: int) -> bool:
        """Delete the object, keeping its file for a later write if it is large, at most
        ``room`` bytes and mapped by no process; True if kept.

        >>> store = ShmStore(tempfile.mkdtemp(), "ember_doc_")
        >>> store.recycle("ab", 1 << 30)     # missing is fine
        False
        """
        path = self._path(object_id_hex)
        self.release(object_id_hex)     # our own cached mapping must not count
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        kept = False
        try:
            size = os.fstat(fd).st_size
            if POOL_MIN_BYTES <= size <= room:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    with self._lock:
                        if not self._closed:
                            os.makedirs(self._pool_dir(), mode=0o700, exist_ok=True)
                            os.rename(path, os.path.join(self._pool_dir(),
                                                         f"{size}.{secrets.token_hex(6)}"))
                            kept = True
                except OSError:
                    pass    # mapped somewhere (BlockingIOError), or the pool is not usable
        finally:
            os.close(fd)
        if not kept:
            _unlink_quiet(path)
        return kept

    def trim_pool(self, keep: int, oldest_first: bool = False) -> int:
        """Unlink recycled files, largest (or the longest pooled) first, until at most
        ``keep`` bytes and ``POOL_MAX_FILES`` files remain; returns the bytes left.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").trim_pool(0)
        0
        """
        if oldest_first:
            # A rename sets a file's ctime: when it went into the pool. Newest last.
            entries = sorted(((_ctime(path), size, path)
                              for size, path, _ in self._pool_entries()), reverse=True)
            files = [(size, path) for _, size, path in entries]
        else:
            files = sorted(self.pool_files())
        total = sum(size for size, _ in files)
        while files and (total > keep or len(files) > POOL_MAX_FILES):
            size, path = files.pop()
            _unlink_quiet(path)
            total -= size
        return total

    def _take_pooled(self, tmp: str, size: int) -> int | None:
        """Claim a recycled file as ``tmp`` (one this process keeps a mapping of, else
        the smallest that holds ``size``, else the largest); its open fd, or None."""
        self._write_maps.drop_gone()
        mapped = self._write_maps.inodes()
        files = self._pool_entries()
        order = sorted((not (f[2] in mapped and f[0] >= size), f[0], f[1])
                       for f in files if f[0] >= size) + \
            sorted(((True, f[0], f[1]) for f in files if f[0] < size), reverse=True)
        for _, _, path in order:
            try:
                os.rename(path, tmp)    # atomic: of two writers, one gets it
            except OSError:
                continue
            try:
                return os.open(tmp, os.O_RDWR)
            except OSError:
                _unlink_quiet(tmp)
        return None

    def _pool_dir(self) -> str:
        return os.path.join(self.directory, self.prefix + "pool")

    def delete(self, object_id_hex: str) -> None:
        """Remove the object (missing is fine) and drop its cached mapping.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").delete("ab")
        """
        _unlink_quiet(self._path(object_id_hex))
        self.release(object_id_hex)

    def cleanup_all(self) -> None:
        """Unlink every file with this store's prefix, partial writes included.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").cleanup_all()
        """
        with self._lock:
            self._closed = True
        self._write_maps.close()
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        self.trim_pool(0)
        for entry in entries:
            if entry.name.startswith(self.prefix):
                if entry.is_dir(follow_symlinks=False):
                    try:
                        os.rmdir(entry.path)    # the (now empty) pool
                    except OSError:
                        pass
                else:
                    _unlink_quiet(entry.path)
        with self._lock:
            maps = list(self._maps.values())
            self._maps.clear()
            self._recent = None
        for mm in maps:
            _close_if_unused(mm)

    def used_bytes(self) -> int:
        """Total size of this store's sealed objects.

        >>> ShmStore(tempfile.mkdtemp(), "ember_doc_").used_bytes()
        0
        """
        total = 0
        try:
            it = os.scandir(self.directory)
        except FileNotFoundError:
            return 0
        with it:
            for entry in it:
                name = entry.name
                if name.startswith(self.prefix) and _TMP_MARKER not in name[len(self.prefix) :] \
                        and not entry.is_dir(follow_symlinks=False):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass  # deleted concurrently
        return total


# Sentinel cached for zero-length objects, which cannot be mmapped.
_EMPTY: mmap.mmap = object()  # type: ignore[assignment]


def _view(mm: mmap.mmap) -> memoryview:
    return memoryview(b"") if mm is _EMPTY else memoryview(mm)


def _close_if_unused(mm: mmap.mmap | None) -> None:
    if mm is None or mm is _EMPTY:
        return
    try:
        mm.close()
    except BufferError:
        # Views (e.g. deserialized arrays) still export it; dropping our
        # reference lets the mapping go when the last of them does.
        pass


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _ctime(path: str) -> int:
    try:
        return os.stat(path).st_ctime_ns
    except OSError:
        return 0


def _fill(mm: mmap.mmap, size: int, fill: Callable[[memoryview], None]) -> None:
    base = memoryview(mm)
    try:
        view = base[:size]
        try:
            fill(view)
        finally:
            view.release()
    finally:
        base.release()


def mapped_ids(directory: str, prefix: str) -> set[str]:
    """Ids of this store's objects that some process on this machine has mapped.

    Read from ``/proc/*/maps`` (processes of other users are skipped: they
    cannot open these mode-0600 files anyway). Files already unlinked and
    partial writes are left out. Empty where there is no ``/proc``.

    >>> mapped_ids(tempfile.mkdtemp(), "ember_doc_")
    set()
    """
    needle = (os.path.join(directory, prefix)).encode()
    found: set[str] = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                data = f.read()
        except OSError:
            continue  # gone, or not ours
        start = data.find(needle)
        while start >= 0:
            end = data.find(b"\n", start)
            name = data[start + len(needle):end if end >= 0 else len(data)]
            if not name.endswith(b" (deleted)") and _TMP_MARKER.encode() not in name \
                    and b"/" not in name:     # files in the pool are no objects
                found.add(name.decode(errors="replace"))
            start = data.find(needle, end) if end >= 0 else -1
    return found

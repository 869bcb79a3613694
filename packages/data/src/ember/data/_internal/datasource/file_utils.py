"""Paths, filesystems and file metadata shared by every file reader and writer.

The readers resolve what the user passed (a path, a list, directories, globs, URIs,
a pyarrow or fsspec filesystem) into one ``pyarrow.fs.FileSystem`` plus a flat,
ordered list of files with their sizes, in the driver, when the dataset is created:
so a missing path fails at ``read_*()`` time with the path in the message, and the
sizes are known before anything is read (``estimate_inmemory_data_size``).

>>> fs, paths = resolve_paths_and_filesystem(["/data/a.csv", "/data/more/"])
>>> files = expand_paths(paths, fs, file_extensions=["csv"])
>>> files[0].path, files[0].size
('/data/a.csv', 1024)
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable, Literal, NamedTuple, Sequence, Union

import pyarrow as pa
import pyarrow.fs as pafs

__all__ = ["FileInfo", "FileShuffleConfig", "PathsArg", "SchemaConflictError", "ShuffleArg",
           "check_compatible", "expand_paths", "has_extension", "normalize_shuffle",
           "resolve_paths_and_filesystem", "shuffle_files", "split_balanced",
           "to_pyarrow_filesystem", "unify_file_schemas", "wrap_read_error"]

PathsArg = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
ShuffleArg = Union[Literal["files"], "FileShuffleConfig", None]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_GLOB_CHARS = ("*", "?", "[")
# Files and directories whose names start with these are bookkeeping of other tools
# (.crc checksums, _SUCCESS markers, _temporary dirs): skipped when listing a directory,
# as Ray and pyarrow.dataset do. Files named explicitly are always read.
_HIDDEN_PREFIXES = (".", "_")


class FileInfo(NamedTuple):
    """A file to read: its path inside the filesystem and its size (None: unknown)."""

    path: str
    size: int | None


@dataclass(frozen=True)
class FileShuffleConfig:
    """``shuffle=FileShuffleConfig(seed=...)``: read files in a seeded random order.

    >>> read_text("/logs/", shuffle=FileShuffleConfig(seed=42))  # doctest: +SKIP
    """

    seed: int | None = None


class SchemaConflictError(ValueError):
    """Two input files disagree on the type of a column."""


def to_pyarrow_filesystem(filesystem: Any) -> pafs.FileSystem | None:
    """A pyarrow filesystem for ``filesystem`` (None, pyarrow, or any fsspec filesystem).

    >>> import fsspec
    >>> to_pyarrow_filesystem(fsspec.filesystem("memory"))  # doctest: +ELLIPSIS
    <pyarrow._fs.PyFileSystem ...>
    """
    if filesystem is None or isinstance(filesystem, pafs.FileSystem):
        return filesystem
    if _is_fsspec(filesystem):
        # FSSpecHandler adapts any fsspec implementation (s3fs, gcsfs, memory, ...) so
        # the readers only ever deal with one filesystem API.
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
    raise TypeError(f"filesystem must be a pyarrow.fs.FileSystem or an fsspec "
                    f"AbstractFileSystem, got {type(filesystem).__name__}")


def _is_fsspec(filesystem: Any) -> bool:
    try:
        import fsspec
    except ImportError:  # fsspec is optional; without it nothing can be an fsspec fs
        return False
    return isinstance(filesystem, fsspec.AbstractFileSystem)


def _as_path_list(paths: PathsArg) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        out = [os.fspath(paths)]
    elif isinstance(paths, Sequence):
        out = [os.fspath(p) for p in paths]
    else:
        raise TypeError(f"paths must be a path or a list of paths, got {type(paths).__name__}")
    if not out:
        raise ValueError("paths must not be empty")
    for p in out:
        if not isinstance(p, str) or not p:
            raise ValueError(f"every path must be a non-empty string, got {p!r}")
    return out


def resolve_paths_and_filesystem(paths: PathsArg, filesystem: Any = None
                                 ) -> tuple[pafs.FileSystem, list[str]]:
    """Turn user paths into ``(filesystem, paths inside it)``.

    Without ``filesystem`` the scheme picks it (``s3://`` -> S3, none -> local, via
    ``pyarrow.fs.FileSystem.from_uri``); local paths become absolute. With a pyarrow or
    fsspec ``filesystem``, a scheme on the paths is stripped.

    >>> fs, [p] = resolve_paths_and_filesystem("data/x.parquet")
    >>> type(fs).__name__, os.path.isabs(p)
    ('LocalFileSystem', True)
    """
    raw = _as_path_list(paths)
    if filesystem is not None:
        fs = to_pyarrow_filesystem(filesystem)
        assert fs is not None
        return fs, [_strip_scheme_for(filesystem, p) for p in raw]
    resolved_fs: pafs.FileSystem | None = None
    out: list[str] = []
    for p in raw:
        scheme = _SCHEME.match(p)
        if scheme is None or scheme.group(1).lower() in ("file", "local"):
            if scheme is not None:
                p = p[len(scheme.group(0)):]  # file:///x -> /x; local:// is Ray's head-node path
                if not p.startswith("/"):
                    p = "/" + p
            fs, path = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(p))
        else:
            try:
                fs, path = pafs.FileSystem.from_uri(p)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise ValueError(f"cannot pick a filesystem for {p!r}: {e}. Pass "
                                 f"filesystem= (a pyarrow or fsspec filesystem)") from e
        if resolved_fs is None:
            resolved_fs = fs
        elif fs.type_name != resolved_fs.type_name:
            raise ValueError(f"all paths must be on one filesystem; {raw[0]!r} is on "
                             f"{resolved_fs.type_name} but {p!r} is on {fs.type_name}")
        out.append(path)
    assert resolved_fs is not None
    return resolved_fs, out


def _strip_scheme_for(filesystem: Any, path: str) -> str:
    if _is_fsspec(filesystem):
        # fsspec knows its own protocols (memory://, s3://, gcs://...).
        return str(filesystem._strip_protocol(path))
    if isinstance(filesystem, pafs.LocalFileSystem):
        scheme = _SCHEME.match(path)
        if scheme is not None:
            path = "/" + path[len(scheme.group(0)):].lstrip("/")
        return os.path.abspath(os.path.expanduser(path))
    scheme = _SCHEME.match(path)
    return path[len(scheme.group(0)):] if scheme else path


def has_extension(path: str, extensions: Iterable[str]) -> bool:
    """True if ``path`` ends with ``.ext`` for one of ``extensions`` (case-insensitive)."""
    lower = path.lower()
    return any(lower.endswith("." + ext.lower().lstrip(".")) for ext in extensions)


def expand_paths(paths: Sequence[str], filesystem: pafs.FileSystem, *,
                 file_extensions: Sequence[str] | None = None,
                 ignore_missing_paths: bool = False,
                 partition_filter: Callable[[list[str]], list[str]] | None = None
                 ) -> list[FileInfo]:
    """Every file under ``paths`` (directories recursively, globs matched), with sizes.

    Files come in the order given; a directory's files sorted by path. Raises
    ``FileNotFoundError`` naming a path that does not exist (unless
    ``ignore_missing_paths``) and ``ValueError`` when nothing is left to read.

    >>> fs, paths = resolve_paths_and_filesystem("/data/*.csv")
    >>> [f.path for f in expand_paths(paths, fs)]
    ['/data/a.csv', '/data/b.csv']
    """
    found: dict[str, FileInfo] = {}  # insertion-ordered, and drops duplicates
    for path in paths:
        for info in _expand_one(path, filesystem, ignore_missing_paths):
            found.setdefault(info.path, info)
    files = list(found.values())
    if partition_filter is not None:
        keep = set(partition_filter([f.path for f in files]))
        files = [f for f in files if f.path in keep]
    if not files:
        raise ValueError(f"No input files found to read in {_show(paths)}"
                         + (" after partition_filter" if partition_filter else ""))
    if file_extensions is not None:
        matching = [f for f in files if has_extension(f.path, file_extensions)]
        if not matching:
            raise ValueError(
                f"No input files found to read with the file extensions "
                f"{list(file_extensions)}: found {len(files)} other file(s), e.g. "
                f"{_show([f.path for f in files])}. Pass file_extensions=None to read "
                f"them all, or the extensions your files have.")
        files = matching
    return files


def _show(paths: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(repr(p) for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _expand_one(path: str, fs: pafs.FileSystem, ignore_missing: bool) -> list[FileInfo]:
    if any(c in path for c in _GLOB_CHARS):
        info = fs.get_file_info(path)  # a real file may contain [ or ? in its name
        if info.type == pafs.FileType.NotFound:
            matches = _expand_glob(path, fs)
            if not matches and not ignore_missing:
                raise FileNotFoundError(f"No files match the pattern {path!r}")
            return matches
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        if ignore_missing:
            return []
        raise FileNotFoundError(f"No such file or directory: {path!r}")
    if info.type == pafs.FileType.Directory:
        return _expand_directory(path, fs)
    return [FileInfo(info.path, info.size)]


def _expand_directory(path: str, fs: pafs.FileSystem) -> list[FileInfo]:
    base = path.rstrip("/")
    out = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(base):].lstrip("/") if info.path.startswith(base) \
            else info.base_name
        if any(part.startswith(_HIDDEN_PREFIXES) for part in relative.split("/")):
            continue
        out.append(FileInfo(info.path, info.size))
    return sorted(out, key=lambda f: f.path)


def _expand_glob(pattern: str, fs: pafs.FileSystem) -> list[FileInfo]:
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARS))
    base = "/".join(parts[:first])
    if not base and pattern.startswith("/"):
        base = "/"
    pattern_parts = parts[first:]
    # Only "**" or a pattern several levels deep needs a recursive listing.
    recursive = len(pattern_parts) > 1 or "**" in pattern_parts
    selector = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
    out: list[FileInfo] = []
    for info in fs.get_file_info(selector):
        relative = info.path[len(base):].lstrip("/")
        if not _glob_match(relative.split("/"), pattern_parts):
            continue
        if info.type == pafs.FileType.File:
            out.append(FileInfo(info.path, info.size))
        elif info.type == pafs.FileType.Directory and not recursive:
            out.extend(_expand_directory(info.path, fs))
    return sorted(out, key=lambda f: f.path)


def _glob_match(names: list[str], patterns: list[str]) -> bool:
    """Shell-style match of path segments: "*" stays within a segment, "**" spans any."""
    if not patterns:
        return not names
    head = patterns[0]
    if head == "**":
        return any(_glob_match(names[i:], patterns[1:]) for i in range(len(names) + 1))
    if not names:
        return False
    # Like the shell, a wildcard does not match a leading dot.
    if names[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatchcase(names[0], head) and _glob_match(names[1:], patterns[1:])


def normalize_shuffle(shuffle: ShuffleArg) -> FileShuffleConfig | None:
    """Validate Ray's ``shuffle`` argument: None, "files" or a ``FileShuffleConfig``."""
    if shuffle is None or isinstance(shuffle, FileShuffleConfig):
        return shuffle
    if shuffle == "files":
        return FileShuffleConfig(seed=None)
    raise ValueError(f"shuffle must be None, 'files' or a FileShuffleConfig, got {shuffle!r}")


def shuffle_files(items: list[Any], config: FileShuffleConfig | None) -> list[Any]:
    """``items`` in the order ``config`` asks for (unchanged when it is None)."""
    if config is None:
        return items
    out = list(items)
    random.Random(config.seed).shuffle(out)
    return out


def unify_file_schemas(named_schemas: Sequence[tuple[str, pa.Schema]]) -> pa.Schema:
    """One schema for files that must agree, or an error naming two files and the column.

    A column may be missing from some files (it reads as nulls) or be all-null in one
    (type ``null``); any other difference in type is a conflict.

    >>> unify_file_schemas([("a.parquet", pa.schema([("x", pa.int64())])),
    ...                     ("b.parquet", pa.schema([("x", pa.string())])])
    Traceback (most recent call last):
    SchemaConflictError: column 'x' is int64 in 'a.parquet' but string in 'b.parquet' ...
    """
    fields: dict[str, pa.Field] = {}
    origin: dict[str, str] = {}
    for path, schema in named_schemas:
        for f in schema:
            seen = fields.get(f.name)
            if seen is None or pa.types.is_null(seen.type):
                fields[f.name] = f if seen is None else seen.with_type(f.type)
                origin[f.name] = path
            elif not pa.types.is_null(f.type) and not seen.type.equals(f.type):
                raise SchemaConflictError(
                    f"column {f.name!r} is {seen.type} in {origin[f.name]!r} but {f.type} "
                    f"in {path!r}; files read together must agree on column types "
                    f"(rewrite one of them, or read them separately and cast)")
    metadata = named_schemas[0][1].metadata if named_schemas else None
    return pa.schema(list(fields.values()), metadata=metadata)


def check_compatible(path_a: str, schema_a: pa.Schema, path_b: str, schema_b: pa.Schema
                     ) -> None:
    """Raise ``SchemaConflictError`` naming both files and the column when the two
    schemas cannot be combined even with type promotion (int64 and string, say);
    promotable differences (int64 and double, null and anything) are fine.

    Used by the text formats, whose types are inferred per file while reading.
    """
    if schema_a.equals(schema_b):
        return
    try:
        pa.unify_schemas([schema_a, schema_b], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        types_b = {f.name: f.type for f in schema_b}
        for f in schema_a:
            other = types_b.get(f.name)
            if other is not None and not other.equals(f.type):
                try:
                    pa.unify_schemas([pa.schema([f]), pa.schema([(f.name, other)])],
                                     promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise SchemaConflictError(
                        f"column {f.name!r} is {f.type} in {path_a!r} but {other} in "
                        f"{path_b!r}; files read together must agree on column types "
                        f"(fix the types with the reader's options, e.g. read_csv's "
                        f"convert_options=ConvertOptions(column_types=...))") from e
        raise SchemaConflictError(f"{path_a!r} and {path_b!r} have incompatible schemas: "
                                  f"{e}") from e


def wrap_read_error(path: str, what: str, error: BaseException) -> BaseException:
    """An error that says which file failed and as what, for errors that do not say so.

    I/O errors (``OSError``: missing, permission) pass through unchanged; parse errors
    (pyarrow's ``ArrowInvalid``, ``ValueError``, ``UnicodeDecodeError``) become a
    ``ValueError`` naming the file, with the original as its cause.
    """
    if isinstance(error, OSError) or path in str(error):
        return error
    if isinstance(error, (ValueError, pa.ArrowException, UnicodeError)):
        wrapped = ValueError(f"Failed to read {path!r} as {what}: "
                             f"{type(error).__name__}: {error}")
        wrapped.__cause__ = error
        return wrapped
    return error


def split_balanced(weights: Sequence[float], n: int) -> list[list[int]]:
    """Cut ``range(len(weights))`` into ``min(n, len)`` contiguous, non-empty groups of
    about equal total weight (order is kept, so a dataset reads back in file order).

    >>> split_balanced([10, 1, 1, 10], 2)
    [[0, 1], [2, 3]]
    """
    count = len(weights)
    n = max(1, min(n, count))
    if count == 0:
        return []
    total = float(sum(weights))
    if total <= 0:  # unknown/zero sizes: balance the number of items instead
        weights, total = [1.0] * count, float(count)
    groups: list[list[int]] = []
    current: list[int] = []
    cumulative = 0.0
    for i, w in enumerate(weights):
        current.append(i)
        cumulative += w
        groups_left = n - len(groups) - 1  # groups still to open after this one
        items_left = count - i - 1
        if groups_left > 0 and (cumulative >= total * (len(groups) + 1) / n
                                or items_left == groups_left):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups

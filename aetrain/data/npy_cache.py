"""A folder of decoded uint8 arrays in aetrain's cache, committed by its ``index.json``.

The image folder cache (aetrain.data.image_cache) and the TFDS cache (aetrain.data.tfds) keep what
they decode here, one folder per source, under a lock beside it. A new version writes its rows, in
any order and from any process, into ``images-<stamp>.npy`` (the file's space reserved first: a disk
too full for it says so before any decoding), saves its other arrays beside it, and is committed by
its index, written under a partial name and renamed into place: a crash on the way leaves the old
version whole, a failure removes every file the new one wrote, and a commit removes the arrays it
replaced. The index names each array by its key; the readers map them back with :func:`mapped`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

INDEX = "index.json"


def locked(target: Path) -> FileLock:
    """The lock of the cache folder ``target``, held (one process builds a cache at a time), or an
    OSError where it cannot be taken (a read-only cache folder, a file in its place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock")
    lock.acquire()
    return lock


def committed_index(target: Path) -> dict | None:
    """The index of the version ``target`` holds, or None where there is none yet (OSError or
    ValueError where it cannot be read)."""
    if not (target / INDEX).is_file():
        return None
    return json.loads((target / INDEX).read_text())


def mapped(target: Path, index: dict, key: str) -> np.ndarray:
    """The array the index names under ``key``, memory-mapped."""
    return np.load(target / Path(index[key]).name, mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True)
class RowFile:
    """The rows of a reserved array file, writable from any process (what a worker is sent instead of
    sending its pixels back): the file, where row 0 starts, the bytes of a row."""

    path: str
    start: int
    row_bytes: int

    def write(self, rows: Iterable[tuple[int, np.ndarray]]) -> None:
        """Write each (row number, uint8 pixels); a run of consecutive rows is one write."""
        with _opened(Path(self.path)) as handle:
            for first, run in _consecutive_runs(rows):
                data = memoryview(b"".join(np.ascontiguousarray(row, dtype=np.uint8).data for row in run))
                position, length = self.start + first * self.row_bytes, len(data)
                handle.seek(position)
                while data:
                    data = data[handle.write(data) :]
                _start_writeback(handle, position, length)


def _consecutive_runs(rows: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, list[np.ndarray]]]:
    first, run = -1, []
    for number, pixels in rows:
        if run and number != first + len(run):
            yield first, run
            run = []
        if not run:
            first = number
        run.append(pixels)
    if run:
        yield first, run


class NewVersion:
    """The arrays of a version being written into ``target``, and its index once committed."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.stamp = f"{time.time_ns()}-{os.getpid()}"
        self.partial = target / f".{INDEX}.{os.getpid()}.partial"
        self.written: dict[str, Path] = {}

    def _created(self, key: str) -> Any:
        self.written[key] = self.target / f"{key}-{self.stamp}.npy"
        return _created(self.written[key])

    @contextlib.contextmanager
    def reserved(self, key: str, shape: tuple[int, ...]) -> Iterator[RowFile]:
        """A uint8 array of ``shape`` whose rows the block writes in any order, from any process,
        through the RowFile it is given; its space is reserved before the block runs, and a row never
        written reads as zeros."""
        with self._created(key) as handle:
            header = {"descr": "|u1", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(handle, header)
            _reserve(handle, math.prod(shape))
            start = handle.tell()
            yield RowFile(str(self.written[key]), start, math.prod(shape[1:]))
            os.ftruncate(handle.fileno(), start + math.prod(shape))
            _synced(handle)

    def saved(self, key: str, array: np.ndarray) -> None:
        """``array`` written whole, beside the reserved ones."""
        with self._created(key) as handle:
            np.save(handle, array, allow_pickle=False)
            _synced(handle)

    def commit(self, **fields: Any) -> dict:
        """The index, naming every array written and then ``fields``, renamed into place; returns it."""
        index = {**{key: path.name for key, path in self.written.items()}, **fields}
        with _created(self.partial) as handle:
            handle.write(json.dumps(index).encode())
            _synced(handle)
        os.replace(self.partial, self.target / INDEX)
        return index


@contextlib.contextmanager
def new_version(target: Path) -> Iterator[NewVersion]:
    """A version of ``target`` to write, its last step :meth:`NewVersion.commit`. Any failure in the
    block removes the files it wrote; after a commit, the arrays it replaced and the partial index
    files writers killed on the way left are removed."""
    target.mkdir(parents=True, exist_ok=True)
    version = NewVersion(target)
    try:
        yield version
    except BaseException:
        for written in [*version.written.values(), version.partial]:
            written.unlink(missing_ok=True)
        raise
    older = [path for key in version.written for path in target.glob(f"{key}-*.npy")]
    for path in [*older, *target.glob(f".{INDEX}.*.partial")]:
        if path not in version.written.values():
            path.unlink(missing_ok=True)


def _created(path: Path) -> Any:
    """``path`` created for writing: with :func:`_opened`, the one way the cache's files are written."""
    return open(path, "wb")


def _opened(path: Path) -> Any:
    """``path``, created before, opened to write rows of it in place (unbuffered)."""
    return open(path, "r+b", buffering=0)


def _reserve(handle: Any, nbytes: int) -> None:
    """Claim the space of the rows still to be written: a disk too full for the cache says so now
    (ENOSPC), before any decoding, and the rows cannot then fail for want of space. A file system
    without the call (or glibc's emulation of it) is written without the reservation."""
    handle.flush()
    if nbytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(handle.fileno(), handle.tell(), nbytes)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise


#: sync_file_range's flag: start writing the range's dirty pages to disk, without waiting
SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(handle: Any, position: int, length: int) -> None:
    """Have the kernel start writing rows just written to disk (Linux's sync_file_range, which the os
    module lacks), so that the commit's fsync finds little left to wait for; a hint, skipped where
    the call does not exist."""
    call = _sync_file_range()
    if call is not None:
        call(handle.fileno(), ctypes.c_longlong(position), ctypes.c_longlong(length), SYNC_FILE_RANGE_WRITE)


@functools.cache
def _sync_file_range() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None


def _synced(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
